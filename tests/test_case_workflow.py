"""The case workflow on the real time-skipping Temporal server: updates, validators, timers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType

from application.gateway import Refused
from domain.calendar import add_months
from workflows.case import CaseWorkflow

pytestmark = pytest.mark.slow


async def trace_of_steps(handle) -> list[str]:
    """History events a step leaves: updates accepted or completed, activities, markers.

    (Workflow-task bookkeeping of a rejected update is dropped by a real server's speculative
    tasks; the time-skipping test server keeps it, so it is not counted.)
    """
    history = await handle.fetch_history()
    kinds = ("UPDATE", "ACTIVITY", "MARKER", "TIMER")
    return [EventType.Name(e.event_type) for e in history.events
            if any(k in EventType.Name(e.event_type) for k in kinds)]


async def grant(h, case: str, programme: str = "training_apartment") -> None:
    await h.apply(case)
    await h.step(type="start_assessment", case=case)
    await h.step(type="decide", case=case, outcome="granted", programme=programme)


async def house(h, case: str, apartment: str) -> None:
    await h.step(type="register_apartment", apartment=apartment, landlord="Stockholmshem", rooms=2)
    await h.step(type="offer", case=case, apartment=apartment)
    await h.step(type="landlord_decision", case=case, approved=True)
    await h.step(type="move_in", case=case, apartment=apartment)


async def test_full_journey_from_application_to_first_hand_lease_across_years(harness):
    h = harness
    await grant(h, "j-1")
    await h.env.sleep(timedelta(days=40))
    await house(h, "j-1", "apt-j1")
    for _ in range(13):  # weekly visits for the first three months
        await h.env.sleep(timedelta(days=7))
        await h.step(type="record_visit", case="j-1", kind="home_visit",
                     checklist={"rent_paid": True, "home_insurance": True, "in_housing_queue": True})
    for _ in range(7):  # then monthly
        await h.env.sleep(timedelta(days=30))
        await h.step(type="record_visit", case="j-1", kind="home_visit")
    with pytest.raises(Refused, match="needs 12 months in the training apartment"):
        await h.step(type="refer_takeover", case="j-1")
    await h.env.sleep(timedelta(days=70))
    await h.step(type="refer_takeover", case="j-1")
    await h.step(type="takeover_decision", case="j-1", approved=True)
    await h.step(type="exit", case="j-1", destination="first_hand_lease")

    outcome = await h.handle("j-1").result()
    assert outcome.outcome == "first_hand_lease"
    events = h.events("j-1")
    assert events[:3] == ["Applied", "AssessmentStarted", "Granted"]
    assert events[-3:] == ["TakeoverReferred", "TakeoverApproved", "Exited"]
    assert "TakeoverEligibilityNoted" in events
    assert h.store.get_apartment("apt-j1").status == "taken_over"
    assert (await h.handle("j-1").query(CaseWorkflow.status)).outcome == "first_hand_lease"


async def test_unexecuted_decision_is_noted_at_three_months_and_again_each_quarter(harness):
    h = harness
    await grant(h, "d-1")
    decided = await h.today()
    limit = add_months(decided, 3)
    await h.env.sleep(timedelta(days=(limit - decided).days - 1))
    assert "UnexecutedDecisionNoted" not in h.events("d-1")
    await h.env.sleep(timedelta(days=3))
    assert h.events("d-1").count("UnexecutedDecisionNoted") == 1
    await h.env.sleep(timedelta(days=92))
    assert h.events("d-1").count("UnexecutedDecisionNoted") == 2
    deadlines = [r["details"]["deadline"] for r in h.store.history("d-1")
                 if r["event"] == "UnexecutedDecisionNoted"]
    assert deadlines == [add_months(decided, 3), add_months(decided, 6)]
    await house(h, "d-1", "apt-d1")
    await h.env.sleep(timedelta(days=200))
    assert h.events("d-1").count("UnexecutedDecisionNoted") == 2


async def test_deadline_is_not_noted_when_the_decision_is_executed_in_time(harness):
    h = harness
    await grant(h, "d-2")
    await h.env.sleep(timedelta(days=60))
    await house(h, "d-2", "apt-d2")
    await h.env.sleep(timedelta(days=60))
    assert "UnexecutedDecisionNoted" not in h.events("d-2")


async def test_visit_reminders_are_weekly_for_three_months_then_monthly(harness):
    h = harness
    await grant(h, "v-1")
    await house(h, "v-1", "apt-v1")
    moved_in = await h.today()
    status = await h.handle("v-1").query(CaseWorkflow.status)
    visit = next(i for i in status.due if i.kind == "home_visit")
    assert visit.due == moved_in + timedelta(days=7)

    await h.env.sleep(timedelta(days=9))  # a week passes with no visit
    overdue = [r for r in h.store.history("v-1") if r["event"] == "VisitOverdueNoted"]
    assert [r["details"]["due"] for r in overdue] == [moved_in + timedelta(days=7)]

    await h.step(type="record_visit", case="v-1", kind="home_visit")
    visited = await h.today()
    status = await h.handle("v-1").query(CaseWorkflow.status)
    assert next(i for i in status.due if i.kind == "home_visit").due == visited + timedelta(days=7)

    await h.env.sleep(timedelta(days=(add_months(moved_in, 3) - visited).days + 1))
    await h.step(type="record_visit", case="v-1", kind="home_visit")
    late_visit = await h.today()
    status = await h.handle("v-1").query(CaseWorkflow.status)
    assert next(i for i in status.due if i.kind == "home_visit").due == add_months(late_visit, 1)


async def test_refused_update_leaves_no_trace_in_history_or_event_store(harness):
    h = harness
    await grant(h, "r-1")
    handle = h.handle("r-1")
    before_history = await trace_of_steps(handle)
    before_events = h.events("r-1")
    with pytest.raises(Refused) as refused:
        await h.step(type="move_in", case="r-1", apartment="apt-x")
    assert str(refused.value) == (
        "case r-1 is waiting for an apartment: move_in needs an offer approved by the "
        "landlord; allowed now: offer, course_session, assign, exit"
        ", plan, plan_review, temporary_placement, placement_ended"
    )
    future = (await h.today()) + timedelta(days=2)
    with pytest.raises(Refused, match="is after today"):
        await h.step(type="exit", case="r-1", destination="withdrawn", on=future.isoformat())
    with pytest.raises(Refused, match="exit to terminated"):
        await h.step(type="exit", case="r-1", destination="terminated")
    assert await trace_of_steps(handle) == before_history
    assert h.events("r-1") == before_events


async def test_the_same_command_twice_gives_one_event(harness):
    h = harness
    await h.apply("i-1")
    first = await h.step(type="start_assessment", case="i-1", id="same-command")
    again = await h.step(type="start_assessment", case="i-1", id="same-command")
    assert first.accepted
    assert again.model_dump(exclude={"duplicate"}) == first.model_dump(exclude={"duplicate"})
    assert h.events("i-1").count("AssessmentStarted") == 1


async def test_step_for_a_case_that_does_not_exist_is_refused(harness):
    with pytest.raises(Refused, match="case ghost does not exist"):
        await harness.step(type="start_assessment", case="ghost")


async def test_apply_for_an_existing_case_is_refused(harness):
    await harness.apply("e-1")
    with pytest.raises(Refused, match="case e-1 already exists"):
        await harness.apply("e-1")


async def test_two_caseworkers_deciding_at_once_one_is_accepted_the_other_refused(harness):
    import asyncio

    h = harness
    await h.apply("cc-1")
    await h.step(type="start_assessment", case="cc-1")
    outcomes = await asyncio.gather(
        h.step(type="decide", case="cc-1", outcome="granted", programme="housing_first",
               actor="handlaggare.lind"),
        h.step(type="decide", case="cc-1", outcome="denied", reason="not in the target group",
               actor="handlaggare.ek"),
        return_exceptions=True,
    )
    accepted = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert len(accepted) == 1 and len(refused) == 1
    assert str(refused[0]).startswith("case cc-1 is ")
    assert "decide" in str(refused[0])
    events = h.events("cc-1")
    assert events.count("Granted") + events.count("Denied") == 1


async def test_a_housing_first_case_started_now_raises_its_weekly_coordinator_meeting(harness):
    """Behind "case-file-v3": the programme's rules (policy `programmes`); a workflow recorded
    before the patch keeps the global rules (tests/test_replay.py replays those)."""
    h = harness
    await grant(h, "hf-1", programme="housing_first")
    await house(h, "hf-1", "apt-hf1")
    moved_in = await h.today()
    status = await h.handle("hf-1").query(CaseWorkflow.status)
    due = {i.kind: i.due for i in status.due}
    assert due["coordinator_meeting"] == moved_in + timedelta(days=7)
    assert due["inspection"] == add_months(moved_in, 3)

    await h.env.sleep(timedelta(days=9))  # a week passes without the meeting
    overdue = [r["details"] for r in h.store.history("hf-1") if r["event"] == "VisitOverdueNoted"]
    assert {"kind": "coordinator_meeting", "due": moved_in + timedelta(days=7)} in overdue
    await h.step(type="record_visit", case="hf-1", kind="coordinator_meeting")
    met = await h.today()
    status = await h.handle("hf-1").query(CaseWorkflow.status)
    assert next(i for i in status.due if i.kind == "coordinator_meeting").due == \
        met + timedelta(days=7)


async def test_support_interrupted_and_not_resumed_raises_a_reminder_each_quarter(harness):
    h = harness
    await grant(h, "si-1")
    await h.step(type="assign", case="si-1", role="housing_pilot", to="pilot.x")
    await house(h, "si-1", "apt-si1")
    await h.step(type="plan", case="si-1", sub_goals=[])
    await h.step(type="support_interrupted", case="si-1", kind="hospital")
    await h.env.sleep(timedelta(days=200))  # three months, then the next quarter's limit
    noted = [r["details"] for r in h.store.history("si-1") if r["event"] == "CaseFileDueNoted"]
    assert sum(1 for n in noted if n["kind"] == "support_interrupted") == 2


async def test_a_move_in_without_pilot_plan_or_lasting_lease_raises_each_of_them(harness):
    h = harness
    await grant(h, "pm-1")
    await h.step(type="register_apartment", apartment="apt-pm1", landlord="S", rooms=2)
    await h.step(type="offer", case="pm-1", apartment="apt-pm1")
    await h.step(type="landlord_decision", case="pm-1", approved=True)
    moved = await h.today()
    await h.step(type="move_in", case="pm-1", apartment="apt-pm1",
                 lease_end=(moved + timedelta(days=90)).isoformat())
    await h.env.sleep(timedelta(days=45))  # past the plan's 30 days and the lease's 60-day warning
    noted = {r["details"]["kind"]: r["details"]["due"] for r in h.store.history("pm-1")
             if r["event"] == "CaseFileDueNoted"}
    assert str(noted["pilot_missing"]) == moved.isoformat()
    assert str(noted["plan_missing"]) == (moved + timedelta(days=30)).isoformat()
    assert str(noted["lease_renewal"]) == (moved + timedelta(days=30)).isoformat()
