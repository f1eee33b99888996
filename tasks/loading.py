"""Loading definition files: YAML with line numbers, validated by the models, clear errors.

Every problem is reported as `file:line:column: what is wrong; what was expected` and, where a
key or step name is close to a known one, "did you mean ...".
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from tasks.definition import (
    STEP_KINDS,
    AppDefinition,
    InFrameStep,
    StepModel,
    Task,
    UseStep,
    in_frame,
    only_when,
    step_kind,
)
from tasks.errors import DefinitionError
from tasks.plugins import sink_kinds, source_kinds
from tasks.templates import template_problems

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class _Positions:
    """Line and column (1-based) of every node in a YAML document, by its path."""

    def __init__(self) -> None:
        self.value: dict[Loc, tuple[int, int]] = {}
        self.key: dict[Loc, tuple[int, int]] = {}

    def of(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """The position of the deepest known node on `loc` (the key itself when `key`)."""
        table = self.key if key else self.value
        while loc:
            if loc in table:
                return table[loc]
            if loc in self.value:
                return self.value[loc]
            loc = loc[:-1]
        return self.value.get((), (1, 1))


def _construct(node: yaml.Node, loc: Loc, positions: _Positions) -> Any:
    positions.value[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = (
                yaml.safe_load(yaml.serialize(key_node))
                if not isinstance(key_node, yaml.ScalarNode)
                else _scalar(key_node)
            )
            child = (*loc, key)
            positions.key[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                line, column = positions.key[child]
                raise _DuplicateKeyError(line, column, str(key))
            result[key] = _construct(value_node, child, positions)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), positions) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class _DuplicateKeyError(Exception):
    def __init__(self, line: int, column: int, key: str) -> None:
        self.line, self.column, self.key = line, column, key


def read_yaml(path: Path) -> tuple[Any, _Positions]:
    """Parse a YAML file keeping positions; raise DefinitionError on a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([f"{path}: cannot read: {exc}"]) from None
    positions = _Positions()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = {} if node is None else _construct(node, (), positions)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        raise DefinitionError([f"{path}:{where}: invalid YAML: {exc.problem or exc}"]) from None
    except _DuplicateKeyError as exc:
        raise DefinitionError(
            [f"{path}:{exc.line}:{exc.column}: key {exc.key!r} appears twice"]
        ) from None
    return data, positions


def load_model(path: Path, model: type[M]) -> M:
    """Read `path` as a `model`, reporting every problem at once with its position."""
    return _load(path, model)[0]


def load_task(path: Path, *, apps: Collection[str]) -> Task:
    """Read a task definition and check it against what is installed: its app (one of `apps`)
    and the kinds of its source and sink (as registered by the connectors)."""
    task, positions = _load(path, Task)

    def unknown(loc: Loc, what: str, name: str, known: list[str]) -> str:
        line, column = positions.of(loc)
        return (
            f"{path}:{line}:{column}: unknown {what} {name!r}{did_you_mean(name, known)}; "
            f"expected one of: {', '.join(known) or '(none installed)'}"
        )

    problems = []
    if task.app not in apps:
        problems.append(unknown(("app",), "app", task.app, sorted(apps)))
    sources = sorted([*source_kinds(), "none"])
    if task.source.kind not in sources:
        problems.append(unknown(("source", "kind"), "source kind", task.source.kind, sources))
    if task.sink is not None and task.sink.kind not in sink_kinds():
        problems.append(unknown(("sink", "kind"), "sink kind", task.sink.kind, sink_kinds()))
    if problems:
        raise DefinitionError(problems)
    return task


