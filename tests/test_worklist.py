"""The worklist: who has what due, from the read model's facts and the policy."""

from __future__ import annotations

import itertools
from datetime import date

from application.store import HousingChain
from domain.commands import import_line_adapter
from domain.policy import Policy
from projections.runner import ProjectionRunner
from projections.view import open_view
from projections.worklist import KINDS, KeptWorklists, kind_family, worklist
from tests.backends import backend  # noqa: F401 - the fixture

POLICY = Policy()
TODAY = date(2026, 11, 24)


def build(tmp_path, lines: list[dict]) -> ProjectionRunner:
    app = HousingChain(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    steps = []
    for n, line in enumerate(lines):
        step = import_line_adapter.validate_python({"actor": "handlaggare.lind", **line,
                                                    "id": f"w{n}"})
        steps.append(step.without_identity() if step.type == "apply" else step)
    results = app.run(steps, today=TODAY, policy=POLICY)
    assert all(r.accepted for r in results), [r.reason for r in results if not r.accepted]
    runner = ProjectionRunner(app, open_view({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                              "SQLITE_DBNAME": str(tmp_path / "v.sqlite")}))
    runner.catch_up()
    return runner


def recorder(app: HousingChain, prefix: str, today: date = TODAY, policy: Policy = POLICY):
    """`record(*lines)`: import-line dicts (actor handlaggare.lind unless given, a new id
    each) run through the service, each of which must be accepted."""
    ids = itertools.count()

    def record(*lines: dict) -> None:
        steps = [import_line_adapter.validate_python(
            {"actor": "handlaggare.lind", **line, "id": f"{prefix}{next(ids)}"}) for line in lines]
        steps = [s.without_identity() if s.type == "apply" else s for s in steps]
        results = app.run(steps, today=today, policy=policy)
        assert all(r.accepted for r in results), [r.reason for r in results if not r.accepted]
    return record


def granted(case: str, applied: str, decided: str) -> list[dict]:
    return [
        {"type": "apply", "case": case, "on": applied,
         "client": {"id": f"kl-{case}", "target_group": "elderly", "district": "Farsta"}},
        {"type": "start_assessment", "case": case, "on": applied},
        {"type": "decide", "case": case, "on": decided, "outcome": "granted",
         "programme": "training_apartment"},
    ]


def housed(case: str, apartment: str, moved_in: str) -> list[dict]:
    return [
        {"type": "register_apartment", "apartment": apartment, "landlord": "SH", "rooms": 1,
         "on": moved_in},
        {"type": "offer", "case": case, "apartment": apartment, "on": moved_in},
        {"type": "landlord_decision", "case": case, "approved": True, "on": moved_in},
        {"type": "move_in", "case": case, "apartment": apartment, "on": moved_in},
    ]


def kinds(result: dict, case: str) -> dict[str, tuple[str, str]]:
    return {i["kind"]: (i["due"], i["status"]) for i in result["rows"] if i["case"] == case}


def test_a_decision_shows_thirty_days_before_it_turns_three_months_and_then_as_overdue(tmp_path):
    runner = build(tmp_path, [*granted("w-1", "2026-08-01", "2026-09-10"),
                              *granted("w-2", "2026-08-01", "2026-08-20"),
                              *granted("w-3", "2026-08-01", "2026-10-20")])
    result = worklist(runner.view, "handlaggare.lind", POLICY, TODAY, horizon_days=60)
    assert kinds(result, "w-1")["unexecuted_decision"] == ("2026-12-10", "due")
    assert kinds(result, "w-2")["unexecuted_decision"] == ("2026-11-20", "overdue")
    assert "unexecuted_decision" not in kinds(result, "w-3")  # limit 2027-01-20: too early


def test_visits_go_to_the_assigned_pilot_and_otherwise_to_the_caseworker(tmp_path):
    runner = build(tmp_path, [
        *granted("p-1", "2026-06-01", "2026-06-10"), *housed("p-1", "A1", "2026-11-01"),
        {"type": "assign", "case": "p-1", "role": "housing_pilot", "to": "bolots.ahmed",
         "on": "2026-11-02"},
        *granted("p-2", "2026-06-01", "2026-06-10"), *housed("p-2", "A2", "2026-11-01"),
    ])
    pilot = worklist(runner.view, "bolots.ahmed", POLICY, TODAY)
    assert kinds(pilot, "p-1")["support_visit"] == ("2026-11-08", "overdue")
    assert set(kinds(pilot, "p-1")) == {"support_visit", "monthly_checklist"}
    assert kinds(pilot, "p-2") == {}
    caseworker = worklist(runner.view, "handlaggare.lind", POLICY, TODAY)
    assert kinds(caseworker, "p-2")["support_visit"] == ("2026-11-08", "overdue")
    assert "support_visit" not in kinds(caseworker, "p-1")


def test_a_reassigned_caseworker_takes_over_the_case_items(tmp_path):
    runner = build(tmp_path, [
        *granted("r-1", "2026-08-01", "2026-08-20"),
        {"type": "assign", "case": "r-1", "role": "caseworker", "to": "handlaggare.ek",
         "on": "2026-09-01"},
    ])
    assert kinds(worklist(runner.view, "handlaggare.lind", POLICY, TODAY), "r-1") == {}
    assert "unexecuted_decision" in kinds(worklist(runner.view, "handlaggare.ek", POLICY, TODAY),
                                          "r-1")


def test_arrears_without_a_plan_and_a_stalled_assessment_are_on_the_caseworkers_list(tmp_path):
    runner = build(tmp_path, [
        *granted("a-1", "2025-01-01", "2025-01-10"), *housed("a-1", "A3", "2025-02-01"),
        {"type": "rent_arrears", "case": "a-1", "amount": "4200", "on": "2026-11-03"},
        {"type": "apply", "case": "s-1", "on": "2026-09-01",
         "client": {"id": "kl-s1", "target_group": "elderly", "district": "Farsta"}},
        {"type": "start_assessment", "case": "s-1", "on": "2026-09-02"},
    ])
    result = worklist(runner.view, "handlaggare.lind", POLICY, TODAY)
    assert kinds(result, "a-1")["arrears_without_plan"] == ("2026-11-03", "overdue")
    assert kinds(result, "a-1")["takeover_eligible"] == ("2026-02-01", "overdue")
    assert kinds(result, "s-1")["stalled:assessment"] == ("2026-10-02", "overdue")


def test_the_worklist_is_the_same_after_a_rebuild(tmp_path):
    runner = build(tmp_path, [*granted("b-1", "2026-06-01", "2026-06-10"),
                              *housed("b-1", "A4", "2026-10-01")])
    before = worklist(runner.view, None, POLICY, TODAY)
    runner.rebuild()
    assert worklist(runner.view, None, POLICY, TODAY) == before


def test_the_kept_worklist_after_each_step_is_the_worklist_computed_from_scratch(backend):  # noqa: F811
    """KeptWorklists recomputes only the cases the new events changed: after every kind of
    change (a new case, a move-in, a reassignment, a closing, another day, another policy)
    each actor's list and everyone's equal `worklist` on the same view (both backends)."""
    store, views = backend
    app = HousingChain(env=store)
    runner = ProjectionRunner(app, open_view(views))
    kept = KeptWorklists()
    calls, ids = [], itertools.count()

    def changed(start: int, stop: int) -> set[str] | None:
        calls.append((start, stop))
        return runner.changed_cases(start, stop)

    def same(policy: Policy = POLICY, today: date = TODAY) -> None:
        runner.catch_up()
        for actor in (None, "handlaggare.lind", "handlaggare.ek", "bolots.ahmed"):
            for days in (0, 14, 400):
                answer = kept.worklist(runner.view, runner.position, changed, actor, policy,
                                       today, days)
                kinds = answer.pop("kinds")
                scratch = worklist(runner.view, actor, policy, today, days)
                assert answer == scratch, (actor, days)
                assert kinds == sorted({kind_family(r["kind"]) for r in scratch["rows"]})
                assert set(kinds) <= set(KINDS)  # what a filter may ask for (GET /api/worklist)
                for kind in kinds:
                    assert kept.worklist(runner.view, runner.position, changed, actor, policy,
                                         today, days, kind)["rows"] == [
                        r for r in scratch["rows"] if kind_family(r["kind"]) == kind]

    def step(*lines: dict) -> None:
        steps = [import_line_adapter.validate_python(
            {"actor": "handlaggare.lind", **line, "id": f"s{next(ids)}"})
            for line in lines]
        steps = [s.without_identity() if s.type == "apply" else s for s in steps]
        assert all(r.accepted for r in app.run(steps, today=TODAY, policy=POLICY))

    step(*granted("k-1", "2026-06-01", "2026-06-10"), *housed("k-1", "K1", "2026-10-01"),
         *granted("k-2", "2026-08-01", "2026-08-20"))
    same()
    step(*granted("k-3", "2026-09-01", "2026-09-05"))
    same()
    step({"type": "assign", "case": "k-1", "role": "housing_pilot", "to": "bolots.ahmed",
          "on": "2026-10-02"},
         {"type": "assign", "case": "k-2", "role": "caseworker", "to": "handlaggare.ek",
          "on": "2026-10-02"})
    same()
    step({"type": "record_visit", "case": "k-1", "kind": "home_visit", "on": "2026-11-20",
          "actor": "bolots.ahmed"}, *housed("k-3", "K3", "2026-11-01"))
    same()
    step({"type": "exit", "case": "k-2", "on": "2026-11-21", "destination": "own_housing"})
    same()
    assert len(calls) == 4  # once per step: the cases it changed, read from the store
    same(today=date(2026, 12, 24))
    same(policy=Policy(decision_warning_days=5))
    runner.rebuild()
    same(policy=Policy(decision_warning_days=5))
    app.close()
