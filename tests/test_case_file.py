"""The case file the municipalities describe: the housing pilot, the individual plan,
temporary placements and the rest of the issue, each rule a test named as the rule.

Rules on the aggregate use the case-rules driver; due rules use `domain.due` on a snapshot;
worklist rules run the store, the projection and the worklist as tests/test_worklist.py does.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from application.store import snapshot_of
from domain.due import case_file_due, due_items
from domain.errors import StepNotAllowed
from domain.policy import Policy
from domain.stages import Stage
from projections.reports import placements
from projections.worklist import worklist
from tests.test_case_rules import MOVE_IN, Driver, drive
from tests.test_worklist import TODAY, build, granted, housed, kinds

REFUSE = Policy(pilot_at_move_in="refuse")
WARN = Policy()


def approved(case_id: str = "c-17") -> Driver:
    return drive(Stage.APPROVED, case_id)


def move_in(d: Driver, policy: Policy) -> None:
    d.case.move_in("apt-1", **d.kw(on=MOVE_IN), pilot_at_move_in=policy.pilot_at_move_in)
    d.events += d.case.collect_events()


# --- 4. the housing pilot is part of the package --------------------------------------------


def test_cannot_move_into_a_training_apartment_without_a_pilot_when_the_policy_refuses():
    d = approved()
    version = d.case.version
    with pytest.raises(StepNotAllowed) as caught:
        d.case.move_in("apt-1", **d.kw(on=MOVE_IN), pilot_at_move_in="refuse")
    assert "needs an assigned housing pilot" in str(caught.value)
    assert d.case.version == version and d.case.stage is Stage.APPROVED


def test_a_move_in_with_an_assigned_pilot_is_accepted_when_the_policy_refuses():
    d = approved()
    d.do("assign", "housing_pilot", "bolots.ahmed")
    move_in(d, REFUSE)
    assert d.case.stage is Stage.TRAINING


def test_the_default_policy_warns_so_existing_imports_keep_working():
    assert Policy().pilot_at_move_in == "warn"


def test_a_missing_pilot_is_due_from_the_move_in_day_when_the_policy_warns():
    d = approved()
    move_in(d, WARN)
    snap = snapshot_of(d.case)
    item = case_file_due(snap, WARN)[0]
    assert (item.kind, item.due) == ("pilot_missing", MOVE_IN)
    # behind the patch only: a workflow that started before it keeps its old timers
    assert "pilot_missing" not in {i.kind for i in due_items(snap, WARN, {}, MOVE_IN)}
    assert "pilot_missing" in {i.kind for i in due_items(snap, WARN, {}, MOVE_IN, case_file=True)}
    # raised once: after the reminder about that due date it is not due again
    reminded = {"pilot_missing": MOVE_IN}
    assert "pilot_missing" not in {i.kind for i in due_items(snap, WARN, reminded, MOVE_IN,
                                                             case_file=True)}


def test_a_missing_pilot_is_no_longer_due_once_a_pilot_is_assigned():
    d = approved()
    move_in(d, WARN)
    assert d.case.note_case_file_due("pilot_missing", MOVE_IN, command_id="n1") is True
    assert d.case.note_case_file_due("pilot_missing", MOVE_IN, command_id="n2") is False
    d.events += d.case.collect_events()
    d.do("assign", "housing_pilot", "bolots.ahmed", on=MOVE_IN + timedelta(days=2))
    assert "pilot_missing" not in {i.kind for i in case_file_due(snapshot_of(d.case), WARN)}
    assert d.case.note_case_file_due("pilot_missing", MOVE_IN + timedelta(days=1),
                                     command_id="n3") is False


def test_a_missing_pilot_is_on_the_caseworkers_worklist_from_the_move_in_day(tmp_path):
    runner = build(tmp_path, [*granted("p-1", "2026-09-01", "2026-09-10"),
                              *housed("p-1", "lgh-1", "2026-11-20"),
                              *granted("p-2", "2026-09-01", "2026-09-10"),
                              {"type": "assign", "case": "p-2", "role": "housing_pilot",
                               "to": "bolots.ahmed", "on": "2026-09-11"},
                              *housed("p-2", "lgh-2", "2026-11-20")])
    caseworker = worklist(runner.view, "handlaggare.lind", WARN, TODAY)
    assert kinds(caseworker, "p-1")["pilot_missing"] == ("2026-11-20", "overdue")
    assert "pilot_missing" not in kinds(worklist(runner.view, None, WARN, TODAY), "p-2")



# --- 1. the individual plan -----------------------------------------------------------------

SUB_GOALS = [
    {"id": "rent", "goal": "pays the rent on time", "responsible": "cw-anna",
     "follow_up": "2025-03-01"},
    {"id": "work", "goal": "daily activity", "responsible": "bolots.ahmed",
     "follow_up": "2025-04-01"},
]


def in_training() -> Driver:
    d = approved()
    move_in(d, WARN)
    return d


def test_a_case_in_training_without_a_plan_is_due_plan_within_days_after_move_in():
    d = in_training()
    due = {i.kind: i.due for i in case_file_due(snapshot_of(d.case), Policy(plan_within_days=45))}
    assert due["plan_missing"] == MOVE_IN + timedelta(days=45)
    d.do("plan", "own housing", SUB_GOALS)
    assert "plan_missing" not in {i.kind for i in case_file_due(snapshot_of(d.case), WARN)}


def test_a_sub_goal_past_its_follow_up_date_is_due_until_it_is_reviewed():
    d = in_training()
    d.do("plan", "own housing", SUB_GOALS)
    due = {i.kind: i.due for i in case_file_due(snapshot_of(d.case), WARN)}
    assert due["sub_goal:rent"] == date(2025, 3, 1) and due["sub_goal:work"] == date(2025, 4, 1)
    d.do("plan_review", [{"sub_goal": "rent", "result": "met", "note": ""},
                         {"sub_goal": "work", "result": "partly", "note": "started at the café",
                          "next_follow_up": "2025-06-01"}], on=date(2025, 3, 2))
    due = {i.kind: i.due for i in case_file_due(snapshot_of(d.case), WARN)}
    assert "sub_goal:rent" not in due and due["sub_goal:work"] == date(2025, 6, 1)
    assert d.case.note_case_file_due("sub_goal:work", date(2025, 4, 1), command_id="x") is False


def test_a_plan_review_needs_a_plan_and_an_open_sub_goal():
    d = in_training()
    assert "needs a plan first" in d.refused(
        StepNotAllowed, "plan_review", [{"sub_goal": "rent", "result": "met", "note": ""}])
    d.do("plan", "own housing", SUB_GOALS)
    assert "needs an open sub-goal of the plan, not nope" in d.refused(
        StepNotAllowed, "plan_review", [{"sub_goal": "nope", "result": "met", "note": ""}])


def test_a_plan_needs_follow_up_dates_on_or_after_the_plan():
    d = in_training()
    early = [{**SUB_GOALS[0], "follow_up": "2024-12-01"}]
    assert "needs follow-up dates on or after the plan" in d.refused(
        StepNotAllowed, "plan", "own housing", early)


def test_the_plan_and_its_sub_goals_are_on_the_worklist(tmp_path):
    runner = build(tmp_path, [
        *granted("p-1", "2026-08-01", "2026-08-10"), *housed("p-1", "lgh-1", "2026-09-01"),
        *granted("p-2", "2026-08-01", "2026-08-10"), *housed("p-2", "lgh-2", "2026-09-01"),
        {"type": "plan", "case": "p-2", "on": "2026-09-05", "sub_goals": [
            {"id": "rent", "goal": "rent on time", "responsible": "handlaggare.lind",
             "follow_up": "2026-11-01"}]},
    ])
    rows = worklist(runner.view, None, WARN, TODAY)
    assert kinds(rows, "p-1")["plan_missing"] == ("2026-10-01", "overdue")
    assert "plan_missing" not in kinds(rows, "p-2")
    assert kinds(rows, "p-2")["sub_goal:rent"] == ("2026-11-01", "overdue")


# --- 2. temporary accommodation while waiting -----------------------------------------------


def test_a_temporary_placement_while_waiting_can_be_ended_after_the_move_in():
    d = drive(Stage.WAITING)
    d.do("temporary_placement", "tp-1", "hotel", d.day, None, Decimal("950"))
    for step in (("offer", "apt-1"), ("landlord_decision", True, None)):
        d.do(*step)
    move_in(d, WARN)
    d.do("placement_ended", "tp-1", MOVE_IN)
    assert d.case.placements == {}


def test_a_placement_cannot_end_before_it_started_nor_twice():
    d = drive(Stage.WAITING)
    d.do("temporary_placement", "tp-1", "shelter", d.day, None, None)
    assert "before it started" in d.refused(StepNotAllowed, "placement_ended", "tp-1",
                                            d.day - timedelta(days=3))
    d.do("placement_ended", "tp-1", d.day + timedelta(days=4))
    assert "needs an open placement" in d.refused(StepNotAllowed, "placement_ended", "tp-1",
                                                  d.day + timedelta(days=5))
    assert "needs a new placement id" in d.refused(
        StepNotAllowed, "temporary_placement", "tp-1", "hotel", d.day, None, None)


def test_a_temporary_placement_needs_a_case_not_yet_moved_in():
    d = in_training()
    assert "needs a granted decision, not yet moved in" in d.refused(
        StepNotAllowed, "temporary_placement", "tp-1", "hotel", d.day, None, None)


def test_the_placements_report_counts_placements_nights_and_cost_per_period(tmp_path):
    runner = build(tmp_path, [
        *granted("t-1", "2026-08-01", "2026-08-10"),
        {"type": "temporary_placement", "case": "t-1", "on": "2026-08-11", "placement": "h1",
         "kind": "hotel", "start": "2026-08-30", "cost_per_night": "1000"},
        {"type": "placement_ended", "case": "t-1", "on": "2026-09-03", "placement": "h1"},
        {"type": "temporary_placement", "case": "t-1", "on": "2026-09-03", "placement": "c1",
         "kind": "camping_cabin", "end": "2026-09-05"},
        *granted("t-2", "2026-08-01", "2026-08-10"),
        {"type": "temporary_placement", "case": "t-2", "on": "2026-11-20", "placement": "s1",
         "kind": "shelter", "cost_per_night": "300"},
    ])
    report = placements(runner.view, "month", as_of=TODAY)
    rows = {(r["group"], r["kind"]): r for r in report["rows"]}
    assert (rows["2026-08", "hotel"]["placements"], rows["2026-08", "hotel"]["nights"],
            rows["2026-08", "hotel"]["cost"]) == (1, 2, "2000")
    assert (rows["2026-09", "hotel"]["placements"], rows["2026-09", "hotel"]["nights"]) == (0, 2)
    assert rows["2026-09", "camping_cabin"]["nights"] == 2
    assert rows["2026-11", "shelter"]["nights"] == (TODAY - date(2026, 11, 20)).days
    assert report["totals"]["placements"] == 3
