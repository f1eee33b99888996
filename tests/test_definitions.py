"""Task definitions: the shipped ones are valid, and broken ones give precise, actionable errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bots.apps import app_names
from connectors import register_all
from tasks.definition import Task
from tasks.errors import DefinitionError
from tasks.loading import load_model, load_task
from tasks.secrets import load_credentials

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
name: proef
app: parkeren
processing_activity: https://register.example/verwerkingen/1
legal_basis: AVG art. 6 lid 1 sub e
source: {kind: xlsx, path: "{{ input }}", key: aanvraagnummer, subject: bsn}
steps:
  - goto: /vergunningen/nieuw
  - fill: {label: BSN, value: "{{ item.bsn }}"}
"""

ALL_STEPS = (
    "goto, fill, select, check, click, press, upload, wait_for, expect, business_error_if, "
    "extract, extract_table, download, action, use, in_frame"
)

# (what is wrong, the YAML, the exact problem line after the file name)
CATALOGUE = [
    (
        "typo in a top-level key",
        GOOD.replace("legal_basis", "legal_bases"),
        [
            "4:1: unknown key 'legal_bases' in the definition; did you mean 'legal_basis'?",
            "1:1: the definition needs `legal_basis`",
        ],
    ),
    (
        "unknown step",
        GOOD.replace("  - goto:", "  - gotoo:"),
        [
            "7:5: unknown step 'gotoo'; did you mean 'goto'?; expected one of: goto, fill, select, "
            "check, click, press, upload, wait_for, expect, business_error_if, extract, "
            "extract_table, download, action, use, in_frame"
        ],
    ),
    (
        "typo in a locator key",
        GOOD.replace("{label: BSN", "{lable: BSN"),
        ["8:12: unknown key 'lable' in step 2 (fill); did you mean 'label'?"],
    ),
    (
        "two locators at once",
        GOOD.replace("{label: BSN,", "{label: BSN, css: '#bsn',"),
        [
            "8:11: step 2 (fill): give exactly one of label, next_to, role, text, placeholder, "
            "css, xpath (got label, css)"
        ],
    ),
    (
        "no locator",
        GOOD.replace("{label: BSN, ", "{"),
        [
            "8:11: step 2 (fill): give exactly one of label, next_to, role, text, placeholder, "
            "css, xpath"
        ],
    ),
    (
        "a value missing",
        GOOD.replace(', value: "{{ item.bsn }}"', ""),
        ["8:11: step 2 (fill) needs `value`"],
    ),
    (
        "wrong type",
        GOOD + "retry: {attempts: many}\n",
        [
            "9:19: retry.attempts: Input should be a valid integer, unable to parse string as an "
            "integer (got 'many')"
        ],
    ),
    (
        "out of range",
        GOOD + "concurrency: 0\n",
        ["9:14: concurrency: Input should be greater than or equal to 1 (got 0)"],
    ),
    (
        "bad task name",
        GOOD.replace("name: proef", "name: Proef Taak"),
        ["1:7: name: String should match pattern '^[a-z0-9][a-z0-9-]*$' (got 'Proef Taak')"],
    ),
    (
        "credentials as a password",
        GOOD + "credentials: geheim123\n",
        ["9:14: credentials: String should match pattern '^[A-Z][A-Z0-9_]*$' (got 'geheim123')"],
    ),
    (
        "template syntax",
        GOOD.replace("{{ item.bsn }}", "{{ item.bsn }"),
        ["8:31: template syntax error: unexpected '}'"],
    ),
    (
        "unknown filter",
        GOOD.replace("{{ item.bsn }}", "{{ item.bsn | dmyy }}"),
        ["8:31: unknown filter 'dmyy'; did you mean 'dmy'?"],
    ),
    (
        "unknown variable",
        GOOD.replace("{{ item.bsn }}", "{{ rij.bsn }}"),
        [
            "8:31: unknown variable 'rij' in template; use one of: credentials, input, item, now, "
            "outputs, run, today"
        ],
    ),
    (
        "two steps in one",
        GOOD + "  - goto: /a\n    click: {text: OK}\n",
        ["9:5: a step does one thing; this one says goto and click (split it into two steps)"],
    ),
    (
        "a step that is not a mapping",
        GOOD + "  - goto\n",
        ["9:5: a step must be a mapping like 'fill: {label: ..., value: ...}'"],
    ),
    (
        "file source without key",
        GOOD.replace(", key: aanvraagnummer", ""),
        ["5:9: source: a xlsx source needs `key` (the column naming each item)"],
    ),
    (
        "unknown column type",
        GOOD.replace("subject: bsn}", "subject: bsn, columns: {bsn: bssn}}"),
        [
            "5:93: source.columns.bsn.type: Input should be 'text', 'integer', 'decimal', 'date', "
            "'bsn', 'postcode', 'kenteken' or 'yesno' (got 'bssn')"
        ],
    ),
    ("duplicate key", GOOD + "app: parkeren\n", ["9:1: key 'app' appears twice"]),
    (
        "broken YAML",
        GOOD + "steps: [\n",
        ["10:1: invalid YAML: expected the node content, but found '<stream end>'"],
    ),
    (
        "no steps",
        GOOD.split("steps:")[0] + "steps: []\n",
        ["6:8: steps: List should have at least 1 item after validation, not 0"],
    ),
    (
        "not a mapping",
        "- just\n- a list\n",
        ["1:1: expected a mapping of keys (name:, steps:, ...)"],
    ),
    # unknown keys deeper down
    (
        "typo in a source key",
        GOOD.replace("key: aanvraagnummer", "key: aanvraagnummer, sheet_name: Aanvragen"),
        ["5:64: unknown key 'sheet_name' in source; did you mean 'sheet'?"],
    ),
    (
        "typo in a sink key",
        GOOD + "sink: {kind: xlsx, path: uit.xlsx, colums: [status]}\n",
        ["9:36: unknown key 'colums' in sink; did you mean 'columns'?"],
    ),
    (
        "typo in a retry key",
        GOOD + "retry: {attempt: 3}\n",
        ["9:9: unknown key 'attempt' in retry; did you mean 'attempts'?"],
    ),
    (
        "typo in a column's key",
        GOOD.replace("subject: bsn}", "subject: bsn, columns: {bsn: {type: bsn, heder: BSN}}}"),
        ["5:105: unknown key 'heder' in source.columns.bsn; did you mean 'header'?"],
    ),
    # wrong types
    (
        "the source as a file name",
        GOOD.replace(
            'source: {kind: xlsx, path: "{{ input }}", key: aanvraagnummer, subject: bsn}',
            "source: aanvragen.xlsx",
        ),
        [
            "5:9: source: expected a mapping of keys (`key: value` on lines below, or "
            "{key: value}) (got 'aanvragen.xlsx')"
        ],
    ),
    (
        "steps as a mapping",
        GOOD.split("steps:")[0] + "steps:\n  goto: /vergunningen/nieuw\n",
        ["7:3: steps: expected a list (one line per entry, each starting with '- ')"],
    ),
    (
        "a yes/no that is neither",
        GOOD + "  - click: {text: Aanvragen, exact: misschien}\n",
        [
            "9:37: step 3 (click).exact: Input should be a valid boolean, unable to interpret "
            "input (got 'misschien')"
        ],
    ),
    (
        "a header row of 0",
        GOOD.replace("subject: bsn}", "subject: bsn, header_row: 0}"),
        ["5:90: source.header_row: Input should be greater than or equal to 1 (got 0)"],
    ),
    (
        "an encoding klerk does not read",
        GOOD.replace("subject: bsn}", "subject: bsn, encoding: latin-1}"),
        [
            "5:88: source.encoding: Input should be 'auto', 'utf-8', 'utf-8-sig' or 'cp1252' "
            "(got 'latin-1')"
        ],
    ),
    (
        "a timeout in words",
        GOOD + "  - click: {text: OK}\n    timeout_ms: lang\n",
        [
            "10:17: step 3.timeout_ms: Input should be a valid integer, unable to parse "
            "string as an integer (got 'lang')"
        ],
    ),
    (
        "a list where a yes/no or a template goes",
        GOOD + "  - check: {label: Akkoord, checked: [ja]}\n",
        [
            "9:38: step 3 (check).checked: Input should be a valid boolean",
            "9:38: step 3 (check).checked: Input should be a valid string",
        ],
    ),
    (
        "extract without a locator",
        GOOD + "  - extract: zaaknummer\n",
        [
            "9:14: step 3 (extract): expected a mapping of keys (`key: value` on lines below, or "
            "{key: value}) (got 'zaaknummer')"
        ],
    ),
    (
        "an action without a name",
        GOOD + "  - action: {args: {}}\n",
        ["9:13: step 3 (action) needs `name`"],
    ),
    (
        "no processing activity",
        GOOD.replace("processing_activity: https://register.example/verwerkingen/1\n", ""),
        ["1:1: the definition needs `processing_activity`"],
    ),
    (
        "a tab for indentation",
        GOOD + "\tretry: {}\n",
        ["9:1: invalid YAML: found character '\\t' that cannot start any token"],
    ),
    # unknown steps
    (
        "a step name from another tool",
        GOOD + "  - type: {label: Kenteken, value: x}\n",
        ["9:5: unknown step 'type'; expected one of: " + ALL_STEPS],
    ),
    (
        "a step name in Dutch",
        GOOD + "  - klik: {role: button, name: Aanvragen}\n",
        ["9:5: unknown step 'klik'; did you mean 'click'?; expected one of: " + ALL_STEPS],
    ),
    (
        "a typo in a setup step",
        GOOD + "setup:\n  - clik: {text: Overzicht}\n",
        ["10:5: unknown step 'clik'; did you mean 'click'?; expected one of: " + ALL_STEPS],
    ),
    (
        "a typo in a locator inside an in_frame group",
        GOOD + "  - in_frame: {frame: menu, steps: [click: {txt: Overzicht}]}\n",
        ["9:45: unknown key 'txt' in step 3 (in_frame).step 1 (click); did you mean 'text'?"],
    ),
    (
        "an in_frame group inside another",
        GOOD + "  - in_frame: {frame: menu, steps: [in_frame: {frame: main, steps: [goto: /]}]}\n",
        [
            "9:15: step 3 (in_frame): an in_frame group cannot hold another; give those "
            "locators `frame:`"
        ],
    ),
    # template errors
    (
        "a block not closed",
        GOOD.replace("{{ item.bsn }}", "{% if item.bsn %}{{ item.bsn }}"),
        [
            "8:31: template syntax error: Unexpected end of template. Jinja was looking for the "
            "following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be "
            "closed is 'if'."
        ],
    ),
    (
        "a bracket not closed",
        GOOD.replace("{{ item.bsn }}", "{{ item.bsn.strip( }}"),
        ["8:31: template syntax error: unexpected '}', expected ')'"],
    ),
    (
        "an unknown variable in the source path",
        GOOD.replace('path: "{{ input }}"', 'path: "{{ invoer }}"'),
        [
            "5:28: unknown variable 'invoer' in template; use one of: credentials, input, item, "
            "now, outputs, run, today"
        ],
    ),
    (
        "a template error in already_done",
        GOOD
        + 'already_done: {action: zoek_aanvraag, args: {nummer: "{{ item.nummer | upper }"}}\n',
        ["9:54: template syntax error: unexpected '}'"],
    ),
    (
        "an already_done check that looks up and calls an action",
        GOOD + "already_done: {action: zoek, found: {css: td}}\n",
        ["9:15: already_done: give `found` (with `steps` to look the item up) or `action`"],
    ),
    (
        "an already_done look-up that says nothing about what is found",
        GOOD + "already_done:\n  steps:\n    - goto: /zoeken\n",
        ["10:3: already_done: give `found` (with `steps` to look the item up) or `action`"],
    ),
    (
        "a when written as a template",
        GOOD.replace(
            "  - fill: {label: BSN,", "  - when: '{{ item.bsn }}'\n    fill: {label: BSN,"
        ),
        ["8:11: step 2.when: an expression, written without {{ }}: `when: item.bsn`"],
    ),
    (
        "a when that is no expression",
        GOOD.replace("  - fill: {label: BSN,", "  - when: item.bsn ==\n    fill: {label: BSN,"),
        ["8:11: step 2.when: not an expression: unexpected 'end of template'"],
    ),
    (
        "an unknown filter in the sink path",
        GOOD + 'sink: {kind: xlsx, path: "{{ input | result_path }}"}\n',
        ["9:26: unknown filter 'result_path'; did you mean 'results_path'?"],
    ),
]

