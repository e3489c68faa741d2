"""Long journeys continue as new and keep their state, history and deduplication."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType

from tests.test_case_workflow import grant, house
from workflows.case import CaseWorkflow

pytestmark = pytest.mark.slow


async def test_five_years_of_weekly_visits_continue_as_new_and_stay_small(harness):
    h = harness
    await grant(h, "long-1", programme="housing_first")
    await house(h, "long-1", "apt-long")
    handle = h.handle("long-1")
    first_run = (await handle.describe()).run_id
    visit_ids = []
    for week in range(5 * 52):
        await h.env.sleep(timedelta(days=7))
        result = await h.step(type="record_visit", case="long-1", kind="home_visit",
                              id=f"visit-{week}")
        assert result.accepted
        visit_ids.append(result.command_id)

    described = await h.env.client.get_workflow_handle("case-long-1").describe()
    assert described.run_id != first_run, "the workflow should have continued as new"
    history = await h.env.client.get_workflow_handle("case-long-1").fetch_history()
    assert len(history.events) < 2_500  # Temporal warns at 10,240 events and stops at 51,200
    kinds = {EventType.Name(e.event_type) for e in history.events}
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" not in kinds  # the current run

    assert h.events("long-1").count("VisitRecorded") == 5 * 52
    status = await h.env.client.get_workflow_handle("case-long-1").query(CaseWorkflow.status)
    assert status.stage == "training"
    visit_due = next(i for i in status.due if i.kind == "home_visit")
    assert visit_due.due > (await h.today())

    # a retried step from before the last continue-as-new is still answered, not doubled
    again = await h.step(type="record_visit", case="long-1", kind="home_visit", id=visit_ids[5])
    assert again.accepted and again.duplicate
    assert h.events("long-1").count("VisitRecorded") == 5 * 52
    await h.step(type="exit", case="long-1", destination="own_housing")
    outcome = await h.handle("long-1").result()
    assert outcome.outcome == "own_housing"
