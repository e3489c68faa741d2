"""The kept caseload: brought up to date case by case, always the caseload computed afresh."""

from __future__ import annotations

from datetime import date

from application.store import HousingChain
from application.use_cases import UseCases
from config.settings import Settings
from domain.policy import Policy
from projections import reports
from projections.caseload import KeptCaseload
from projections.runner import ProjectionRunner
from projections.view import ReadLog, open_view
from tests.backends import backend  # noqa: F401 - the fixture
from tests.test_worklist import granted, housed, recorder

POLICY = Policy()
TODAY = date(2026, 11, 24)


def test_the_kept_caseload_after_each_kind_of_step_is_the_caseload_computed_afresh(backend):  # noqa: F811
    """After a move-in, home visits by a pilot and by another, a visit that clears an overdue
    one, a takeover review, an exit, another day, another policy and a rebuild, the kept rows
    equal `reports.caseload`'s on the same view (both backends); each step reads only the
    cases it changed, and a date before the latest facts is left to `reports.caseload`."""
    store, views = backend
    app = HousingChain(env=store)
    runner = ProjectionRunner(app, open_view(views))
    kept = KeptCaseload()
    calls = []

    def changed(start: int, stop: int) -> set[str] | None:
        calls.append((start, stop))
        return runner.changed_cases(start, stop)

    def same(policy: Policy = POLICY, today: date = TODAY) -> list[dict]:
        runner.catch_up()
        rows = kept.rows(runner.view, runner.position, changed, today, policy)
        assert rows == reports.caseload(runner.view, today, policy)["rows"]
        return rows

    step = recorder(app, "c")

    def visit(case: str, on: str, pilot: str) -> dict:
        return {"type": "record_visit", "case": case, "kind": "home_visit", "on": on,
                "actor": pilot}

    step(*granted("k-1", "2026-01-05", "2026-01-20"), *housed("k-1", "K1", "2026-03-01"),
         *granted("k-2", "2026-02-01", "2026-02-20"), *housed("k-2", "K2", "2026-04-01"),
         *granted("k-3", "2026-03-01", "2026-03-05"))
    assert [r["pilot"] for r in same()] == ["(none; caseworker handlaggare.lind)"]
    step(*housed("k-3", "K3", "2026-06-01"), visit("k-1", "2026-06-10", "bolots.ahmed"))
    rows = same()
    assert {r["pilot"]: r["cases"] for r in rows} == {
        "(none; caseworker handlaggare.lind)": 2, "bolots.ahmed": 1}
    assert rows[1]["overdue_visits"] == 1  # k-1's next visit was due a month after June 10
    step(visit("k-2", "2026-11-20", "bolots.ahmed"), visit("k-1", "2026-11-21", "bolots.ahmed"))
    rows = same()
    assert rows[0] == {"pilot": "bolots.ahmed", "cases": 2, "overdue_visits": 0, "overdue": []}
    step(visit("k-3", "2026-11-22", "pilot.berg"))
    same()
    step({"type": "exit", "case": "k-2", "on": "2026-11-23", "destination": "own_housing"})
    same()
    assert len(calls) == 4  # once a step: the cases it changed, read from the store
    same(today=date(2027, 3, 1))  # another day: every visit is overdue by then
    same(today=date(2027, 3, 1), policy=Policy(monthly_visit_months=6))
    runner.rebuild()
    same(today=date(2027, 3, 1), policy=Policy(monthly_visit_months=6))
    assert kept.rows(runner.view, runner.position, changed, date(2026, 11, 1), POLICY) is None
    app.close()


def test_todays_caseload_is_computed_ahead_with_the_worklists(tmp_path):
    """As the API starts and just after midnight (`UseCases.warm_worklists`) the caseload is
    computed ahead with the worklists: the first dashboard of the day reads no tenancy again,
    and after a step only the case it changed."""
    settings = Settings(data=tmp_path)
    app = HousingChain(env=settings.event_store_env("events"))
    step = recorder(app, "w")

    step(*granted("k-1", "2026-01-05", "2026-01-20"), *housed("k-1", "K1", "2026-03-01"),
         *granted("k-2", "2026-02-01", "2026-02-20"), *housed("k-2", "K2", "2026-04-01"))
    cases = UseCases(settings)
    cases.caught_up_view()  # as the projection beside the API would have (else warming waits)
    cases.warm_worklists()

    def read(view: ReadLog) -> list[dict]:
        return cases._caseload.rows(view, cases.runner.position, cases.runner.changed_cases,
                                    cases.today(), cases.policy)

    log = ReadLog(cases.caught_up_view())
    rows = read(log)
    assert [s for s in log.statements if "rm_cases" in s] == []
    assert rows == reports.caseload(cases.caught_up_view(), cases.today(), cases.policy)["rows"]
    step({"type": "record_visit", "case": "k-2", "kind": "home_visit", "on": "2026-11-20",
          "actor": "bolots.ahmed"})
    log = ReadLog(cases.caught_up_view())
    rows = read(log)
    assert [r["pilot"] for r in rows] == ["(none; caseworker handlaggare.lind)", "bolots.ahmed"]
    assert [s for s in log.statements if "rm_cases" in s and "case_uuid IN" not in s] == []
    app.close()
