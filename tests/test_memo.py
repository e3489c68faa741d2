"""Answers remembered while the read models stand still (application/memo.py): the same
question at the same position is computed once; a step recorded since moves the position and
the next answer includes it. Through the real use cases on a data directory."""

from __future__ import annotations

from datetime import date

from application.memo import ByPosition
from application.reporting import REPORTS, ReportOptions, run_report
from application.store import HousingChain
from application.use_cases import UseCases
from config.settings import Settings
from domain.access import Principal
from projections import reports
from tests.test_reports import POLICY, TODAY, Scenario
from tests.test_worklist import granted, housed, recorder

SUPERVISOR = Principal(subject="sup", roles=frozenset({"supervisor"}), units=frozenset({"Farsta"}))


def test_an_answer_is_computed_once_per_position_and_question():
    memo, calls = ByPosition(size=2), []

    def compute(tag: str):
        return lambda: calls.append(tag) or {"tag": tag, "n": len(calls)}

    first = memo.get(7, "q", compute("a"))
    assert memo.get(7, "q", compute("b")) is first
    assert memo.get(8, "q", compute("c"))["tag"] == "c"  # the position moved: computed again
    assert memo.get(8, "other", compute("d"))["tag"] == "d"
    assert memo.get(8, "third", compute("e"))["tag"] == "e"  # the oldest answer made room
    assert memo.get(8, "q", compute("f"))["tag"] == "f"
    assert memo.get(8, "third", compute("g"))["tag"] == "e"
    assert calls == ["a", "c", "d", "e", "f"]


def test_an_answer_outlives_the_pages_that_changed_nothing_it_read():
    memo, asked = ByPosition(), []
    pages = {(3, 5): frozenset({"rm_cases.last_home_visit", "rm_steps.#rows"}),
             (5, 6): frozenset({"rm_cases.applied_day"})}

    def changed(a: int, b: int):
        asked.append((a, b))
        if (a, b) in pages:
            return pages[a, b]
        return pages[a, 5] | pages[5, b] if (a, 5) in pages and (5, b) in pages else None

    waits = memo.get(3, "waits", lambda: ("w1", frozenset({"rm_cases.applied_day"})), changed)
    load = memo.get(3, "load", lambda: ("l1", frozenset({"rm_cases.last_home_visit"})), changed)
    # a visit at 5: the waiting times read none of it, the caseload does
    assert memo.get(5, "waits", lambda: ("w2", frozenset()), changed) == "w1"
    assert memo.get(5, "load", lambda: ("l2", frozenset({"rm_cases.last_home_visit"})),
                    changed) == "l2"
    assert asked == [(3, 5)]  # once for both answers kept at 3
    # a new case at 6 changes what the waiting times read
    assert memo.get(6, "waits", lambda: ("w3", frozenset()), changed) == "w3"
    assert memo.get(6, "load", lambda: ("l3", frozenset()), changed) == "l2"
    assert (waits, load) == ("w1", "l1")


def test_an_answer_is_computed_again_when_the_changes_are_not_known_or_the_position_went_back():
    memo = ByPosition()
    reads = frozenset({"rm_cases.applied_day"})
    memo.get(3, "q", lambda: ("a", reads), lambda a, b: None)
    assert memo.get(4, "q", lambda: ("b", reads), lambda a, b: None) == "b"  # not known
    assert memo.get(2, "q", lambda: ("c", reads), lambda a, b: frozenset()) == "c"  # went back
    memo.get(9, "w", lambda: "worklist")  # no `changed`: at its position only
    assert memo.get(10, "w", lambda: "again") == "again"
    memo.clear()
    assert memo.get(10, "w", lambda: "cleared") == "cleared"


def test_a_failed_computation_is_not_remembered():
    memo = ByPosition()

    def fails():
        raise ValueError("bad option")

    for _ in range(2):
        try:
            memo.get(1, "q", fails)
        except ValueError:
            pass
    assert (memo.hits, memo.misses) == (0, 2)


def write(app: HousingChain, scenario: Scenario) -> None:
    ordered = [line for _, _, line in sorted(scenario.steps, key=lambda s: (s[0], s[1]))]
    assert all(r.accepted for r in app.run(ordered, today=TODAY, policy=POLICY))


