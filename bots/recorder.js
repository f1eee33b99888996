// klerk's recorder in the page: added to every frame of the recording browser (an init script),
// it reports what the user does to Python through a binding, naming each element the way a
// klerk step names it (label, next_to, role + name, text, placeholder; css as a last resort).
// The name is worked out here, at the moment of the event, because the page may be gone
// (navigated) by the time Python hears of it. Matching follows Playwright's engines: a name is
// chosen only when the locator Python will build from it finds this element first.
// KLERK (binding, nextTo templates, placeholder) is put in front of this script by bots/recorder.py.
(() => {
  if (window.__klerkRecorder) return;
  Object.defineProperty(window, '__klerkRecorder', { value: true });

  const documentId = Math.random().toString(36).slice(2, 10);
  let sequence = 0;

  const send = (event) => {
    event.id = `${documentId}:${++sequence}`;
    event.frame = frameName();
    try {
      window[KLERK.binding](event);
    } catch (e) {
      // the binding is not there (yet): nothing is being recorded
    }
    return event.id;
  };

  const frameName = () => {
    if (window === window.top) return null;
    if (window.name) return window.name;
    try {
      const src = window.frameElement && window.frameElement.getAttribute('src');
      if (src) return src;
    } catch (e) {
      // a frame of another origin: its element is out of reach
    }
    return location.pathname;
  };

  // --- text as Playwright's selector engines read it ------------------------------------------

  const normalize = (text) =>
    (text || '').replace(/[\u200b\u00ad]/g, '').trim().replace(/\s+/g, ' ');

  const skippedForText = (el) =>
    ['SCRIPT', 'NOSCRIPT', 'STYLE'].includes(el.nodeName) ||
    (el.ownerDocument.head && el.ownerDocument.head.contains(el));

  const isButtonInput = (el) =>
    el.nodeName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type);

  const textOf = (el) => {
    if (!el || el.nodeType !== 1 || skippedForText(el)) return '';
    if (isButtonInput(el)) return el.value;
    let text = '';
    for (let child = el.firstChild; child; child = child.nextSibling) {
      if (child.nodeType === 3) text += child.nodeValue || '';
      else if (child.nodeType === 1) text += textOf(child);
    }
    return text;
  };

  // exact: the whole text, case and all; otherwise a part of it, ignoring case
  const matcher = (wanted, exact) => {
    const want = normalize(wanted);
    if (exact) return (text) => normalize(text) === want;
    const lower = want.toLowerCase();
    return (text) => normalize(text).toLowerCase().includes(lower);
  };

  const everything = () => Array.from(document.querySelectorAll('*'));

  const hiddenForAria = (el) => {
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      if (node.getAttribute('aria-hidden') === 'true') return true;
    }
    if (el.nodeName === 'OPTION') return false;
    if (typeof el.checkVisibility === 'function') {
      return !el.checkVisibility({ visibilityProperty: true });
    }
    return !(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  };

  const visible = (el) => !hiddenForAria(el);

  // --- labels, roles and accessible names --------------------------------------------------------

  const idRefs = (el, attribute) => {
    if (!el.hasAttribute(attribute)) return null;
    const ids = el.getAttribute(attribute).split(/\s+/).filter(Boolean);
    return ids.map((id) => el.ownerDocument.getElementById(id)).filter(Boolean);
  };

  const LABELABLE = ['BUTTON', 'METER', 'OUTPUT', 'PROGRESS', 'SELECT', 'TEXTAREA'];

  const labelsOf = (el) => {
    const by = idRefs(el, 'aria-labelledby');
    if (by) return by.map(textOf);
    const aria = el.getAttribute('aria-label');
    if (aria !== null && aria.trim()) return [aria];
    if (LABELABLE.includes(el.nodeName) || (el.nodeName === 'INPUT' && el.type !== 'hidden')) {
      return el.labels ? Array.from(el.labels).map(textOf) : [];
    }
    return [];
  };

  const TEXTBOX_TYPES = ['', 'text', 'email', 'tel', 'url'];

  const roleOf = (el) => {
    const explicit = (el.getAttribute('role') || '').trim().toLowerCase().split(/\s+/)[0];
    if (explicit && explicit !== 'none' && explicit !== 'presentation') return explicit;
    switch (el.nodeName) {
      case 'A':
      case 'AREA':
        return el.hasAttribute('href') ? 'link' : null;
      case 'BUTTON':
        return 'button';
      case 'SELECT':
        return el.multiple || el.size > 1 ? 'listbox' : 'combobox';
      case 'TEXTAREA':
        return 'textbox';
      case 'OPTION':
        return 'option';
      case 'INPUT': {
        const type = (el.getAttribute('type') || '').toLowerCase();
        if (['button', 'submit', 'reset', 'image'].includes(type)) return 'button';
        if (type === 'checkbox') return 'checkbox';
        if (type === 'radio') return 'radio';
        if (type === 'number') return 'spinbutton';
        if (type === 'search') return 'searchbox';
        if (type === 'range') return 'slider';
        if (TEXTBOX_TYPES.includes(type)) return el.hasAttribute('list') ? 'combobox' : 'textbox';
        return null;
      }
      default:
        return null;
    }
  };

  // Roles whose name is their text (ARIA "name from content"); a combobox's text is its value
  const NAME_FROM_CONTENT = [
    'button', 'link', 'option', 'menuitem', 'menuitemcheckbox', 'menuitemradio', 'tab',
    'checkbox', 'radio', 'switch', 'treeitem', 'cell', 'gridcell', 'columnheader', 'rowheader',
    'heading', 'tooltip',
  ];

  const nameOf = (el) => {
    const by = idRefs(el, 'aria-labelledby');
    if (by && by.length) return normalize(by.map(textOf).join(' '));
    const aria = el.getAttribute('aria-label');
    if (aria !== null && aria.trim()) return normalize(aria);
    if (el.nodeName === 'INPUT') {
      const type = el.type;
      if (isButtonInput(el)) {
        return normalize(el.value || (type === 'submit' ? 'Submit' : type === 'reset' ? 'Reset' : ''));
      }
      if (type === 'image') return normalize(el.alt || el.value || 'Submit');
    }
    if (el.labels && el.labels.length) return normalize(Array.from(el.labels).map(textOf).join(' '));
    if (['INPUT', 'SELECT', 'TEXTAREA'].includes(el.nodeName)) {
      return normalize(el.getAttribute('title') || el.getAttribute('placeholder') || '');
    }
    if (el.nodeName === 'IMG') return normalize(el.getAttribute('alt') || el.getAttribute('title'));
    if (!NAME_FROM_CONTENT.includes(roleOf(el))) return normalize(el.getAttribute('title'));
    const images = Array.from(el.querySelectorAll('img[alt]')).map((img) => img.alt);
    return normalize([textOf(el), ...images].join(' ')) || normalize(el.getAttribute('title'));
  };

  // --- what the locators of a definition would find ----------------------------------------------

  const byLabel = (text, exact) => {
    const match = matcher(text, exact);
    return everything().filter((el) => labelsOf(el).some(match));
  };

  const byRole = (role, name, exact, scope) => {
    const match = matcher(name, exact);
    const within = scope ? Array.from(scope.querySelectorAll('*')) : everything();
    return within.filter((el) => roleOf(el) === role && visible(el) && match(nameOf(el)));
  };

  const byPlaceholder = (text, exact) => {
    const match = matcher(text, exact);
    return everything().filter(
      (el) => el.hasAttribute('placeholder') && match(el.getAttribute('placeholder')),
    );
  };

  const byText = (text, exact) => {
    const match = matcher(text, exact);
    return everything().filter((el) => {
      if (skippedForText(el) || !match(textOf(el))) return false;
      for (let child = el.firstElementChild; child; child = child.nextElementSibling) {
        if (match(textOf(child))) return false;
      }
      return true;
    });
  };

  const xpathLiteral = (text) => {
    if (!text.includes("'")) return `'${text}'`;
    if (!text.includes('"')) return `"${text}"`;
    return `concat(${text.split("'").map((part) => `'${part}'`).join(`, "'", `)})`;
  };

  const byNextTo = (caption, exact) => {
    const words = normalize(caption);
    const template = exact ? KLERK.nextToExact : KLERK.nextToLoose;
    const literal = xpathLiteral(exact ? words : words.toLowerCase());
    const query = template.split(`'${KLERK.placeholder}'`).join(literal);
    const found = [];
    try {
      const result = document.evaluate(query, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
      for (let i = 0; i < result.snapshotLength; i++) found.push(result.snapshotItem(i));
    } catch (e) {
      // a caption XPath cannot say: no next_to for this one
    }
    return found;
  };

  const byCss = (selector) => {
    try {
      return Array.from(document.querySelectorAll(selector));
    } catch (e) {
      return [];
    }
  };

  // --- choosing a name for an element ------------------------------------------------------------

  // How well `found` (what a locator finds) names `el`: 2 only el, 1 el first, 0 el later, -1 not
  const fit = (found, el) => {
    const index = found.indexOf(el);
    if (index < 0) return -1;
    if (found.length === 1) return 2;
    return index === 0 ? 1 : 0;
  };

  // The best of a locator's loose and exact forms: {locator, fit}
  const tryBoth = (el, make, find) => {
    const loose = find(false);
    const looseFit = fit(loose, el);
    if (looseFit === 2) return { locator: make(false), fit: 2 };
    const strict = find(true);
    const strictFit = fit(strict, el);
    if (strictFit > looseFit) {
      const locator = make(true);
      if (strictFit === 0) locator.nth = strict.indexOf(el);
      return { locator, fit: strictFit };
    }
    const locator = make(false);
    if (looseFit === 0) locator.nth = loose.indexOf(el);
    return { locator, fit: looseFit };
  };

  const withExact = (locator, exact) => (exact ? { ...locator, exact: true } : locator);

  const CELLS = 'td, th, [role=cell], [role=gridcell], [role=rowheader]';

  const captionOf = (el) => {
    const cell = el.closest(CELLS);
    if (!cell) return null;
    let before = cell.previousElementSibling;
    while (before && !before.matches(CELLS)) before = before.previousElementSibling;
    if (!before || before.querySelector('input:not([type=hidden]), select, textarea')) return null;
    const full = normalize(textOf(before));
    const caption = normalize(full.replace(/[\s*:]+$/, ''));
    return caption ? { caption, full } : null;
  };

  // An id or name that a person did not choose: digits in a row, a random-looking part
  const looksGenerated = (value) =>
    !value ||
    value.length > 40 ||
    /\d{3,}/.test(value) ||
    /^[0-9a-f]{8,}$/i.test(value) ||
    value.split(/[-_:.]/).some((part) => part.length >= 4 && /[a-z]/i.test(part) && /\d/.test(part));

  const cssEscape = (value) => (window.CSS && CSS.escape ? CSS.escape(value) : value);

  const cssFor = (el) => {
    const tag = el.nodeName.toLowerCase();
    const id = el.getAttribute('id');
    const name = el.getAttribute('name');
    const type = el.getAttribute('type');
    const choices = [];
    if (id && !looksGenerated(id)) choices.push(`#${cssEscape(id)}`);
    if (name && !looksGenerated(name)) choices.push(`${tag}[name="${name.replace(/"/g, '\\"')}"]`);
    const classes = Array.from(el.classList).filter((c) => !looksGenerated(c));
    if (classes.length) choices.push(`${tag}.${classes.map(cssEscape).join('.')}`);
    choices.push(type ? `${tag}[type="${type}"]` : tag);
    for (const selector of choices) {
      const found = byCss(selector);
      if (fit(found, el) >= 1) return { css: selector };
    }
    const selector = choices[choices.length - 1];
    return { css: selector, nth: Math.max(0, byCss(selector).indexOf(el)) };
  };

  // A link or button that repeats per table row, named by a cell of its row
  const inRow = (el, role, name) => {
    const row = el.closest('tr, [role=row]');
    if (!row) return null;
    const cells = Array.from(row.querySelectorAll(CELLS)).filter((cell) => !cell.contains(el));
    // a cell reads `text` as the locator's pattern sees it: the whole text, spaces around it
    const readsAs = (candidate, text) => textOf(candidate).trim() === text;
    for (const cell of cells) {
      const reads = textOf(cell).trim();
      if (!reads || reads.length > 60 || reads !== normalize(reads)) continue;
      // the row the locator picks: the last row holding a cell that reads this (innermost)
      const rows = Array.from(document.querySelectorAll('tr, [role=row]')).filter((r) =>
        Array.from(r.querySelectorAll(CELLS)).some((c) => readsAs(c, reads)),
      );
      if (rows[rows.length - 1] !== row) continue;
      const result = tryBoth(
        el,
        (exact) => withExact({ role, name, in_row_with: reads }, exact),
        (exact) => byRole(role, name, exact, row),
      );
      if (result.fit >= 1) return result;
    }
    return null;
  };

  const isTextField = (el) =>
    (el.nodeName === 'INPUT' &&
      !['hidden', 'checkbox', 'radio', 'file', 'submit', 'button', 'reset', 'image', 'range', 'color'].includes(el.type)) ||
    el.nodeName === 'TEXTAREA' ||
    el.isContentEditable ||
    ['textbox', 'searchbox'].includes(el.getAttribute('role'));

  const isField = (el) =>
    isTextField(el) || ['INPUT', 'SELECT'].includes(el.nodeName) || el.getAttribute('role') === 'combobox';

  // The locator for `el`: the first way of naming it that finds only it, else the first that
  // finds it first, else one with `nth`; css when nothing a person sees names it.
  const locatorFor = (el) => {
    const ways = [];
    const field = isField(el);
    const labelled = () => {
      for (const label of labelsOf(el).map(normalize).filter(Boolean)) {
        ways.push(() => tryBoth(el, (exact) => withExact({ label }, exact), (exact) => byLabel(label, exact)));
      }
    };
    const role = roleOf(el);
    const name = role ? nameOf(el) : '';
    const named = () => {
      if (role && name) {
        ways.push(() => tryBoth(el, (exact) => withExact({ role, name }, exact), (exact) => byRole(role, name, exact)));
      }
    };
    if (field) {
      labelled();
      const caption = captionOf(el);
      if (caption) {
        ways.push(() => {
          const loose = byNextTo(caption.caption, false);
          if (fit(loose, el) === 2) return { locator: { next_to: caption.caption }, fit: 2 };
          const strict = byNextTo(caption.full, true);
          const strictFit = fit(strict, el);
          if (strictFit > fit(loose, el)) {
            const locator = { next_to: caption.full, exact: true };
            if (strictFit === 0) locator.nth = strict.indexOf(el);
            return { locator, fit: strictFit };
          }
          const locator = { next_to: caption.caption };
          if (fit(loose, el) === 0) locator.nth = loose.indexOf(el);
          return { locator, fit: fit(loose, el) };
        });
      }
      const placeholder = el.getAttribute('placeholder');
      if (placeholder && placeholder.trim()) {
        const text = normalize(placeholder);
        ways.push(() => tryBoth(el, (exact) => withExact({ placeholder: text }, exact), (exact) => byPlaceholder(text, exact)));
      }
      named();
    } else {
      named();
      if (role && name) ways.push(() => inRow(el, role, name));
      labelled();
      const text = normalize(textOf(el));
      if (text && text.length <= 80) {
        // the text may be found in a child of the element: a click there reaches it too
        const found = (exact) => byText(text, exact).map((match) => (el.contains(match) ? el : match));
        ways.push(() => tryBoth(el, (exact) => withExact({ text }, exact), found));
      }
    }
    let fallback = null;
    for (const way of ways) {
      const result = way();
      if (!result || result.fit < 0) continue;
      if (result.fit === 2) return result.locator;
      if (result.fit === 1 && (!fallback || fallback.fit < 1)) fallback = result;
      if (!fallback) fallback = result;
    }
    return fallback ? fallback.locator : cssFor(el);
  };

  // --- the user's actions ------------------------------------------------------------------------

  const CLICKABLE = [
    'a[href]', 'button', 'input', 'select', 'textarea', 'label', 'summary', 'option',
    '[role=button]', '[role=link]', '[role=option]', '[role=menuitem]', '[role=menuitemcheckbox]',
    '[role=menuitemradio]', '[role=tab]', '[role=checkbox]', '[role=radio]', '[role=switch]',
    '[role=combobox]', '[role=treeitem]', '[onclick]', '[contenteditable=true]',
    '[role=listbox] > li',
  ].join(', ');

  // The element a click meant: the clickable one around the target, or the outermost element
  // that shows a pointer cursor (a div the app's script listens to)
  const clicked = (target) => {
    const element = target.closest(CLICKABLE);
    if (element) return element;
    let pointer = null;
    for (let node = target; node && node.nodeType === 1 && node !== document.body; node = node.parentElement) {
      if (getComputedStyle(node).cursor === 'pointer') pointer = node;
      else if (pointer) break;
    }
    return pointer;
  };

  const isOption = (el) =>
    el.getAttribute('role') === 'option' ||
    (el.nodeName === 'LI' && el.parentElement && el.parentElement.getAttribute('role') === 'listbox');

  const opensList = (el) =>
    el.getAttribute('role') === 'combobox' ||
    (el.hasAttribute('aria-haspopup') && el.getAttribute('aria-haspopup') !== 'false');

  let lastTextField = null;
  let typed = 0;
  const typedAt = new WeakMap();

  // Focus on a text field is no step, but marks where typing into it began: clicks that only
  // open its picker (a calendar's month arrows) are dropped when the picker writes the value.
  document.addEventListener('focusin', (event) => {
    const el = event.target;
    if (!(el instanceof Element) || !isTextField(el)) return;
    lastTextField = el;
    send({ kind: 'focus', locator: locatorFor(el) });
  }, true);

  let pressingEnter = false;

  document.addEventListener('click', (event) => {
    if (!event.isTrusted || !(event.target instanceof Element)) return;
    if (pressingEnter && event.detail === 0) return; // Enter in a field "clicks" its form's button
    const el = clicked(event.target);
    if (!el) return;
    if (el.nodeName === 'LABEL' && el.control) return; // the control's own click follows
    if (el.nodeName === 'OPTION' || el.nodeName === 'SELECT') return; // its change says it
    if (el.nodeName === 'INPUT' && ['checkbox', 'radio', 'file'].includes(el.type)) return;
    if (isTextField(el)) return; // only focuses it
    const option = isOption(el);
    const id = send({
      kind: 'click',
      locator: locatorFor(el),
      option,
      value: option ? normalize(textOf(el)) : undefined,
      widget: opensList(el),
    });
    // A picker (a calendar) may have written into the field that had the focus: then the
    // click was the way of typing, and the value is what to record.
    const field = lastTextField;
    if (!field || !field.isConnected || el.nodeName === 'BUTTON' || isButtonInput(el)) return;
    const before = field.value;
    const since = typed;
    setTimeout(() => {
      if (!field.isConnected || field.value === before) return;
      if ((typedAt.get(field) || 0) > since) return;
      reported.set(field, field.value);
      send({ kind: 'picked', click: id, locator: locatorFor(field), value: field.value });
    }, 50);
  }, true);

  const fieldValue = (el) => (el.isContentEditable ? el.innerText : el.value);

  const reported = new WeakMap();

  const reportTyping = (el) => {
    typedAt.set(el, ++typed);
    const value = fieldValue(el);
    if (reported.get(el) === value) return; // the change event after the typing: said already
    reported.set(el, value);
    if (el.nodeName === 'INPUT' && el.type === 'password') {
      send({ kind: 'fill', locator: locatorFor(el), secret: true });
    } else {
      send({ kind: 'fill', locator: locatorFor(el), value });
    }
  };

  document.addEventListener('input', (event) => {
    const el = event.target;
    if (el instanceof Element && isTextField(el)) reportTyping(el);
  }, true);

  document.addEventListener('change', (event) => {
    const el = event.target;
    if (!(el instanceof Element)) return;
    if (isTextField(el)) {
      reportTyping(el);
    } else if (el.nodeName === 'SELECT') {
      const option = el.selectedOptions[0];
      send({ kind: 'select', locator: locatorFor(el), value: option ? normalize(option.label || textOf(option)) : '' });
    } else if (el.nodeName === 'INPUT' && ['checkbox', 'radio'].includes(el.type)) {
      send({
        kind: 'check',
        locator: locatorFor(el),
        checked: el.checked,
        radio: el.type === 'radio',
        group: el.type === 'radio' ? el.name : undefined,
      });
    } else if (el.nodeName === 'INPUT' && el.type === 'file') {
      send({ kind: 'upload', locator: locatorFor(el), files: Array.from(el.files || []).map((f) => f.name) });
    }
  }, true);

  document.addEventListener('keydown', (event) => {
    const el = event.target;
    if (event.key !== 'Enter' || !(el instanceof Element) || el.nodeName !== 'INPUT' || !isTextField(el)) return;
    pressingEnter = true;
    setTimeout(() => {
      pressingEnter = false;
    }, 0);
    const secret = el.type === 'password';
    send({ kind: 'press', key: 'Enter', locator: locatorFor(el), secret, value: secret ? undefined : el.value });
  }, true);
})();
