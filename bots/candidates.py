"""The elements on a page closest to one a step could not find, for "did you mean ...?".

Only on failure: one `evaluate` gathers what the page offers for the locator's kind (labels
and placeholders, roles with their accessible names, or visible texts); the ranking is plain
Python (difflib, containment, abbreviations such as 'BSN' for 'Burgerservicenummer'), and every
candidate is redacted, since the texts of a page may hold personal data.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Page

from bots.locating import find_frame
from tasks.definition import Locator
from tasks.privacy import redact

# Visible elements only; the roles are the implicit ARIA roles of the controls legacy forms use.
_CANDIDATES_JS = """kind => {
  const visible = el => el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== 'hidden';
  const text = el => (el.textContent || '').replace(/\\s+/g, ' ').trim();
  const found = [];
  if (kind === 'label' || kind === 'placeholder' || kind === 'next_to') {
    for (const el of document.querySelectorAll('label')) {
      if (visible(el)) found.push(['label', '', text(el)]);
    }
    for (const el of document.querySelectorAll('[aria-label]')) {
      if (visible(el)) found.push(['label', '', el.getAttribute('aria-label')]);
    }
    for (const el of document.querySelectorAll('[placeholder]')) {
      if (visible(el)) found.push(['placeholder', '', el.getAttribute('placeholder')]);
    }
    // captions in a table cell, the field in the next cell: what `next_to` names (a cell
    // that holds a <label> is offered as that label already)
    const controls = 'input:not([type=hidden]), select, textarea, [role=combobox], '
      + '[role=textbox], [contenteditable=true]';
    for (const cell of document.querySelectorAll('td, th')) {
      const next = cell.nextElementSibling;
      if (next && ['TD', 'TH'].includes(next.tagName) && !cell.querySelector(controls)
          && !cell.querySelector('label')
          && next.querySelector(controls) && visible(cell)) {
        found.push(['next_to', '', text(cell)]);
      }
    }
  } else if (kind === 'role') {
    const inputRoles = {submit: 'button', button: 'button', reset: 'button', image: 'button',
      checkbox: 'checkbox', radio: 'radio', search: 'searchbox', text: 'textbox',
      email: 'textbox', tel: 'textbox', url: 'textbox', number: 'spinbutton'};
    const roleOf = el => {
      if (el.hasAttribute('role')) return el.getAttribute('role').split(/\\s+/)[0];
      const tag = el.tagName.toLowerCase();
      if (tag === 'a') return el.hasAttribute('href') ? 'link' : '';
      if (tag === 'button') return 'button';
      if (tag === 'textarea') return 'textbox';
      if (tag === 'select') return el.multiple || el.size > 1 ? 'listbox' : 'combobox';
      if (/^h[1-6]$/.test(tag)) return 'heading';
      if (tag === 'input') return inputRoles[el.type] || '';
      return '';
    };
    const nameOf = el => {
      if (el.getAttribute('aria-label')) return el.getAttribute('aria-label');
      const ids = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean);
      if (ids.length) {
        return ids.map(id => document.getElementById(id)).filter(Boolean).map(text).join(' ');
      }
      if (el.labels && el.labels.length) return Array.from(el.labels).map(text).join(' ');
      if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) {
        return el.value;
      }
      if (['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName)) {
        return el.title || el.placeholder || '';
      }
      return text(el) || el.title || '';
    };
    const selector = 'a[href], button, input, textarea, select, h1, h2, h3, h4, h5, h6, [role]';
    for (const el of document.querySelectorAll(selector)) {
      const role = roleOf(el);
      if (role && visible(el)) found.push(['role', role, nameOf(el)]);
    }
  } else if (kind === 'text') {
    for (const el of document.body ? document.body.querySelectorAll('*') : []) {
      const own = Array.from(el.childNodes).some(
        node => node.nodeType === Node.TEXT_NODE && node.textContent.trim());
      if (own && visible(el)) found.push(['text', '', text(el)]);
    }
    for (const el of document.querySelectorAll('input[type=submit], input[type=button]')) {
      if (visible(el)) found.push(['text', '', el.value]);
    }
  }
  return found;
}"""

_MOST = 3
"""A clerk reads the likeliest few; more is noise."""
_SIMILAR = 0.6
"""difflib's own cut-off for close matches."""
_SPREAD = 0.2
"""Candidates much further off than the best one are left out."""
_OTHER_ROLE = 0.85
"""A button that became a link is still a candidate, when no button is alike."""
_LONGEST = 60


