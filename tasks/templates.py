"""Values in definitions are Jinja2 templates, rendered in a sandbox with strict undefined.

Built-in filters for what Dutch back offices need: dates as dd-mm-jjjj (`dmy`), postcodes
(`postcode`), amounts (`bedrag`), and the results file next to an input (`results_path`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tasks.fields import FieldType, FieldValueError, parse_value


class TemplateRenderError(ValueError):
    """A template could not be rendered for an item (an unknown column, a bad value)."""


def dmy(value: Any) -> str:
    """A date as dd-mm-jjjj (also accepts ISO and dd-mm-jjjj text)."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        try:
            value = parse_value(FieldType.DATE, value, column="datum")
        except FieldValueError as exc:
            raise TemplateRenderError(str(exc)) from None
    return f"{value.day:02d}-{value.month:02d}-{value.year:04d}"


def postcode(value: Any) -> str:
    """A Dutch postcode as '1234 AB'."""
    try:
        return str(parse_value(FieldType.POSTCODE, value, column="postcode"))
    except FieldValueError as exc:
        raise TemplateRenderError(str(exc)) from None


def bedrag(value: Any, symbol: bool = False) -> str:
    """An amount in Dutch notation: 1.234,56 (with '€ ' in front when `symbol`)."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).replace(",", "."))
    except InvalidOperation:
        raise TemplateRenderError(f"geen bedrag: {value!r}") from None
    whole, _, cents = f"{amount.quantize(Decimal('0.01')):,.2f}".partition(".")
    text = whole.replace(",", ".") + "," + cents
    return f"€ {text}" if symbol else text


def results_path(value: Any) -> str:
    """The results file for an input: 'aanvragen.xlsx' -> 'aanvragen-resultaten.xlsx'."""
    path = Path(str(value))
    return str(path.with_name(f"{path.stem}-resultaten.xlsx"))


def kenteken(value: Any) -> str:
    """A licence plate without dashes, upper case."""
    return re.sub(r"[^0-9A-Z]", "", str(value).upper())


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """The one sandboxed Jinja2 environment with klerk's filters."""
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters.update(
        dmy=dmy, postcode=postcode, bedrag=bedrag, results_path=results_path, kenteken=kenteken
    )
    return env


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return environment().from_string(source)


def is_template(value: str) -> bool:
    """True when `value` holds template syntax."""
    return "{{" in value or "{%" in value


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render one template string; plain strings come back as they are."""
    if not is_template(source):
        return source
    try:
        return str(_compiled(source).render(context))
    except TemplateRenderError:
        raise
    except TemplateError as exc:
        raise TemplateRenderError(f"template {source!r}: {exc.message or exc}") from None


@lru_cache(maxsize=1024)
def compiled_expression(expression: str) -> Any:
    """A Jinja expression (as in `when: item.bijlage`), compiled once; a TemplateSyntaxError
    when it is not one."""
    return environment().compile_expression(expression, undefined_to_none=False)


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """The value of a Jinja expression for one item."""
    try:
        value = compiled_expression(expression)(**context)
        if isinstance(value, StrictUndefined):
            value._fail_with_undefined_error()  # a name that is not there is an error
    except TemplateError as exc:
        raise TemplateRenderError(f"expression {expression!r}: {exc.message or exc}") from None
    return value


def render_tree(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string in a nested structure of dicts and lists."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {key: render_tree(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_tree(item, context) for item in value]
    return value


KNOWN_VARIABLES = frozenset({"item", "input", "today", "now", "run", "credentials", "outputs"})


def template_problems(data: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, str]]:
    """Syntax errors, unknown filters and unknown variables in every template of a definition."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from template_problems(value, (*loc, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from template_problems(value, (*loc, index))
    elif isinstance(data, str) and is_template(data):
        env = environment()
        try:
            tree = env.parse(data)
        except TemplateSyntaxError as exc:
            yield loc, f"template syntax error: {exc.message}"
            return
        for filter_node in tree.find_all(nodes.Filter):
            if filter_node.name not in env.filters:
                import difflib

                close = difflib.get_close_matches(filter_node.name, list(env.filters), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                yield loc, f"unknown filter {filter_node.name!r}{hint}"
                return
        for name in sorted(meta.find_undeclared_variables(tree) - KNOWN_VARIABLES):
            yield (
                loc,
                (
                    f"unknown variable {name!r} in template; "
                    f"use one of: {', '.join(sorted(KNOWN_VARIABLES))}"
                ),
            )
