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
from domain.commands import import_line_adapter
from domain.due import case_file_due, due_items
from domain.errors import StepNotAllowed
from domain.policy import Policy
from domain.stages import Stage
from projections.reports import arrears, ivo, placements, supply
from projections.worklist import worklist
from tests.test_case_rules import MOVE_IN, Driver, drive
from tests.test_case_rules import TODAY as RULES_TODAY
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


def test_a_temporary_placement_still_open_at_the_move_in_ends_on_the_move_in_day():
    d = drive(Stage.WAITING)
    d.do("temporary_placement", "tp-1", "hotel", d.day, None, Decimal("950"))
    d.do("temporary_placement", "tp-2", "family", d.day, d.day + timedelta(days=2), None)
    for step in (("offer", "apt-1"), ("landlord_decision", True, None)):
        d.do(*step)
    moved, ended = d.do("move_in", "apt-1")
    assert type(moved).__name__ == "MovedIn"
    assert (type(ended).__name__, ended.placement, ended.end) == ("PlacementEnded", "tp-1",
                                                                   moved.on)
    assert set(d.case.placements) == {"tp-2"}  # ended as planned, before the move-in
    assert "needs an open placement" in d.refused(StepNotAllowed, "placement_ended", "tp-1",
                                                  moved.on)


def test_a_temporary_placement_still_open_when_the_case_closes_ends_that_day():
    d = drive(Stage.WAITING)
    d.do("temporary_placement", "tp-1", "shelter", d.day, None, None)
    [exited, ended] = d.do("exit", "withdrawn")
    assert (type(ended).__name__, ended.placement, ended.end) == ("PlacementEnded", "tp-1",
                                                                   exited.on)


def test_a_temporary_placement_cannot_start_before_the_application_nor_after_today():
    d = drive(Stage.WAITING)
    assert "before the application" in d.refused(
        StepNotAllowed, "temporary_placement", "tp-1", "hotel", d.case.applied_on
        - timedelta(days=1), None, None)
    assert "record it when it has begun" in d.refused(
        StepNotAllowed, "temporary_placement", "tp-1", "hotel", RULES_TODAY + timedelta(days=1),
        None, None)


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


def test_the_kpis_put_the_years_temporary_placements_against_the_year_befores(tmp_path):
    """Vallentuna: fewer placements in temporary accommodation for those who wait, compared
    with the year before; a year after one without placements has nothing to reduce."""
    from projections.reports import kpis

    def placed(case: str, name: str, start: str) -> dict:
        return {"type": "temporary_placement", "case": case, "on": start, "placement": name,
                "kind": "hotel", "start": start}

    runner = build(tmp_path, [
        *granted("p-1", "2024-11-01", "2024-11-10"), placed("p-1", "h1", "2024-12-31"),
        {"type": "placement_ended", "case": "p-1", "on": "2025-01-02", "placement": "h1"},
        placed("p-1", "h2", "2025-01-02"),  # begun in 2025, though the first ran into it
        {"type": "placement_ended", "case": "p-1", "on": "2025-03-01", "placement": "h2"},
        *granted("p-2", "2025-02-01", "2025-02-10"), placed("p-2", "h3", "2025-02-11"),
        {"type": "placement_ended", "case": "p-2", "on": "2025-06-01", "placement": "h3"},
        placed("p-2", "h4", "2026-01-15"),
    ])

    def row(year: int) -> tuple:
        [r] = [r for r in kpis(runner.view, WARN, year)["rows"] if "placements" in r["measure"]]
        assert r["definition"] == "docs/metrics.md, placements"
        return r["figure"], r["target"], r["met"], r["note"]

    assert row(2025) == (2, "< 1 (2024's)", False, None)
    assert row(2026) == (1, "< 2 (2025's)", True, None)
    assert row(2024) == (1, None, None, "2023 had no placements: nothing to reduce")
    assert [placements(runner.view, "year", date(y, 1, 1), date(y, 12, 31), TODAY)["totals"][
        "placements"] for y in (2024, 2025, 2026)] == [1, 2, 1]


# --- 5. interrupted support -----------------------------------------------------------------

INTERRUPTED = date(2025, 2, 10)


def test_support_interrupted_and_not_resumed_within_three_months_is_due_each_quarter():
    d = in_training()
    d.do("support_interrupted", "hospital", on=INTERRUPTED)
    snap = snapshot_of(d.case)
    # behind the patch "case-file-v2" only
    assert "support_interrupted" not in {i.kind for i in due_items(snap, WARN, {}, MOVE_IN,
                                                                   case_file=True)}
    items = {i.kind: i for i in due_items(snap, WARN, {}, MOVE_IN, case_file_v2=True)}
    assert (items["support_interrupted"].due, items["support_interrupted"].quarter) == (
        date(2025, 5, 10), 1)
    assert d.case.note_case_file_due("support_interrupted", date(2025, 5, 10), command_id="q1")
    d.events += d.case.collect_events()
    item = {i.kind: i for i in due_items(snapshot_of(d.case), WARN, {}, MOVE_IN,
                                         case_file_v2=True)}["support_interrupted"]
    assert (item.due, item.quarter) == (date(2025, 8, 10), 2)
    d.do("support_resumed", on=date(2025, 6, 1))
    assert "support_interrupted" not in {
        i.kind for i in due_items(snapshot_of(d.case), WARN, {}, MOVE_IN, case_file_v2=True)}
    assert d.case.note_case_file_due("support_interrupted", date(2025, 8, 10),
                                     command_id="q2") is False


