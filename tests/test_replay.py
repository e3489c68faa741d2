"""Replay safety: recorded workflow histories must replay with the current workflow code.

A change to CaseWorkflow that alters the commands it issues for an existing history (a new
timer, an activity moved) breaks running cases; this test fails CI when that happens. Make
such changes behind `workflow.patched(...)` (see the README), then re-record the fixtures
with `python -m tests.record_histories`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "histories").glob("*.json"))


def test_there_are_recorded_histories_to_replay():
    assert len(FIXTURES) >= 4


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
async def test_recorded_history_replays_with_current_code(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
