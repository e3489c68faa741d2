"""Stall rules, reminders and escalation fire at the right simulated time, and not after the
step that resolves them (time-skipping server)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.notify import Notifier
from tests.test_case_workflow import grant, house
from workflows.case import CaseWorkflow

pytestmark = pytest.mark.slow


def notes(h, case: str, event: str) -> list[dict]:
    return [r["details"] for r in h.store.history(case) if r["event"] == event]


async def test_an_assessment_open_longer_than_the_policy_allows_is_noted_as_stalled(harness):
    h = harness
    await h.apply("st-1")
    await h.step(type="start_assessment", case="st-1")
    started = await h.today()
    await h.env.sleep(timedelta(days=30))
    assert notes(h, "st-1", "StageStalledNoted") == []
    await h.env.sleep(timedelta(days=2))
    assert notes(h, "st-1", "StageStalledNoted") == [{"stage": "assessment", "since": started}]


async def test_a_decision_before_the_stall_limit_means_no_stall(harness):
    h = harness
    await h.apply("st-2")
    await h.step(type="start_assessment", case="st-2")
    await h.env.sleep(timedelta(days=20))
    await h.step(type="decide", case="st-2", outcome="granted", programme="housing_first")
    await h.env.sleep(timedelta(days=40))
    assert notes(h, "st-2", "StageStalledNoted") == []


async def test_an_offer_without_the_landlords_answer_stalls_after_fourteen_days(harness):
    h = harness
    await grant(h, "st-3")
    await h.step(type="register_apartment", apartment="apt-st3", landlord="SH", rooms=1)
    await h.step(type="offer", case="st-3", apartment="apt-st3")
    await h.env.sleep(timedelta(days=16))
    assert [n["stage"] for n in notes(h, "st-3", "StageStalledNoted")] == ["offered"]


async def test_an_unanswered_visit_reminder_escalates_after_the_policy_days(harness):
    h = harness
    await grant(h, "es-1")
    await house(h, "es-1", "apt-es1")
    moved_in = await h.today()
    await h.env.sleep(timedelta(days=8))  # the visit due a week after move-in was not made
    assert [n["due"] for n in notes(h, "es-1", "VisitOverdueNoted")] == [
        moved_in + timedelta(days=7)]
    assert notes(h, "es-1", "ReminderEscalatedNoted") == []
    await h.env.sleep(timedelta(days=7))
    escalated = notes(h, "es-1", "ReminderEscalatedNoted")
    assert {"kind": "home_visit", "due": moved_in + timedelta(days=7)} in escalated


async def test_a_visit_after_the_reminder_answers_it_and_nothing_escalates(harness):
    h = harness
    await grant(h, "es-2")
    await house(h, "es-2", "apt-es2")
    await h.env.sleep(timedelta(days=8))
    assert len(notes(h, "es-2", "VisitOverdueNoted")) == 1
    await h.step(type="record_visit", case="es-2", kind="home_visit")
    await h.env.sleep(timedelta(days=6))
    await h.step(type="record_visit", case="es-2", kind="home_visit")
    await h.env.sleep(timedelta(days=4))
    assert [n["kind"] for n in notes(h, "es-2", "ReminderEscalatedNoted")] == []


async def test_reminders_go_to_the_assigned_pilot_or_else_the_caseworker(harness):
    h = harness
    await grant(h, "rt-1")
    await house(h, "rt-1", "apt-rt1")
    await h.step(type="assign", case="rt-1", role="housing_pilot", to="bolots.ahmed")
    status = await h.handle("rt-1").query(CaseWorkflow.status)
    visit = next(i for i in status.due if i.kind == "home_visit")
    await h.env.sleep(timedelta(days=9))
    outbox = Notifier(h.settings).outbox
    reminder = f"case-rt-1:home_visit:{visit.due}"
    assert outbox.status(reminder) is not None  # delivered: the worklist always has it
    from domain.due import responsible

    snapshot = h.store.snapshot("rt-1")
    assert responsible(snapshot, "home_visit") == "bolots.ahmed"
    assert responsible(snapshot, "unexecuted_decision") == "handlaggare.lind"