def test_support_is_interrupted_once_and_resumed_only_when_interrupted():
    d = in_training()
    assert "needs interrupted support" in d.refused(StepNotAllowed, "support_resumed")
    d.do("support_interrupted", "prison", on=INTERRUPTED)
    assert "needs support that is not interrupted" in d.refused(
        StepNotAllowed, "support_interrupted", "treatment")
    assert "needs a tenancy in the training apartment" in drive(Stage.WAITING).refused(
        StepNotAllowed, "support_interrupted", "hospital")


def test_interrupted_support_not_resumed_within_three_months_is_in_the_ivo_report(tmp_path):
    runner = build(tmp_path, [
        *granted("i-1", "2026-01-05", "2026-01-10"), *housed("i-1", "lgh-1", "2026-02-01"),
        {"type": "support_interrupted", "case": "i-1", "kind": "treatment", "on": "2026-03-15"},
        *granted("i-2", "2026-01-05", "2026-01-10"), *housed("i-2", "lgh-2", "2026-02-01"),
        {"type": "support_interrupted", "case": "i-2", "kind": "hospital", "on": "2026-03-15"},
        {"type": "support_resumed", "case": "i-2", "on": "2026-05-01"},
        *granted("i-3", "2026-01-05", "2026-01-10"), *housed("i-3", "lgh-3", "2026-02-01"),
        {"type": "support_interrupted", "case": "i-3", "kind": "prison", "on": "2026-02-10"},
        {"type": "support_resumed", "case": "i-3", "on": "2026-08-01"},
    ])
    q2 = {r["case"]: r for r in ivo(runner.view, "2026Q2")["rows"]}
    assert "i-2" not in q2  # resumed within three months
    assert q2["i-1"]["status"] == q2["i-3"]["status"] == "support_interrupted"  # limits in Q2
    assert q2["i-3"]["rule"] == "support interrupted, not resumed within three months"
    q3 = {r["case"]: r for r in ivo(runner.view, "2026Q3")["rows"]}
    assert (q3["i-1"]["status"], q3["i-1"]["deadline"], q3["i-1"]["interruption"]) == (
        "support_interrupted", "2026-06-15", "treatment")
    assert q3["i-3"]["status"] == "resumed_late" and "i-2" not in q3
    # the kpis' IVO figure reads the interruptions once for eight quarters: the same rows
    from projections.reports import _ivo_counts
    assert _ivo_counts(runner.view, 2026, 2025) == [
        sum(len(ivo(runner.view, f"{year}Q{q}")["rows"]) for q in range(1, 5))
        for year in (2026, 2025)] == [5, 0]  # i-1 in Q2, Q3, Q4; i-3 in Q2, Q3
    rows = worklist(runner.view, None, WARN, TODAY)
    assert kinds(rows, "i-1")["support_interrupted"] == ("2026-09-15", "overdue")
    assert "support_interrupted" not in kinds(rows, "i-3")


# --- 6. moving between apartments of the programme (omflyttning) ----------------------------


def test_a_move_between_apartments_keeps_the_first_move_in_date_and_the_stock_follows_both(
        tmp_path):
    runner = build(tmp_path, [
        *granted("m-1", "2026-01-05", "2026-01-10"), *housed("m-1", "lgh-1", "2026-02-01"),
        {"type": "register_apartment", "apartment": "lgh-2", "landlord": "SH", "rooms": 2,
         "on": "2026-03-01"},
        {"type": "move_apartment", "case": "m-1", "apartment": "lgh-2", "on": "2026-04-01"},
    ])
    case = runner.view.query("SELECT * FROM rm_cases WHERE case_id = 'm-1'")[0]
    assert (case["move_in_on"], case["apartment"], case["first_apartment"]) == (
        "2026-02-01", "lgh-2", "lgh-1")
    stock = {r["apartment_id"]: r for r in runner.view.query("SELECT * FROM rm_apartments")}
    assert (stock["lgh-1"]["status"], stock["lgh-1"]["case_id"]) == ("vacant", None)
    assert (stock["lgh-2"]["status"], stock["lgh-2"]["case_id"]) == ("occupied", "m-1")
    assert runner.app.get_case("m-1").move_in_date == date(2026, 2, 1)


