"""Named step sequences: an app definition names them, task steps `use` them, put in at load."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bots.apps import app_names, definition_path
from connectors import register_all
from tasks.definition import AppDefinition, GotoStep, UseStep
from tasks.errors import DefinitionError
from tasks.loading import find_task, load_model, load_task, use_sequences

TASK = """\
name: proef
app: parkeren
processing_activity: https://register.example/verwerkingen/1
legal_basis: AVG art. 6 lid 1 sub e
source: {kind: xlsx, path: "{{ input }}", key: aanvraagnummer}
steps:
  - use: nieuwe_aanvraag_openen
  - fill: {label: BSN, value: "{{ item.bsn }}"}
  - use: {use}
"""


def _parkeren() -> AppDefinition:
    return load_model(definition_path("parkeren"), AppDefinition)


def test_the_shipped_task_uses_the_apps_sequence() -> None:
    register_all()
    path = find_task("vergunningen-invoeren")
    task = load_task(path, apps=app_names())
    assert isinstance(task.steps[0], UseStep)

    expanded = use_sequences(task, path, _parkeren())

    assert expanded.steps[0] == GotoStep(goto="/vergunningen/nieuw")
    assert not any(isinstance(step, UseStep) for step in expanded.steps)
    assert len(expanded.steps) == len(task.steps)


def test_an_unknown_sequence_names_file_line_and_the_close_one(tmp_path: Path) -> None:
    register_all()
    path = tmp_path / "taak.yaml"
    path.write_text(TASK.replace("{use}", "nieuwe_aanvrag_openen"), encoding="utf-8")
    task = load_task(path, apps=app_names())

    with pytest.raises(DefinitionError) as caught:
        use_sequences(task, path, _parkeren())

    assert caught.value.problems == [
        f"{path}:9:10: unknown sequence 'nieuwe_aanvrag_openen'; did you mean "
        "'nieuwe_aanvraag_openen'?; app parkeren has: nieuwe_aanvraag_openen"
    ]


def test_a_sequence_cannot_use_another() -> None:
    data = _parkeren().model_dump(exclude_none=True)
    data["sequences"]["twee"] = [{"use": "nieuwe_aanvraag_openen"}]

    with pytest.raises(ValidationError, match="`use` is for task steps; 'twee'"):
        AppDefinition.model_validate(data)
