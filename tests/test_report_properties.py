"""Properties of the reports over random valid histories.

Each example walks 5–20 cases along random paths through the real application service, with
ascending effective dates, projects them into a real SQLite view (in pages of random size),
and checks that the throughput report balances and that on any day each active case is in
exactly one stage: not yet decided, in the queue, or in a tenancy.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.store import HousingChain
from domain.calendar import add_months
from domain.policy import Policy
from domain.stages import EXITS, Stage
from projections import reports
from projections.runner import ProjectionRunner
from projections.view import open_view
from tests.builders import Lines, sqlite_env

POLICY = Policy()
BASE = date(2024, 1, 1)
TODAY = date(2035, 1, 1)
GAP = st.integers(min_value=0, max_value=120)


@st.composite
def case_path(draw: st.DrawFn, n: int) -> list[tuple[date, str, dict[str, Any]]]:
    """One case's steps: (effective date, step type, fields), dates never going back."""
    apartment = f"apt-{n}"
    day = BASE + timedelta(days=draw(st.integers(0, 900)))
    steps: list[tuple[date, str, dict[str, Any]]] = [(day, "apply", {"client": {
        "id": f"k-{draw(st.integers(0, 3 * n + 2))}",
        "target_group": draw(st.sampled_from(["substance_abuse", "young_adults", "elderly"])),
        "district": draw(st.sampled_from(["Farsta", "Norrmalm"]))}})]

    def then(type_: str, at_least: date | None = None, **fields: Any) -> None:
        nonlocal day
        day = max(day + timedelta(days=draw(GAP)), at_least or day)
        steps.append((day, type_, fields))

    depth = draw(st.integers(0, 7))  # 0 applied … 5 moved in, 6 referred, 7 takeover approved
    stage = Stage.APPLIED
    if depth >= 1:
        then("start_assessment")
        stage = Stage.ASSESSMENT
    if depth >= 2:
        if draw(st.integers(0, 4)) == 0:
            then("decide", outcome="denied", reason="not eligible")
            return steps
        programme = draw(st.sampled_from(["training_apartment", "housing_first",
                                          "municipal_contract"]))
        then("decide", outcome="granted", programme=programme)
        stage = Stage.WAITING
    if depth >= 3:
        for _ in range(draw(st.integers(0, 2))):  # offers the landlord refuses
            then("offer", apartment=apartment)
            then("landlord_decision", approved=False, reason="references")
        then("offer", apartment=apartment)
        stage = Stage.OFFERED
    if depth >= 4:
        then("landlord_decision", approved=True)
        stage = Stage.APPROVED
    if depth >= 5:
        then("move_in", apartment=apartment)
        move_in = day
        stage = Stage.TRAINING
    if depth >= 6:
        then("refer_takeover", at_least=add_months(move_in, POLICY.takeover_minimum(programme)))
        stage = Stage.TAKEOVER_REVIEW
    if depth >= 7:
        then("takeover_decision", approved=True)
        stage = Stage.TAKEOVER_APPROVED
    if draw(st.booleans()):
        then("exit", destination=draw(st.sampled_from(EXITS[stage])))
    return steps


@st.composite
def histories(draw: st.DrawFn) -> list[list[tuple[date, str, dict[str, Any]]]]:
    count = draw(st.integers(5, 20))
    return [draw(case_path(n)) for n in range(count)]


def run(history: list[list[tuple[date, str, dict[str, Any]]]], tmp: Path, page_size: int):
    app = HousingChain(env=sqlite_env(tmp / "e.sqlite"))
    line = Lines("p")
    lines = [line("register_apartment", on=BASE, apartment=f"apt-{n}", landlord="Framtiden",
                  rooms=2) for n in range(len(history))]
    for n, steps in enumerate(history):
        lines += [line(type_, on=day, case=f"c{n}", **fields) for day, type_, fields in steps]
    results = app.run(lines, today=TODAY, policy=POLICY)
    assert all(r.accepted for r in results), [r.reason for r in results if not r.accepted]
    view = open_view(sqlite_env(tmp / "v.sqlite"))
    ProjectionRunner(app, view, page_size=page_size).catch_up()
    return app, view


def stages_on(facts: list[dict[str, Any]], day: str) -> dict[str, set[str]]:
    """The cases open on `day`, split by where they stand, from the fact rows."""
    def open_on(r: dict[str, Any]) -> bool:
        return r["applied_on"] <= day and (r["closed_on"] is None or r["closed_on"] > day)

    return {
        "active": {r["case_id"] for r in facts if open_on(r)},
        "undecided": {r["case_id"] for r in facts
                      if open_on(r) and (r["decided_on"] is None or r["decided_on"] > day)},
        "tenancy": {r["case_id"] for r in facts
                    if open_on(r) and r["move_in_on"] is not None and r["move_in_on"] <= day},
    }


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories(), page_size=st.sampled_from([7, 50, 1000]),
       picks=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([-1, 0, 1])),
                      min_size=4, max_size=4),
       offset=st.integers(0, 1800))
