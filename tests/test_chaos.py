"""Exactly once under chaos: 100 items through 10 % HTTP 500s, busy pages, latency, sessions
that expire every few seconds and two SIGKILLs of the runner, then resume."""

from __future__ import annotations

import pytest

from tests.chaos import run_chaos
from tests.conftest import DemoApp, Klerk

pytestmark = pytest.mark.browser


def test_nothing_lost_nothing_twice_after_faults_and_kills(klerk: Klerk, demo_app: DemoApp) -> None:
    result = run_chaos(klerk, demo_app, items=100, kills=2, seed=5)

    assert (result.lost, result.duplicated) == ([], []), result.summary()
    assert result.states == {"done": 100}, result.summary()
    assert result.faults["errors_injected"] > 0 and result.faults["sessions_expired"] > 0
    assert result.verify.returncode == 0, result.verify.stdout + result.verify.stderr