def use_sequences(task: Task, path: Path, app: AppDefinition) -> Task:
    """The task with each `use: NAME` step replaced by the steps of the app's sequence NAME, and
    each `in_frame` group by its steps (in steps, setup and teardown)."""
    lists = {"steps": task.steps, "setup": task.setup, "teardown": task.teardown}
    check = task.already_done
    looked_up = check.steps if check is not None else []
    grouped = (UseStep, InFrameStep)
    if not any(
        isinstance(step, grouped) for steps in [*lists.values(), looked_up] for step in steps
    ):
        return task
    _data, positions = read_yaml(path)
    known = sorted(app.sequences)
    problems = []

    def sequence(step: UseStep, loc: Loc) -> list[StepModel]:
        if step.use in app.sequences:
            return in_frame(app.sequences[step.use])
        line, column = positions.of(loc)
        problems.append(
            f"{path}:{line}:{column}: unknown sequence {step.use!r}"
            f"{did_you_mean(step.use, known)}; app {app.name} has: "
            f"{', '.join(known) or '(none; add them under `sequences:`)'}"
        )
        return []

    def expand(steps: list[StepModel], loc: Loc) -> list[StepModel]:
        expanded: list[StepModel] = []
        for index, step in enumerate(steps):
            if isinstance(step, UseStep):
                expanded.extend(only_when(sequence(step, (*loc, index, "use")), step.when))
            elif isinstance(step, InFrameStep):
                inner = expand(list(step.in_frame.steps), (*loc, index, "in_frame", "steps"))
                if step.timeout_ms is not None:
                    inner = [_with_timeout(s, step.timeout_ms) for s in inner]
                expanded.extend(only_when(in_frame(inner, step.in_frame.frame), step.when))
            else:
                expanded.append(step)
        return expanded

    updates: dict[str, Any] = {
        field: expand(list(steps), (field,)) for field, steps in lists.items()
    }
    if check is not None:
        steps = expand(list(check.steps), ("already_done", "steps"))
        updates["already_done"] = check.model_copy(update={"steps": steps})
    if problems:
        raise DefinitionError(problems)
    return task.model_copy(update=updates)


def _with_timeout(step: StepModel, timeout_ms: int) -> StepModel:
    """A step of a group with the group's timeout, unless it has its own."""
    return (
        step if step.timeout_ms is not None else step.model_copy(update={"timeout_ms": timeout_ms})
    )


def _load(path: Path, model: type[M]) -> tuple[M, _Positions]:
    data, positions = read_yaml(path)
    if not isinstance(data, dict):
        raise DefinitionError([f"{path}:1:1: expected a mapping of keys (name:, steps:, ...)"])
    problems = {
        f"{path}:{line}:{column}: {problem}"
        for loc, problem in template_problems(data)
        for line, column in [positions.of(loc)]
    }
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        problems.update(_describe(error, data, positions, model, path) for error in exc.errors())
    if problems:
        raise DefinitionError(sorted(problems, key=_position_order))
    return result, positions


def _position_order(problem: str) -> tuple[int, int, str]:
    parts = problem.split(":")
    try:
        return int(parts[1]), int(parts[2]), problem
    except (IndexError, ValueError):
        return 0, 0, problem


def _describe(
    error: Any, data: Any, positions: _Positions, model: type[BaseModel], path: Path
) -> str:
    loc = _clean_loc(error["loc"])
    kind = error["type"]
    if kind != "missing":
        loc = _in_document(data, loc)
    where = _where(loc) or "(top)"
    if kind == "extra_forbidden":
        line, column = positions.of(loc, key=True)
        key = str(loc[-1])
        known = _known_keys(model, data, loc[:-1])
        hint = did_you_mean(key, known)
        expected = f"; expected one of: {', '.join(sorted(known))}" if known and not hint else ""
        return f"{path}:{line}:{column}: unknown key {key!r} in {_parent(loc)}{hint}{expected}"
    line, column = positions.of(loc)
    if kind == "unknown_step":
        step = _value_at(data, loc)
        if isinstance(step, dict) and step:
            names = [str(key) for key in step]
            known_here = [name for name in names if name in STEP_KINDS]
            if len(known_here) > 1:
                return (
                    f"{path}:{line}:{column}: a step does one thing; this one says "
                    f"{' and '.join(known_here)} (split it into two steps)"
                )
            name = next((n for n in names if n not in ("title", "timeout_ms")), names[0])
            hint = did_you_mean(name, list(STEP_KINDS))
            return (
                f"{path}:{line}:{column}: unknown step {name!r}{hint}; "
                f"expected one of: {', '.join(STEP_KINDS)}"
            )
        example = "'fill: {label: ..., value: ...}'"
        return f"{path}:{line}:{column}: a step must be a mapping like {example}"
    if kind == "missing":
        return f"{path}:{line}:{column}: {_parent(loc)} needs `{loc[-1]}`"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "expected a mapping of keys (`key: value` on lines below, or {key: value})"
    elif kind == "list_type":
        message = "expected a list (one line per entry, each starting with '- ')"
    got = error.get("input")
    shown = (
        f" (got {got!r})"
        if isinstance(got, str | int | float | bool) and kind != "value_error"
        else ""
    )
    return f"{path}:{line}:{column}: {where}: {message}{shown}"