@dataclass(frozen=True)
class Candidate:
    """An element on the page, named the way a definition would name it."""

    kind: str
    role: str
    value: str

    def describe(self) -> str:
        """Like `Locator.describe`: "label 'BSN'", "role button 'Aanvragen'"."""
        value = self.value if len(self.value) <= _LONGEST else self.value[: _LONGEST - 1] + "…"
        kind = f"role {self.role}" if self.kind == "role" else self.kind
        return f"{kind} {value!r}"


async def closest(page: Page, locator: Locator) -> list[Candidate]:
    """The (at most three) elements on the page most like the one `locator` names; redacted."""
    kind, wanted = _looked_for(locator)
    if not wanted:
        return []
    scope: Page | Frame | None = find_frame(page, locator.frame) if locator.frame else page
    if scope is None:
        return []
    try:
        found = await scope.evaluate(_CANDIDATES_JS, kind)
    except PlaywrightError:
        return []
    candidates = {
        Candidate(str(kind), str(role), " ".join(str(value).split()))
        for kind, role, value in found
        if str(value).strip()
    }
    return rank(locator, candidates)


def rank(locator: Locator, candidates: set[Candidate]) -> list[Candidate]:
    """The likeliest few of `candidates` for `locator`, best first, each value redacted."""
    kind, wanted = _looked_for(locator)
    scored = []
    for candidate in candidates:
        other_way = candidate.kind == "next_to" and kind != "next_to"  # same text, other key
        if (
            candidate.value.casefold() == wanted.casefold()
            and (locator.role is None or candidate.role == locator.role)
            and not other_way
        ):
            continue  # the element itself is there, but not usable: no other name helps
        score = similarity(wanted, candidate.value)
        if locator.role is not None and candidate.role != locator.role:
            score *= _OTHER_ROLE
        if score >= _SIMILAR:
            scored.append((score, candidate))
    if any(candidate.role == locator.role for _score, candidate in scored):
        scored = [pair for pair in scored if pair[1].role == locator.role]
    scored.sort(key=lambda pair: (-pair[0], pair[1].value))
    if not scored:
        return []
    best = scored[0][0]
    chosen: list[Candidate] = []
    for score, candidate in scored:
        shown = Candidate(candidate.kind, candidate.role, redact(candidate.value))
        if score >= best - _SPREAD and shown not in chosen:
            chosen.append(shown)
        if len(chosen) == _MOST:
            break
    return chosen


def similarity(wanted: str, offered: str) -> float:
    """How alike two names are, 0 to 1: difflib's ratio, or more when one holds the other or
    abbreviates it ('BSN' in 'Burgerservicenummer (BSN)'; 'BSN' for 'Burgerservicenummer')."""
    a, b = wanted.casefold(), offered.casefold()
    score = difflib.SequenceMatcher(None, a, b).ratio()
    shorter, longer = sorted((a, b), key=len)
    if len(shorter) >= 3 and re.search(rf"\b{re.escape(shorter)}\b", longer):
        score = max(score, 0.9)
    elif len(shorter) >= 3 and shorter in longer:
        score = max(score, 0.8)
    short = min((wanted, offered), key=len)
    if _abbreviates(short, max((wanted, offered), key=len)):
        score = max(score, 0.8)
    return score


def _abbreviates(short: str, long: str) -> bool:
    """Whether `short` is an abbreviation (two capitals at least) of `long`: its letters in
    order, the first at the start of a word of `long` ('KvK' for 'Kamer van Koophandel')."""
    letters = short.replace(".", "")
    if not (2 <= len(letters) <= 6 and letters.isalpha()) or len(long) < len(letters) + 3:
        return False
    if sum(letter.isupper() for letter in letters) < 2:
        return False
    letters, long = letters.casefold(), long.casefold()
    for start in (match.start() for match in re.finditer(r"\b\w", long)):
        if long[start] != letters[0]:
            continue
        rest = iter(long[start + 1 :])
        if all(letter in rest for letter in letters[1:]):
            return True
    return False


def _looked_for(locator: Locator) -> tuple[str, str]:
    """The kind of candidates to gather for `locator` and the name it looked for ('' for none:
    CSS and XPath name no text a page shows)."""
    if locator.label is not None:
        return "label", locator.label
    if locator.next_to is not None:
        return "next_to", locator.next_to
    if locator.role is not None:
        return "role", locator.name or ""
    if locator.text is not None:
        return "text", locator.text
    if locator.placeholder is not None:
        return "placeholder", locator.placeholder
    return "", ""


def did_you_mean(candidates: list[Candidate]) -> str:
    """The message's tail, "; did you mean label 'A' or label 'B'?", or '' for no candidates."""
    if not candidates:
        return ""
    names = [candidate.describe() for candidate in candidates]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"; did you mean {listed}?"