def test_a_report_asked_again_after_a_step_includes_the_step(tmp_path):
    settings = Settings(data=tmp_path)
    app = HousingChain(env=settings.event_store_env("events"))
    s = Scenario()
    s.apply("2026-02-01", "m-1", "c-1", "other", "Farsta")
    write(app, s)
    cases = UseCases(settings)
    options = ReportOptions(by="year")
    first = cases.report(SUPERVISOR, "throughput", options)
    again = cases.report(SUPERVISOR, "throughput", options)
    assert again == first
    assert cases._answers.hits == 1

    more = Scenario()
    more.apply("2026-03-01", "m-2", "c-2", "other", "Farsta")
    write(app, more)
    after = cases.report(SUPERVISOR, "throughput", options)
    assert [r["applications"] for r in first["rows"]] == [1]
    assert [r["applications"] for r in after["rows"]] == [2]
    # every read is still in the access log, served from memory or not
    reads = [r for r in cases.audit._select("ORDER BY seq", ()) if r.action == "report.read"]
    assert [r.outcome for r in reads] == ["allowed"] * 3
    app.close()


def every_question() -> dict[str, ReportOptions]:
    out = {name: ReportOptions() for name in REPORTS if name not in ("ivo", "kpis")}
    out.update({"ivo": ReportOptions(quarter="2026Q4"), "kpis": ReportOptions(year=2026),
                "waiting-times by landlord": ReportOptions(interval="decision-to-move-in",
                                                           by="landlord"),
                "caseload on a past date": ReportOptions(as_of=date(2026, 10, 5)),
                "stock on a past date": ReportOptions(as_of=date(2026, 10, 5), by="landlord")})
    return out


def test_a_remembered_answer_after_each_kind_of_step_is_the_answer_computed_afresh(tmp_path):
    """After a new case, a move-in, a visit, arrears, a reassignment and an exit, every report
    (and the dashboard's series) served by the use cases equals the report computed on the
    view now; the answers that read nothing a step changed were served from memory."""
    settings = Settings(data=tmp_path)
    app = HousingChain(env=settings.event_store_env("events"))
    step = recorder(app, "m")

    cases = UseCases(settings)
    quarters, years = ["2026Q2", "2026Q3", "2026Q4"], [2025, 2026]

    def same() -> int:
        """Every answer equals a fresh one; returns how many were served from memory."""
        hits = cases._answers.hits
        view = cases.caught_up_view()
        farsta = {c for (c,) in view.rows("SELECT case_id FROM rm_cases WHERE district = "
                                           "'Farsta'")}
        for label, options in every_question().items():
            name = label.split(" ")[0]
            served = cases.report(SUPERVISOR, name, options)
            fresh = run_report(view, name, options, cases.policy, cases.today())
            if name in reports.CASE_LISTS:  # the supervisor's unit's cases (k-3 is Spånga's)
                fresh = {**reports.cases_only(name, fresh, farsta.__contains__, options.by),
                         "cases_of": {"units": ["Farsta"], "assigned_to": "sup"}}
            assert served == fresh, label
        assert cases.unexecuted_per_quarter(SUPERVISOR, quarters) == \
            reports.unexecuted_per_quarter(view, quarters)
        assert cases.course_completion_per_year(SUPERVISOR, years) == \
            reports.course_completion_per_year(view, years)
        return cases._answers.hits - hits

    step(*granted("k-1", "2026-06-01", "2026-06-10"), *granted("k-2", "2026-07-01", "2026-07-20"))
    same()
    step(*housed("k-1", "K1", "2026-10-01"))
    same()
    step({"type": "record_visit", "case": "k-1", "kind": "home_visit", "on": "2026-10-20",
          "actor": "bolots.ahmed"})
    after_visit = same()
    step({"type": "rent_arrears", "case": "k-1", "amount": "1200", "on": "2026-10-25"})
    same()
    step({"type": "assign", "case": "k-2", "role": "caseworker", "to": "handlaggare.ek",
          "on": "2026-10-26"})
    same()
    k3 = granted("k-3", "2026-10-01", "2026-10-28")
    k3[0]["client"]["district"] = "Spånga"
    step(*k3)
    same()
    # the same pilot again, on a day before the latest step: only the visit date changes
    step({"type": "record_visit", "case": "k-1", "kind": "home_visit", "on": "2026-10-27",
          "actor": "bolots.ahmed"})
    same()
    step({"type": "exit", "case": "k-1", "on": "2026-11-02", "destination": "own_housing"})
    same()
    # a visit changes the case's visit and contact dates and adds a step: the waiting times,
    # the flows, the IVO figures and more read none of it
    assert after_visit >= 8, after_visit
    app.close()