def _clean_loc(raw: tuple[Any, ...]) -> Loc:
    """The path in the document: without the tags pydantic adds for unions ('fill' twice)."""
    loc: list[str | int] = []
    parts = [part for part in raw if not (isinstance(part, str) and part.startswith("function-"))]
    for index, part in enumerate(parts):
        # a discriminated union repeats the step kind: ('steps', 0, 'fill', 'fill', 'label')
        if loc and part == loc[-1] and isinstance(part, str) and part in STEP_KINDS:
            continue
        # ... or names it before a key every step has: ('steps', 0, 'fill', 'when')
        following = parts[index + 1] if index + 1 < len(parts) else None
        if (
            isinstance(part, str)
            and part in STEP_KINDS
            and loc
            and isinstance(loc[-1], int)
            and following in StepModel.model_fields
        ):
            continue
        loc.append(part)
    return tuple(loc)


_UNION_MEMBERS = frozenset({"bool", "str", "int", "float", "none", "list", "dict"})


def _in_document(data: Any, loc: Loc) -> Loc:
    """`loc` without the member names pydantic adds after it when it tried each type of a union
    (('checked', 'bool') -> ('checked',)): they are not in the document."""
    current = data
    for depth, part in enumerate(loc):
        present = (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        )
        if present:
            current = current[part]
        elif isinstance(part, str) and (part in _UNION_MEMBERS or "[" in part):
            return loc[:depth]
        else:
            return loc
    return loc


def _parent(loc: Loc) -> str:
    parent = loc[:-1]
    if not parent:
        return "the definition"
    return _where(parent)


_STEP_LISTS = {
    "steps": "step",
    "login": "login step",
    "setup": "setup step",
    "teardown": "teardown step",
}


def _where(loc: Loc) -> str:
    """A path as a person reads it: ('steps', 2, 'fill') -> 'step 3 (fill)'."""
    words: list[str] = []
    for index, part in enumerate(loc):
        if isinstance(part, int) and index and loc[index - 1] in _STEP_LISTS:
            words[-1] = f"{_STEP_LISTS[str(loc[index - 1])]} {part + 1}"
        elif isinstance(part, int):
            words[-1] += f"[{part + 1}]"
        elif (
            words
            and words[-1].startswith(tuple(f"{w} " for w in _STEP_LISTS.values()))
            and part in STEP_KINDS
        ):
            words[-1] += f" ({part})"
        else:
            words.append(str(part))
    return ".".join(words)


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def did_you_mean(word: str, candidates: list[str]) -> str:
    """A hint for a misspelt name: "; did you mean 'x'?" or nothing when none is close."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _known_keys(model: type[BaseModel], data: Any, loc: Loc) -> list[str]:
    """The keys the model accepts at `loc` in `data` (walking fields, lists and step kinds)."""
    current: Any = model
    walked: Any = data
    for part in loc:
        if isinstance(walked, dict):
            walked = walked.get(part)
        elif isinstance(walked, list) and isinstance(part, int) and part < len(walked):
            walked = walked[part]
        else:
            walked = None
        current = _child_model(current, part, walked)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _child_model(current: Any, part: str | int, value: Any) -> Any:
    if isinstance(part, int):
        if isinstance(current, _ListOf):
            return _resolve(current.item, value)
        return None
    if isinstance(current, _DictOf):
        return _resolve(current.item, value)
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return None
    info = current.model_fields.get(part)
    if info is None:
        return None
    annotation = info.annotation
    origin = get_origin(annotation)
    if origin is list:
        return _ListOf(get_args(annotation)[0])
    if origin is dict:
        return _DictOf(get_args(annotation)[1])
    return _resolve(annotation, value)


class _ListOf:
    def __init__(self, item: Any) -> None:
        self.item = item


class _DictOf:
    def __init__(self, item: Any) -> None:
        self.item = item


def _resolve(annotation: Any, value: Any) -> Any:
    """From an annotation (possibly a union of models), the model that applies to `value`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    kind = step_kind(value)
    if kind is not None:
        return STEP_KINDS[kind]
    candidates = [
        a for a in _flatten(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
    ]
    if len(candidates) == 1:
        return candidates[0]
    return None


def _flatten(annotation: Any) -> Iterator[Any]:
    args = get_args(annotation)
    if not args:
        yield annotation
        return
    for arg in args:
        yield from _flatten(arg)


DEFINITIONS_DIR = Path(__file__).parent / "definitions"


def find_task(name_or_path: str) -> Path:
    """A task file by path, or by name in tasks/definitions/ (with did-you-mean)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise DefinitionError([f"{path}: file not found"])
        return path
    candidate = DEFINITIONS_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(p.stem for p in DEFINITIONS_DIR.glob("*.yaml"))
    hint = did_you_mean(name_or_path, known)
    raise DefinitionError(
        [f"unknown task {name_or_path!r}{hint}; known tasks: {', '.join(known)} (or give a path)"]
    )