# What only the installation knows: the apps in bots/apps/ and the registered source and sink
# kinds. (what is wrong, the YAML, the exact problem line after the file name)
INSTALLED = [
    (
        "a typo in the app",
        GOOD.replace("app: parkeren", "app: parkeer"),
        ["2:6: unknown app 'parkeer'; did you mean 'parkeren'?; expected one of: afval, parkeren"],
    ),
    (
        "an app that is not there",
        GOOD.replace("app: parkeren", "app: zaaksysteem"),
        ["2:6: unknown app 'zaaksysteem'; expected one of: afval, parkeren"],
    ),
    (
        "a typo in the source kind",
        GOOD.replace("kind: xlsx", "kind: xslx"),
        [
            "5:16: unknown source kind 'xslx'; did you mean 'xlsx'?; expected one of: csv, none, "
            "xlsx"
        ],
    ),
    (
        "a sink kind that is not there",
        GOOD + "sink: {kind: excel, path: uit.xlsx}\n",
        ["9:14: unknown sink kind 'excel'; expected one of: csv, xlsx"],
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_broken_definition_gives_precise_error(
    tmp_path: Path, case: str, text: str, expected: list[str]
) -> None:
    path = tmp_path / "taak.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_model(path, Task)
    assert sorted(caught.value.problems) == sorted(f"{path}:{line}" for line in expected)


@pytest.mark.parametrize(("case", "text", "expected"), INSTALLED, ids=[c[0] for c in INSTALLED])
def test_unknown_app_or_connector_gives_precise_error(
    tmp_path: Path, case: str, text: str, expected: list[str]
) -> None:
    register_all()
    path = tmp_path / "taak.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_task(path, apps=app_names())
    assert caught.value.problems == [f"{path}:{line}" for line in expected]


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "credentials 'PROEF' not found: "),
        (
            {"KLERK_CRED_PROEF_USERNAME": "medewerker"},
            "credentials 'PROEF' not found (KLERK_CRED_PROEF_USERNAME is set, "
            "KLERK_CRED_PROEF_PASSWORD is not): ",
        ),
    ],
    ids=["none", "no password"],
)
def test_missing_credentials_say_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DefinitionError) as caught:
        load_credentials("PROEF")
    assert caught.value.problems == [
        expected + "set KLERK_CRED_PROEF_USERNAME and KLERK_CRED_PROEF_PASSWORD in the "
        "environment or in .env, or store them with `keyring set klerk PROEF` (username) and "
        "`keyring set klerk PROEF:password`"
    ]