def test_throughput_balances_and_no_case_is_in_two_stages_at_once(history, page_size, picks,
                                                                 offset):
    with tempfile.TemporaryDirectory() as tmp:
        app, view = run(history, Path(tmp), page_size)
        try:
            check(view, len(history), picks, offset)
        finally:
            app.close()


def check(view: Any, cases: int, picks: list[tuple[int, int]], offset: int) -> None:
    facts = view.query("SELECT case_id, applied_on, decided_on, outcome, move_in_on, "
                       "closed_on FROM rm_cases")
    assert len(facts) == cases
    rows = reports.throughput(view, "month")["rows"]

    # every application and every closure is in exactly one month
    closures = [sum(r["exits"].values()) for r in rows]
    assert sum(r["applications"] for r in rows) == cases
    assert sum(closures) == sum(1 for f in facts if f["closed_on"])
    # net change is the month's applications − closures, and the months add up to the end
    active = 0
    for row, closed in zip(rows, closures, strict=True):
        assert row["net_change"] == row["applications"] - closed, row
        active += row["net_change"]
        assert row["active_at_end"] == active, row
        _, end = reports.period_bounds(row["group"], "month")
        assert row["active_at_end"] == len(stages_on(facts, end.isoformat())["active"]), row
    assert sum(r["applications"] - c for r, c in zip(rows, closures, strict=True)) \
        == rows[-1]["active_at_end"]

    # on any day, an open case is undecided, in the queue or in a tenancy, and only one;
    # the days: one at random, the others on a fact's date or the day before or after it
    dates = sorted({f[c] for f in facts for c in ("applied_on", "decided_on", "move_in_on",
                                                  "closed_on") if f[c]})
    days = [BASE + timedelta(days=offset)]
    days += [date.fromisoformat(dates[i % len(dates)]) + timedelta(days=delta)
             for i, delta in picks]
    for day in days:
        text = day.isoformat()
        sets = stages_on(facts, text)
        queue = {r["case"] for r in reports.queue(view, day)["rows"]}
        assert not sets["undecided"] & queue
        assert not sets["undecided"] & sets["tenancy"]
        assert not queue & sets["tenancy"]
        assert sets["undecided"] | queue | sets["tenancy"] == sets["active"]
        # and the waiting-time reports see the same sets as still waiting
        for interval, expected in (("application-to-decision", sets["undecided"]),
                                   ("decision-to-move-in", queue),
                                   ("move-in-to-exit", sets["tenancy"])):
            still = reports.waiting_times(view, interval, as_of=day)["still_waiting"]
            assert still["count"] == len(expected), (interval, text)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.dictionaries(st.sampled_from(["2025", "2026Q1", "Farsta", "x"]),
                              st.lists(st.integers(0, 4000), min_size=1, max_size=40),
                              min_size=1))
def test_summaries_in_sql_equal_the_python_definition(backend, groups):
    """Count, mean, median and p90 computed by the database's window functions are the
    documented ones (statistics' median and quantiles(method="inclusive")), on SQLite and
    on PostgreSQL."""
    view = open_view(backend[1])
    pairs = [(g, d) for g, values in groups.items() for d in values]
    values_sql = ("SELECT column1 AS g, column2 AS d FROM (VALUES "
                  + ", ".join(["(?, ?)"] * len(pairs)) + ") AS t")
    params = [x for pair in pairs for x in pair]
    assert reports.summaries(view, values_sql, params) == {
        g: reports.summary(sorted(values)) for g, values in groups.items()}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories(), page_size=st.sampled_from([7, 1000]),
       by=st.sampled_from(["month", "quarter"]), inactive_after=st.sampled_from([30, 90]))
def test_by_name_net_change_is_inflow_minus_outflow_and_active_matches_the_contacts(
        history, page_size, by, inactive_after):
    policy = POLICY.model_copy(update={"inactive_after_days": inactive_after})
    with tempfile.TemporaryDirectory() as tmp:
        app, view = run(history, Path(tmp), page_size)
        try:
            rows = reports.by_name(view, policy, by)["rows"]
            cases = view.query("SELECT case_uuid, applied_day, closed_day FROM rm_cases")
            contacts: dict[str, list[int]] = {}
            for r in view.query("SELECT case_uuid, step_day FROM rm_steps WHERE event NOT IN "
                                "('Assigned', 'Exited', 'Denied')"):
                contacts.setdefault(r["case_uuid"], []).append(r["step_day"])
        finally:
            app.close()

    def active_on(day: int) -> int:
        """Open on `day` and in contact within the last `inactive_after` days."""
        return sum(1 for c in cases if c["applied_day"] <= day
                   and (c["closed_day"] is None or c["closed_day"] > day)
                   and day < max(x for x in contacts[c["case_uuid"]] if x <= day) + inactive_after)

    before = 0
    for row in rows:
        assert row["net_change"] == row["inflow"]["total"] - row["outflow"]["total"], row
        assert row["active_at_end"] - before == row["net_change"], row
        _, end = reports.period_bounds(row["group"], by)
        assert row["active_at_end"] == active_on(end.toordinal()), row
        before = row["active_at_end"]
    assert sum(r["inflow"]["total"] for r in rows) >= len(cases) > 0