def test_a_move_needs_a_vacant_apartment_and_is_saved_atomically(tmp_path):
    from application.store import HousingChain
    from domain.commands import import_line_adapter
    app = HousingChain(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    lines = [*granted("m-1", "2026-01-05", "2026-01-10"), *housed("m-1", "lgh-1", "2026-02-01"),
             *granted("m-2", "2026-01-05", "2026-01-10"), *housed("m-2", "lgh-2", "2026-02-01")]
    steps = [import_line_adapter.validate_python({"actor": "cw", **line, "id": f"s{n}"})
             for n, line in enumerate(lines)]
    app.run([s.without_identity() if s.type == "apply" else s for s in steps], today=TODAY,
            policy=WARN)
    move = import_line_adapter.validate_python({"type": "move_apartment", "case": "m-1",
                                                "apartment": "lgh-2", "on": "2026-04-01",
                                                "actor": "cw", "id": "mv"})
    result = app.run([move], today=TODAY, policy=WARN)[0]
    assert not result.accepted and "lgh-2 is occupied: move_apartment" in result.reason
    assert "m-2" not in result.reason
    assert app.get_apartment("lgh-1").status.value == "occupied"
    assert app.get_case("m-1").apartment == "lgh-1"
    assert "needs another apartment than apt-1" in in_training().refused(
        StepNotAllowed, "move_apartment", "apt-1")


# --- 7. rent: payments against arrears, instalments -----------------------------------------


def test_a_rent_payment_lowers_the_arrears_never_below_zero_and_each_event_carries_the_balance():
    d = in_training()
    events = d.do("rent_arrears", Decimal("3000"))
    assert events[0].balance == Decimal("3000")
    events = d.do("rent_payment", Decimal("1000"))
    assert (events[0].balance, d.case.arrears) == (Decimal("2000"), Decimal("2000"))
    events = d.do("rent_payment", Decimal("2500"))
    assert (events[0].balance, d.case.arrears, d.case.arrears_without_plan) == (0, 0, False)
    assert "needs rent arrears to pay" in d.refused(StepNotAllowed, "rent_payment", Decimal("5"))


def test_an_arrears_event_recorded_before_balances_still_loads():
    from domain.case import Case
    d = in_training()
    d.do("rent_arrears", Decimal("700"))
    stored = d.events[-1]
    old = object.__new__(type(stored))  # as the store's mapper makes an event it read
    object.__setattr__(old, "__dict__", {k: v for k, v in stored.__dict__.items()
                                         if k != "balance"})
    case = None
    for e in d.events[:-1] + [old]:
        case = e.mutate(case)
    assert isinstance(case, Case) and case.arrears == Decimal("700")


def test_a_missed_instalment_is_due_on_the_worklist(tmp_path):
    def plan(case: str) -> list[dict]:
        return [{"type": "rent_arrears", "case": case, "amount": "3000", "on": "2026-09-01"},
                {"type": "repayment_plan", "case": case, "on": "2026-09-05", "instalments": [
                    {"amount": "1000", "due": "2026-10-01"}, {"amount": "1000", "due": "2026-11-01"},
                    {"amount": "1000", "due": "2026-12-01"}]},
                {"type": "rent_payment", "case": case, "amount": "1000", "on": "2026-09-30"}]
    runner = build(tmp_path, [
        *granted("r-1", "2026-01-05", "2026-01-10"), *housed("r-1", "lgh-1", "2026-02-01"),
        *plan("r-1"),
        *granted("r-2", "2026-01-05", "2026-01-10"), *housed("r-2", "lgh-2", "2026-02-01"),
        *plan("r-2"), {"type": "rent_payment", "case": "r-2", "amount": "1000", "on": "2026-10-30"},
    ])
    rows = worklist(runner.view, None, WARN, TODAY)
    assert kinds(rows, "r-1")["instalment_missed"] == ("2026-11-01", "overdue")
    assert "instalment_missed" not in kinds(rows, "r-2")
    assert {r["case"]: r["amount"] for r in arrears(runner.view)["rows"]} == {
        "r-1": "2000", "r-2": "1000"}
    assert {r["case"]: r["amount"] for r in arrears(runner.view, date(2026, 10, 15))["rows"]} == {
        "r-1": "2000", "r-2": "2000"}
    history = runner.app.history("r-1")
    assert [h["details"]["balance"] for h in history
            if h["event"] in ("RentArrearsRecorded", "RentPaymentRecorded")] == [
        Decimal("3000"), Decimal("2000")]


def test_repayment_instalments_add_up_to_no_more_than_the_arrears():
    d = in_training()
    d.do("rent_arrears", Decimal("1000"))
    with pytest.raises(StepNotAllowed, match="no more than the arrears"):
        d.case.repayment_plan(**d.kw(), instalments=[{"amount": "1500", "due": "2025-03-01"}])


# --- 9. apartments: accessible, landlord type, under repair; the supply report --------------


def test_an_apartment_under_repair_cannot_be_offered_until_repaired(tmp_path):
    from domain.apartment import Apartment, Status
    from domain.errors import ApartmentUnavailable
    kw = {"actor": "sbf", "today": TODAY}
    apartment = Apartment.register("lgh-9", "SBF", 2, on=date(2026, 1, 2), command_id="r", **kw,
                                   accessible=True, landlord_type="municipal_company")
    apartment.check_repair("apartment_to_repair", date(2026, 2, 1))
    apartment.to_repair(on=date(2026, 2, 1), actor="sbf", command_id="t")
    with pytest.raises(ApartmentUnavailable, match="lgh-9 is under_repair: offer needs a vacant"):
        apartment.check_offer("c-1", date(2026, 2, 2))
    with pytest.raises(ApartmentUnavailable):
        apartment.check_repair("apartment_to_repair", date(2026, 2, 2))
    apartment.check_repair("apartment_repaired", date(2026, 3, 1))
    apartment.repaired(on=date(2026, 3, 1), actor="sbf", command_id="f")
    apartment.check_offer("c-1", date(2026, 3, 2))
    assert apartment.status is Status.VACANT and apartment.accessible


def test_the_supply_report_counts_apartments_per_year_landlord_and_type_and_the_accessible(
        tmp_path):
    def apt(n: int, on: str, landlord: str, kind: str | None, accessible: bool) -> dict:
        return {"type": "register_apartment", "apartment": f"s-{n}", "landlord": landlord,
                "rooms": 1, "on": on, "accessible": accessible,
                **({"landlord_type": kind} if kind else {})}
    runner = build(tmp_path, [
        apt(1, "2025-03-01", "Framtiden", "municipal_company", True),
        apt(2, "2025-05-01", "Framtiden", "municipal_company", False),
        apt(3, "2025-06-01", "Privata AB", "private", True),
        apt(4, "2026-01-10", "Framtiden", "municipal_company", True),
        apt(5, "2026-02-10", "SH", None, False),
        {"type": "apartment_to_repair", "apartment": "s-5", "on": "2026-03-01"},
    ])
    report = supply(runner.view)
    rows = {(r["year"], r["landlord"]): r for r in report["rows"]}
    assert (rows["2025", "Framtiden"]["registered"], rows["2025", "Framtiden"]["accessible"]) == (2, 1)
    assert rows["2025", "Privata AB"]["landlord_type"] == "private"
    assert rows["2026", "SH"]["landlord_type"] == "(not recorded)"
    years = {y["year"]: y for y in report["years"]}
    assert (years["2025"]["registered"], years["2025"]["accessible"]) == (3, 2)
    assert years["2025"]["by_landlord_type"] == {"municipal_company": 2, "private": 1}
    status = {r["apartment_id"]: r["status"] for r in runner.view.query("SELECT * FROM rm_apartments")}
    assert status["s-5"] == "under_repair"


# --- 10. support levels and time-limited leases ---------------------------------------------

LEVELS = Policy().support_levels


def test_the_support_level_changes_over_time_and_each_change_is_kept():
    d = in_training()
    first = d.do("support_level", 1, LEVELS, on=date(2025, 2, 1))
    later = d.do("support_level", 3, LEVELS, on=date(2025, 8, 1))
    assert (first[0].level, first[0].name, later[0].previous) == (1, "intensive follow-up", 1)
    assert d.case.level == 3
    assert "changes nothing" in d.refused(StepNotAllowed, "support_level", 3, LEVELS)
    assert "needs a level of the policy's support_levels (1, 2)" in d.refused(
        StepNotAllowed, "support_level", 3, {1: "tight", 2: "loose"})


def test_a_time_limited_lease_is_due_for_renewal_lease_warning_days_before_its_end(tmp_path):
    d = approved()
    d.case.move_in("apt-1", **d.kw(on=MOVE_IN), lease_end=date(2026, 1, 5))
    d.events += d.case.collect_events()
    snap = snapshot_of(d.case)
    assert "lease_renewal" not in {i.kind for i in due_items(snap, WARN, {}, MOVE_IN, case_file=True)}
    due = {i.kind: i.due for i in due_items(snap, Policy(lease_warning_days=30), {}, MOVE_IN,
                                            case_file_v2=True)}
    assert due["lease_renewal"] == date(2025, 12, 6)
    runner = build(tmp_path, [
        *granted("l-1", "2026-01-05", "2026-01-10"), *housed("l-1", "lgh-1", "2026-02-01")[:-1],
        {"type": "move_in", "case": "l-1", "apartment": "lgh-1", "on": "2026-02-01",
         "lease_end": "2027-01-31"},
        {"type": "support_level", "case": "l-1", "level": 2, "on": "2026-02-02"}])
    assert kinds(worklist(runner.view, None, WARN, TODAY), "l-1")["lease_renewal"] == (
        "2026-12-02", "due")
    assert runner.view.query("SELECT support_level FROM rm_cases")[0]["support_level"] == 2


def test_a_lease_must_end_after_the_move_in():
    d = approved()
    with pytest.raises(StepNotAllowed, match="needs a lease that ends after the move-in"):
        d.case.move_in("apt-1", **d.kw(on=MOVE_IN), lease_end=MOVE_IN)


# --- 8. reasons are data: coded refusals and denials, warnings, the takeover's checks --------

LANDLORD_CODES = Policy().reason_codes_for("landlord")


def offered(case_id: str = "c-17") -> Driver:
    return drive(Stage.OFFERED, case_id)


def collect(d: Driver) -> list:
    events = d.case.collect_events()
    d.events += events
    return events


def test_a_landlord_refusal_takes_a_coded_reason_of_the_policy_and_an_optional_note():
    d = offered()
    d.case.landlord_decision(False, "grannar klagade", **d.kw(), reason_code="disturbance",
                             reason_codes=LANDLORD_CODES)
    [event] = collect(d)
    assert (type(event).__name__, event.reason_code, event.reason) == (
        "LandlordRefused", "disturbance", "grannar klagade")
    d.do("offer", "apt-2")
    with pytest.raises(StepNotAllowed, match="needs a reason_code of the policy .*not 'credit'"):
        d.case.landlord_decision(False, None, **d.kw(), reason_code="credit",
                                 reason_codes=LANDLORD_CODES)
    assert d.case.pending_events == [] and d.case.stage is Stage.OFFERED


def test_a_line_with_only_the_free_text_reason_is_coded_other(tmp_path):
    runner = build(tmp_path, [
        *granted("rc-1", "2026-01-05", "2026-01-10"),
        {"type": "register_apartment", "apartment": "lgh-1", "landlord": "SH", "rooms": 1,
         "on": "2026-01-11"},
        {"type": "offer", "case": "rc-1", "apartment": "lgh-1", "on": "2026-01-12"},
        {"type": "landlord_decision", "case": "rc-1", "approved": False, "on": "2026-01-13",
         "reason": "Tidigare hyresskuld hos bolaget"},
    ])
    [refused] = [h for h in runner.app.history("rc-1") if h["event"] == "LandlordRefused"]
    assert (refused["details"]["reason_code"], refused["details"]["reason"]) == (
        "other", "Tidigare hyresskuld hos bolaget")


def test_a_denial_needs_a_coded_or_a_free_text_reason_and_the_code_must_be_the_policys():
    codes = Policy().reason_codes_for("denial")
    d = drive(Stage.ASSESSMENT)
    assert "needs a reason when denied" in d.refused(StepNotAllowed, "decide", "denied", None,
                                                     None)
    with pytest.raises(StepNotAllowed, match="needs a reason_code of the policy"):
        d.case.decide("denied", None, None, **d.kw(), reason_code="rent_history",
                      reason_codes=codes)
    d.case.decide("denied", None, None, **d.kw(), reason_code="own_means", reason_codes=codes)
    [event] = collect(d)
    assert (type(event).__name__, event.reason_code, event.reason) == ("Denied", "own_means", "")


def test_events_recorded_before_reason_codes_and_complaint_kinds_still_load():
    from domain.case import Case
    d = in_training()
    d.do("complaint", "noise")
    stored = d.events[-1]
    old = object.__new__(type(stored))  # as the store's mapper makes an event it read
    object.__setattr__(old, "__dict__", {k: v for k, v in stored.__dict__.items()
                                         if k != "kind"})
    case = None
    for e in d.events[:-1] + [old]:
        case = e.mutate(case)
    assert isinstance(case, Case) and case.complaints == 1 and case.warnings == []


def test_a_warning_within_the_policys_months_refuses_the_takeover_referral():
    d = in_training()
    d.case.complaint("anmodan om rättelse", **d.kw(on=date(2025, 9, 1)), kind="warning")
    d.events += d.case.collect_events()
    d.do("complaint", "noise", on=date(2025, 10, 1))
    assert d.case.warnings == [date(2025, 9, 1)] and d.case.complaints == 2
    referral = date(2026, 2, 1)  # twelve months after the move-in, five after the warning
    with pytest.raises(StepNotAllowed, match=r"needs no warning .* within 6 months: one on "
                                             r"2025-09-01 \(from 2026-03-01\)"):
        d.case.refer_takeover(12, **d.kw(on=referral), warnings_within_months=6)
    assert d.case.pending_events == []
    d.case.refer_takeover(12, **d.kw(on=referral))  # the default policy: the rule is off
    assert d.case.stage is Stage.TAKEOVER_REVIEW
    assert Policy().refuse_referral_with_warnings_within_months is None


def test_the_warning_rule_applies_through_the_store_from_the_policy(tmp_path):
    from application.store import HousingChain
    app = HousingChain(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    policy = Policy(refuse_referral_with_warnings_within_months=6)
    lines = [*granted("wr-1", "2025-01-05", "2025-01-10"), *housed("wr-1", "lgh-1", "2025-02-01"),
             {"type": "complaint", "case": "wr-1", "kind": "warning", "on": "2025-12-01"},
             {"type": "refer_takeover", "case": "wr-1", "on": "2026-03-01"},
             {"type": "refer_takeover", "case": "wr-1", "on": "2026-06-01"}]
    steps = [import_line_adapter.validate_python({"actor": "cw", **line, "id": f"s{n}"})
             for n, line in enumerate(lines)]
    results = app.run([s.without_identity() if s.type == "apply" else s for s in steps],
                      today=TODAY, policy=policy)
    assert not results[-2].accepted and "needs no warning" in results[-2].reason
    assert results[-1].accepted and results[-1].stage == "takeover_review"


def test_a_takeover_decision_records_the_credit_check_and_the_references():
    d = drive(Stage.TAKEOVER_REVIEW)
    d.case.takeover_decision(False, None, **d.kw(), reason_code="credit_check",
                             reason_codes=Policy().reason_codes_for("takeover"),
                             credit_check={"passed": False},
                             references={"rent_paid_on_time": True, "complaints_last_12_months": 0})
    [event] = collect(d)
    assert (event.reason_code, event.credit_check, event.references) == (
        "credit_check", {"passed": False}, {"rent_paid_on_time": True,
                                            "complaints_last_12_months": 0})
    line = import_line_adapter.validate_python({
        "type": "takeover_decision", "case": "c-1", "approved": True,
        "credit_check": {"passed": True},
        "references": {"rent_paid_on_time": True, "complaints_last_12_months": 1}})
    assert line.references.complaints_last_12_months == 1 and line.reason_code is None


def test_the_refusals_report_counts_the_coded_reasons(tmp_path):
    from projections.reports import refusals
    runner = build(tmp_path, [
        *granted("rf-1", "2026-01-05", "2026-01-10"),
        {"type": "register_apartment", "apartment": "lgh-1", "landlord": "SH", "rooms": 1,
         "on": "2026-01-11"},
        {"type": "offer", "case": "rf-1", "apartment": "lgh-1", "on": "2026-01-12"},
        {"type": "landlord_decision", "case": "rf-1", "approved": False, "on": "2026-01-13",
         "reason_code": "references", "reason": "a note that is not counted"},
        {"type": "offer", "case": "rf-1", "apartment": "lgh-1", "on": "2026-01-14"},
        {"type": "landlord_decision", "case": "rf-1", "approved": False, "on": "2026-01-15",
         "reason": "free text only"},
        {"type": "apply", "case": "rf-2", "on": "2026-02-01",
         "client": {"id": "kl-rf-2", "target_group": "elderly", "district": "Farsta"}},
        {"type": "start_assessment", "case": "rf-2", "on": "2026-02-01"},
        {"type": "decide", "case": "rf-2", "on": "2026-02-10", "outcome": "denied",
         "reason_code": "other_support_suffices"},
    ])
    assert refusals(runner.view, "year")["rows"] == [
        {"group": "2026", "kind": "denial", "reason": "other_support_suffices", "count": 1},
        {"group": "2026", "kind": "landlord_refusal", "reason": "other", "count": 1},
        {"group": "2026", "kind": "landlord_refusal", "reason": "references", "count": 1},
    ]


# --- 3. follow-up rules per programme -------------------------------------------------------


def housing_first_in_training() -> Driver:
    d = Driver()
    d.do("start_assessment")
    d.do("decide", "granted", "housing_first", None)
    d.do("offer", "apt-1")
    d.do("landlord_decision", True, None)
    move_in(d, WARN)
    return d


def test_the_default_programme_rules_are_the_global_settings_so_training_apartments_are_unchanged():
    policy = Policy()
    assert policy.rules("training_apartment") == policy.global_rules()
    assert policy.rules("municipal_contract") == policy.global_rules()
    assert policy.rules("housing_first") == policy.global_rules().model_copy(
        update={"coordinator_meeting_days": 7, "inspection_months": 3})
    d = in_training()
    snap = snapshot_of(d.case)
    assert due_items(snap, WARN, {}, MOVE_IN) == due_items(snap, WARN, {}, MOVE_IN,
                                                           case_file_v3=True)


def test_a_policy_that_changes_only_the_global_visit_settings_changes_every_programme():
    policy = Policy(weekly_visits_months=1, follow_up_months=6,
                    programmes={"housing_first": {"inspection_months": 6}})
    assert policy.rules("training_apartment").follow_up_months == 6
    first = policy.rules("housing_first")
    assert (first.weekly_visits_months, first.inspection_months,
            first.coordinator_meeting_days) == (1, 6, 7)


def test_housing_first_has_a_weekly_coordinator_meeting_and_a_quarterly_inspection_behind_v3():
    d = housing_first_in_training()
    snap = snapshot_of(d.case)
    old = {i.kind for i in due_items(snap, WARN, {}, MOVE_IN, case_file=True, case_file_v2=True)}
    assert not {"inspection", "coordinator_meeting"} & old  # runs started before keep theirs
    due = {i.kind: i.due for i in due_items(snap, WARN, {}, MOVE_IN, case_file_v3=True)}
    assert due["coordinator_meeting"] == MOVE_IN + timedelta(days=7)
    assert due["inspection"] == date(2025, 4, 6)
    d.do("record_visit", "coordinator_meeting", None, on=date(2025, 1, 10))
    assert d.case.last_inspection is None  # a coordinator meeting is not an inspection
    due = {i.kind: i.due for i in due_items(snapshot_of(d.case), WARN, {}, MOVE_IN,
                                            case_file_v3=True)}
    assert (due["coordinator_meeting"], due["inspection"]) == (date(2025, 1, 17),
                                                               date(2025, 4, 6))
    assert d.case.note_overdue("coordinator_meeting", date(2025, 1, 10), command_id="o1") is False
    assert d.case.note_overdue("coordinator_meeting", date(2025, 1, 17), command_id="o2") is True


def test_the_coordinator_meeting_is_the_pilots_item_and_the_inspection_the_caseworkers():
    from domain.due import owner_of
    assert owner_of("coordinator_meeting", "cw", "bostadforst.haddad") == "bostadforst.haddad"
    assert owner_of("inspection", "cw", "bostadforst.haddad") == "cw"


def test_the_worklist_follows_the_programmes_rules(tmp_path):
    def granted_as(case: str, programme: str) -> list[dict]:
        lines = granted(case, "2026-08-01", "2026-08-10")
        return lines[:-1] + [{**lines[-1], "programme": programme}]
    runner = build(tmp_path, [
        *granted_as("hf-1", "housing_first"), *housed("hf-1", "lgh-1", "2026-09-01"),
        {"type": "record_visit", "case": "hf-1", "kind": "coordinator_meeting",
         "on": "2026-11-20"},
        *granted_as("hf-2", "housing_first"), *housed("hf-2", "lgh-3", "2026-09-01"),
        {"type": "record_visit", "case": "hf-2", "kind": "inspection", "on": "2026-11-02"},
        *granted_as("ta-1", "training_apartment"), *housed("ta-1", "lgh-2", "2026-09-01"),
    ])
    rows = worklist(runner.view, None, WARN, TODAY)
    hf1, hf2 = kinds(rows, "hf-1"), kinds(rows, "hf-2")
    assert hf1["coordinator_meeting"] == ("2026-11-27", "due")  # a week after the last one
    assert hf1["inspection"] == ("2026-12-01", "due")  # three months after the move-in
    assert hf2["coordinator_meeting"] == ("2026-09-08", "overdue")  # none since the move-in
    assert "inspection" not in hf2  # inspected on 11-02: next on 2027-02-02, past the horizon
    assert not {"coordinator_meeting", "inspection"} & set(kinds(rows, "ta-1"))


# --- gaps: renewing a time-limited lease ----------------------------------------------------


def with_lease(end: date = date(2026, 1, 5)) -> Driver:
    d = approved()
    d.case.move_in("apt-1", **d.kw(on=MOVE_IN), lease_end=end)
    d.events += d.case.collect_events()
    return d


def test_renewing_the_lease_answers_the_lease_renewal_reminder():
    d = with_lease()
    due = {i.kind: i.due for i in due_items(snapshot_of(d.case), WARN, {}, MOVE_IN,
                                            case_file_v2=True)}
    assert due["lease_renewal"] == date(2025, 11, 6)
    [event] = d.do("renew_lease", date(2027, 1, 5), on=date(2025, 11, 10))
    assert (type(event).__name__, event.previous, event.lease_end) == (
        "LeaseRenewed", date(2026, 1, 5), date(2027, 1, 5))
    due = {i.kind: i.due for i in due_items(snapshot_of(d.case), WARN, {}, MOVE_IN,
                                            case_file_v2=True)}
    assert due["lease_renewal"] == date(2026, 11, 6)
    assert d.case.note_case_file_due("lease_renewal", date(2025, 11, 6), command_id="n") is False


def test_a_lease_is_renewed_only_when_time_limited_and_to_a_later_last_day():
    assert "needs a time-limited lease" in in_training().refused(
        StepNotAllowed, "renew_lease", date(2027, 1, 1))
    d = with_lease()
    assert "needs a last day after the current one (2026-01-05)" in d.refused(
        StepNotAllowed, "renew_lease", date(2026, 1, 5))
    assert "needs a tenancy in the training apartment" in drive(Stage.WAITING).refused(
        StepNotAllowed, "renew_lease", date(2027, 1, 1))


def test_a_renewed_lease_moves_the_renewal_on_the_worklist(tmp_path):
    runner = build(tmp_path, [
        *granted("l-1", "2026-01-05", "2026-01-10"), *housed("l-1", "lgh-1", "2026-02-01")[:-1],
        {"type": "move_in", "case": "l-1", "apartment": "lgh-1", "on": "2026-02-01",
         "lease_end": "2026-12-31"},
        {"type": "renew_lease", "case": "l-1", "lease_end": "2027-12-31", "on": "2026-11-02"}])
    assert "lease_renewal" not in kinds(worklist(runner.view, None, WARN, TODAY), "l-1")
    assert runner.view.query("SELECT lease_end FROM rm_cases")[0]["lease_end"] == "2027-12-31"


def test_a_refusal_recorded_before_reason_codes_counts_its_text_and_an_encrypted_one_not():
    from projections.projector import NOT_CODED, reason_code
    assert reason_code({"reason": "Tidigare hyresskuld", "reason_code": None}) == "Tidigare hyresskuld"
    assert reason_code({"reason": "enc:v1:k1:Zm9v"}) == NOT_CODED
    assert reason_code({"reason": ""}) == "(no reason given)"
    assert reason_code({"reason": "enc:v1:k1:Zm9v", "reason_code": "references"}) == "references"


def test_the_caseload_counts_overdue_visits_by_the_programmes_rules(tmp_path):
    from projections.reports import caseload
    quarterly = Policy(programmes={"housing_first": {"weekly_visits_months": 0,
                                                     "monthly_visit_months": 3}})
    lines = granted("hf-1", "2026-06-01", "2026-06-10")
    runner = build(tmp_path, [
        *lines[:-1], {**lines[-1], "programme": "housing_first"},
        *housed("hf-1", "lgh-1", "2026-09-01"),
        *granted("ta-1", "2026-06-01", "2026-06-10"), *housed("ta-1", "lgh-2", "2026-09-01"),
    ])
    overdue = {o["case"]: o["due"] for row in caseload(runner.view, TODAY, quarterly)["rows"]
               for o in row["overdue"]}
    listed = {r["case"]: r["due"] for r in worklist(runner.view, None, quarterly, TODAY)["rows"]
              if r["kind"] == "support_visit"}
    assert "hf-1" not in overdue  # every three months: next on 2026-12-01, not overdue
    assert listed["hf-1"] == "2026-12-01"
    assert overdue["ta-1"] == listed["ta-1"] == "2026-09-08"  # weekly at first


def test_status_shows_the_case_files_current_facts_without_any_typed_text():
    from application.use_cases import case_file_facts
    from interfaces.cli.main import case_file_lines
    d = in_training()
    assert case_file_facts(d.case, WARN)["plan"] is None
    d.do("plan", "own housing", SUB_GOALS)
    d.do("support_level", 2, LEVELS)
    d.do("support_interrupted", "hospital")
    facts = case_file_facts(d.case, WARN)
    assert facts["plan"]["open_sub_goals"] == [{"id": "rent", "follow_up": "2025-03-01"},
                                               {"id": "work", "follow_up": "2025-04-01"}]
    assert facts["support_level"] == {"level": 2, "name": LEVELS[2]}
    assert facts["interrupted"]["kind"] == "hospital"
    assert facts["open_placements"] == [] and facts["arrears"] == "0"
    assert "pays the rent" not in repr(facts)  # the sub-goals' texts stay in the history
    printed = "\n".join(case_file_lines(facts))
    assert "support level 2" in printed and "rent (follow-up 2025-03-01)" in printed
    assert "support interrupted since" in printed


def test_the_supply_report_counts_apartments_let_to_people_with_functional_impairments(tmp_path):
    def granted_to(case: str, group: str) -> list[dict]:
        [apply, *rest] = granted(case, "2025-09-01", "2025-09-10")
        return [{**apply, "client": {**apply["client"], "target_group": group}}, *rest]
    runner = build(tmp_path, [
        *granted_to("f-1", "functional_impairment"), *housed("f-1", "L1", "2025-11-01"),
        *granted_to("f-2", "functional_impairment"), *housed("f-2", "L2", "2026-02-01"),
        *granted_to("f-3", "functional_impairment"),  # still waiting: not let
        *granted_to("e-1", "elderly"), *housed("e-1", "L3", "2026-03-01"),
    ])
    years = {y["year"]: y for y in supply(runner.view)["years"]}
    assert (years["2025"]["let_to_functional_impairment"],
            years["2026"]["let_to_functional_impairment"]) == (1, 1)
    assert [y["let_to_functional_impairment"] for y in supply(
        runner.view, date(2026, 1, 1), date(2026, 12, 31))["years"]] == [1]
    from projections.reports import kpis
    [f100] = [r for r in kpis(runner.view, WARN, 2026)["rows"] if "F100" in r["measure"]]
    assert (f100["figure"], f100["target"], f100["met"]) == (1, ">= 33", False)


def test_the_demos_ivo_headline_counts_each_kind_of_row_by_its_status():
    from interfaces.cli.main import ivo_headline
    rows = [{"status": s} for s in ("unexecuted", "unexecuted", "executed_late", "executed_late",
                                    "executed_late", "executed_late", "resumed_late")]
    assert ivo_headline(rows) == ("2 decisions unexecuted after three months, 4 executed late, "
                                  "1 support resumed late")
    assert ivo_headline([]) == "0 decisions unexecuted after three months"


def test_a_sub_goal_the_housing_pilot_is_responsible_for_is_on_the_pilots_worklist(tmp_path):
    from domain.due import responsible
    runner = build(tmp_path, [
        *granted("sg-1", "2026-06-01", "2026-06-10"), *housed("sg-1", "lgh-1", "2026-09-01"),
        {"type": "assign", "case": "sg-1", "role": "housing_pilot", "to": "bolots.ahmed",
         "on": "2026-09-01"},
        {"type": "plan", "case": "sg-1", "on": "2026-09-20", "goal": "own housing", "sub_goals": [
            {"id": "rent", "goal": "pays the rent", "responsible": "bolots.ahmed",
             "follow_up": "2026-11-01"},
            {"id": "debt", "goal": "a debt plan", "responsible": "budget.advice",
             "follow_up": "2026-11-02"},
            {"id": "work", "goal": "daily activity", "responsible": "handlaggare.lind",
             "follow_up": "2026-11-03"}]},
    ])
    owners = {r["kind"]: r["actor"] for r in worklist(runner.view, None, WARN, TODAY)["rows"]
              if r["case"] == "sg-1" and r["kind"].startswith("sub_goal:")}
    # the pilot's own; one outside the case's staff (budget advice) is followed up by the
    # caseworker, who holds the follow-up meetings
    assert owners == {"sub_goal:rent": "bolots.ahmed", "sub_goal:debt": "handlaggare.lind",
                      "sub_goal:work": "handlaggare.lind"}
    assert "sub_goal:rent" in kinds(worklist(runner.view, "bolots.ahmed", WARN, TODAY), "sg-1")
    d = in_training()
    d.do("assign", "housing_pilot", "bolots.ahmed")
    d.do("plan", "own housing", SUB_GOALS)  # work: bolots.ahmed, rent: the caseworker
    snap = snapshot_of(d.case)
    assert responsible(snap, "sub_goal:work") == "bolots.ahmed"  # the reminder goes there
    assert responsible(snap, "escalation:sub_goal:work") == "bolots.ahmed"
    assert responsible(snap, "sub_goal:rent") == "cw-anna"


def test_the_placements_report_stops_counting_nights_at_the_move_in(tmp_path):
    runner = build(tmp_path, [
        *granted("pm-1", "2026-08-01", "2026-08-10"),
        {"type": "temporary_placement", "case": "pm-1", "on": "2026-08-11", "placement": "h1",
         "kind": "hotel", "start": "2026-08-11", "cost_per_night": "1000"},
        *housed("pm-1", "lgh-pm", "2026-08-21"),
    ])
    report = placements(runner.view, "month", as_of=TODAY)
    assert report["totals"]["nights"] == 10 and report["totals"]["cost"] == "10000"
    [row] = runner.view.query("SELECT end_on FROM rm_placements")
    assert row["end_on"] == "2026-08-21"
