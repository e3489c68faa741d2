"""The worklist: who has what due, from the read model's facts and the policy."""

from __future__ import annotations

from datetime import date

from application.store import HousingChain
from domain.commands import import_line_adapter
from domain.policy import Policy
from projections.runner import ProjectionRunner
from projections.view import open_view
from projections.worklist import worklist

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