def test_good_definition_loads(tmp_path: Path) -> None:
    path = tmp_path / "taak.yaml"
    path.write_text(GOOD, encoding="utf-8")
    task = load_model(path, Task)
    assert task.name == "proef" and len(task.steps) == 2


def _klerk(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "COLUMNS": "200",
            "KLERK_HOME": str(cwd),
        },
    )


def test_validate_cli_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "kapot.yaml"
    broken.write_text(GOOD.replace("goto:", "gotoo:").replace("app: parkeren", "app: parkeer"))
    good = tmp_path / "goed.yaml"
    good.write_text(GOOD)

    result = _klerk("validate", str(good), str(broken), cwd=tmp_path)

    assert result.returncode == 2
    assert f"{good}: ok" in result.stdout
    assert f"{broken}:7:5: unknown step 'gotoo'; did you mean 'goto'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_names_an_unknown_app(tmp_path: Path) -> None:
    path = tmp_path / "taak.yaml"
    path.write_text(GOOD.replace("app: parkeren", "app: parkeer"))
    result = _klerk("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown app 'parkeer'; did you mean 'parkeren'?" in result.stderr


def test_validate_names_unknown_connectors_with_their_place(tmp_path: Path) -> None:
    path = tmp_path / "taak.yaml"
    path.write_text(GOOD.replace("kind: xlsx", "kind: xslx") + "sink: {kind: excel, path: u}\n")
    result = _klerk("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:5:16: unknown source kind 'xslx'; did you mean 'xlsx'?; expected one of: csv, "
        "none, xlsx",
        f"{path}:9:14: unknown sink kind 'excel'; expected one of: csv, xlsx",
    ]


def test_shipped_definitions_validate(tmp_path: Path) -> None:
    result = _klerk("validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shipped = [
        *(ROOT / "tasks" / "definitions").glob("*.yaml"),
        *(ROOT / "bots" / "apps").glob("*.yaml"),
    ]
    assert result.stdout.count(": ok") == len(shipped)


def test_schema_describes_steps(tmp_path: Path) -> None:
    result = _klerk("schema", cwd=tmp_path)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert {"FillStep", "ExtractTableStep", "ActionStep"} <= set(schema["$defs"])


def test_unknown_task_name_suggests(tmp_path: Path) -> None:
    result = _klerk("run", "vergunningen-invoere", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown task 'vergunningen-invoere'; did you mean 'vergunningen-invoeren'?" in (
        result.stderr
    )


@pytest.mark.parametrize(("option", "file"), [((), "task"), (("--apps",), "app")])
def test_shipped_schema_files_are_current(
    tmp_path: Path, option: tuple[str, ...], file: str
) -> None:
    result = _klerk("schema", *option, cwd=tmp_path)
    assert result.returncode == 0
    shipped = (ROOT / "schemas" / f"{file}.schema.json").read_text(encoding="utf-8")
    assert json.loads(result.stdout) == json.loads(shipped), "run: klerk schema > schemas/..."


def test_an_app_of_the_municipality_itself_is_found_in_its_apps_folder(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    shipped = (ROOT / "bots" / "apps" / "parkeren.yaml").read_text(encoding="utf-8")
    (tmp_path / "apps" / "eigen.yaml").write_text(shipped.replace("name: parkeren", "name: eigen"))
    own = tmp_path / "taak.yaml"
    own.write_text(GOOD.replace("app: parkeren", "app: eigen"))
    typo = tmp_path / "tikfout.yaml"
    typo.write_text(GOOD.replace("app: parkeren", "app: eigne"))

    result = _klerk("validate", str(own), str(typo), cwd=tmp_path)

    assert result.returncode == 2
    assert f"{own}: ok" in result.stdout
    assert "unknown app 'eigne'; did you mean 'eigen'?" in result.stderr


def test_validate_checks_an_app_file_as_an_app(tmp_path: Path) -> None:
    """An app definition, in the apps folder or given by path, is checked against the app
    schema (not reported as a task lacking `steps`), with line and column."""
    (tmp_path / "apps").mkdir()
    shipped = (ROOT / "bots" / "apps" / "afval.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "apps" / "containers.yaml"
    broken.write_text(shipped.replace("session_expired:", "sesion_expired:"), encoding="utf-8")
    elsewhere = tmp_path / "containers-kopie.yaml"
    elsewhere.write_text(shipped.replace("timeout_ms: ", "timeout_ms: x"), encoding="utf-8")

    given = _klerk(
        "validate", str(ROOT / "bots" / "apps" / "afval.yaml"), str(elsewhere), cwd=tmp_path
    )
    everything = _klerk("validate", cwd=tmp_path)

    assert given.returncode == 2
    assert f"{ROOT / 'bots' / 'apps' / 'afval.yaml'}: ok" in given.stdout
    line = next(
        n for n, text in enumerate(shipped.splitlines(), 1) if text.startswith("timeout_ms:")
    )
    assert given.stderr.startswith(
        f"{elsewhere}:{line}:13: timeout_ms: Input should be a valid integer"
    )
    assert everything.returncode == 2
    assert "needs `steps`" not in everything.stderr
    assert f"{broken}:" in everything.stderr
    assert "unknown key 'sesion_expired'" in everything.stderr
    assert "did you mean 'session_expired'?" in everything.stderr
