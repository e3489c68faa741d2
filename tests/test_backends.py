"""The event store, identities and read models behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from application.store import HousingChain, IdentityRegistry
from domain.commands import import_line_adapter
from domain.policy import Policy
from projections import reports
from projections.runner import ProjectionRunner
from projections.view import open_view
from runtime import demo
from tests.backends import (
    create_database,
    drop_database,
    skip_or_fail_without_postgres,
    store_env,
    view_env,
)

TODAY = date(2026, 11, 24)
POLICY = Policy()


def demo_steps(cases: int, seed: int = 7) -> list:
    steps = []
    for i, line in enumerate(demo.generate(cases=cases, seed=seed)):
        step = import_line_adapter.validate_python(line).model_copy(update={"id": f"d{i}"})
        steps.append(step.without_identity() if step.type == "apply" else step)
    return steps


def write(app: HousingChain, steps: list, chunk: int = 200) -> None:
    for i in range(0, len(steps), chunk):
        results = app.run(steps[i:i + chunk], today=TODAY, policy=POLICY)
        assert all(r.accepted for r in results), [r.reason for r in results if not r.accepted]


def every_report(view) -> dict:
    out = {f"wait:{i}:{by}": reports.waiting_times(view, i, by, as_of=TODAY)
           for i in reports.INTERVALS for by in ("year", "target-group")}
    out.update(
        throughput=reports.throughput(view, "quarter"),
        queue=reports.queue(view, date(2025, 6, 30), "district"),
        ivo=[reports.ivo(view, q) for q in ("2025Q4", "2026Q1", "2026Q2", "2026Q3")],
        caseload=reports.caseload(view, TODAY, POLICY),
        arrears=reports.arrears(view),
        stock=reports.stock(view, TODAY),
        returns=reports.returns(view),
        # at past dates, from the dated steps, and grouped by what people ask
        past=[(reports.caseload(view, day, POLICY), reports.arrears(view, day),
               reports.stock(view, day, "landlord"))
              for day in (date(2024, 6, 30), date(2025, 3, 31), date(2025, 12, 31))],
        grouped=[reports.waiting_times(view, "decision-to-move-in", by, as_of=TODAY)
                 for by in ("programme", "referral-source", "landlord", "district")]
        + [reports.throughput(view, by, date(2025, 1, 1), date(2025, 12, 31))
           for by in ("district", "landlord", "target-group", "programme", "referral-source")]
        + [reports.stock(view, day, "landlord-type") for day in (date(2025, 6, 30), TODAY)],
        refusals=reports.refusals(view, "quarter"),
        by_name=reports.by_name(view, POLICY, "month"),
        kpis=[reports.kpis(view, POLICY, year) for year in (2025, 2026)],
        placements=reports.placements(view, "month", as_of=TODAY),
        homelessness=[reports.homelessness(view, day, by) for day in (date(2025, 6, 30), TODAY)
                      for by in (None, *reports.HOMELESSNESS_GROUPS)],
    )
    return out


def test_the_same_command_twice_records_one_event(backend):
    store, _ = backend
    app = HousingChain(env=store)
    steps = demo_steps(3)[:6]
    write(app, steps)
    head = app.recorder.max_notification_id()
    again = app.run(steps, today=TODAY, policy=POLICY)
    assert all(r.accepted and r.duplicate for r in again)
    assert app.recorder.max_notification_id() == head


def test_a_batch_is_saved_whole_and_answers_a_retry_from_its_marker(backend):
    store, _ = backend
    app = HousingChain(env=store)
    steps = demo_steps(3)[:8]
    first = app.run(steps, today=TODAY, policy=POLICY, batch_id="b-1")
    head = app.recorder.max_notification_id()
    retried = app.run(steps, today=TODAY, policy=POLICY, batch_id="b-1")
    assert [r.accepted for r in retried] == [r.accepted for r in first]
    assert app.recorder.max_notification_id() == head


def test_two_writers_on_one_case_cannot_both_save_a_step(backend):
    """Optimistic concurrency: the second save of version N fails; nothing is lost."""
    store, _ = backend
    one, two = HousingChain(env=store), HousingChain(env=store)
    apply = next(s for s in demo_steps(1) if s.type == "apply")
    write(one, [apply])
    case_one = one.get_case(apply.case)
    case_two = two.get_case(apply.case)
    case_one.start_assessment(on=apply.on, actor="a", command_id="x1", today=TODAY)
    case_two.exit("withdrawn", on=apply.on, actor="b", command_id="x2", today=TODAY)
    one.save(case_one)
    with pytest.raises(IntegrityError):
        two.save(case_two)
    assert [e.__class__.__name__ for e in one.events.get(case_one.id)] == [
        "Applied", "AssessmentStarted"]


def test_erasing_an_identity_deletes_its_rows(backend):
    store, _ = backend
    env = dict(store)
    if env["PERSISTENCE_MODULE"].endswith("sqlite"):
        env["SQLITE_DBNAME"] = env["SQLITE_DBNAME"].replace("events", "identities")
    registry = IdentityRegistry(env=env)
    registry.record("kl-1", "Astrid Testsson", "19400101-0000")
    registry.record("kl-2", "Bo Annan", "19500101-0000")
    assert registry.erase("kl-1")
    assert registry.lookup("kl-1") is None and registry.lookup("kl-2").name == "Bo Annan"
    raw = b"".join(n.state for n in registry.recorder.select_notifications(start=1, limit=50))
    assert b"Testsson" not in raw


def test_projection_catches_up_rebuilds_and_reads_the_same(backend):
    store, views = backend
    app = HousingChain(env=store)
    steps = demo_steps(25)
    write(app, steps[: len(steps) // 2])
    runner = ProjectionRunner(app, open_view(views), page_size=300)
    runner.catch_up()
    write(app, steps[len(steps) // 2:])
    runner.catch_up()
    assert runner.position == runner.head()
    incremental = every_report(runner.view)
    runner.rebuild()
    assert every_report(runner.view) == incremental
    # the kpis count the IVO rows in one pass with the report's own SQL: the same number
    for year, kpis in zip((2025, 2026), incremental["kpis"], strict=True):
        ivo_rows = sum(len(reports.ivo(runner.view, f"{year}Q{q}")["rows"]) for q in range(1, 5))
        assert kpis["rows"][2]["figure"] == ivo_rows


def test_two_projection_runners_apply_each_event_once(backend):
    store, views = backend
    app = HousingChain(env=store)
    write(app, demo_steps(25))
    runners = [ProjectionRunner(HousingChain(env=store), open_view(views), page_size=100)
               for _ in range(2)]
    threads = [threading.Thread(target=r.catch_up) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    view = runners[0].view
    assert runners[0].position == app.recorder.max_notification_id()
    topics = Counter(n.topic.rsplit(".", 1)[1]
                     for n in app.recorder.select_notifications(start=1, limit=100_000))
    # facts that count events: an event applied twice or lost would change them
    facts = view.query("SELECT COUNT(*) AS cases, SUM(course_sessions) AS sessions, "
                       "SUM(complaints) AS complaints FROM rm_cases")[0]
    lettings = view.query("SELECT SUM(lettings) AS n FROM rm_apartments")[0]["n"]
    assert topics["CourseSessionAttended"] > 0 and topics["Occupied"] > 0
    assert (facts["cases"], facts["sessions"], facts["complaints"], lettings) == (
        topics["Applied"], topics["CourseSessionAttended"], topics["ComplaintRecorded"],
        topics["Occupied"])


def test_sqlite_and_postgresql_give_identical_reports(tmp_path: Path):
    skip_or_fail_without_postgres()
    steps = demo_steps(30, seed=11)
    name = create_database()
    try:
        results = []
        for kind in ("sqlite", "postgres"):
            app = HousingChain(env=store_env(kind, tmp_path, name))
            write(app, steps)
            runner = ProjectionRunner(app, open_view(view_env(kind, tmp_path, name)))
            runner.catch_up()
            results.append(every_report(runner.view))
        assert results[0] == results[1]
    finally:
        drop_database(name)


def test_the_projection_selects_every_event_type_of_the_aggregates():
    """A new event type must be added to the projection's topics, or it is never read."""
    from eventsourcing.domain import Aggregate

    from domain.apartment import Apartment
    from domain.case import Case
    from domain.notice import Notice
    from projections.projector import TOPICS

    for aggregate in (Case, Apartment, Notice):
        events = {name for name, obj in vars(aggregate).items()
                  if isinstance(obj, type) and issubclass(obj, Aggregate.Event)
                  and name not in ("Event", "Created")}  # the library's base classes
        assert events, aggregate
        prefix = f"{aggregate.__module__}:{aggregate.__qualname__}."
        missing = {e for e in events if prefix + e not in TOPICS}
        assert not missing, f"{aggregate.__name__} events not projected: {sorted(missing)}"


def test_a_running_projection_follows_new_events(backend):
    """SQLite by polling; PostgreSQL woken by LISTEN/NOTIFY."""
    import time

    store, views = backend
    app = HousingChain(env=store)
    runner = ProjectionRunner(HousingChain(env=store), open_view(views)).start()
    try:
        write(app, demo_steps(3))
        deadline = time.monotonic() + 20
        while runner.position < app.recorder.max_notification_id():
            assert time.monotonic() < deadline, "the projection did not follow"
            time.sleep(0.05)
        listening = [t.name for t in threading.enumerate() if t.name == "projection-listen"]
        assert bool(listening) == store["PERSISTENCE_MODULE"].endswith("postgres")
    finally:
        runner.stop()


_OPEN_EVERY_STORE = """
import os, sys, time
from pathlib import Path
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
from application.keys import PostgresWrappedKeys
from application.store import HousingChain
from projections.view import open_view
env = dict(os.environ)
HousingChain(env=env).close()
open_view(env)
PostgresWrappedKeys(env).close()
print("ok")
"""


def test_processes_starting_at_once_on_a_new_database_all_create_their_tables(tmp_path: Path):
    """Two imports (or workers) started together on a new PostgreSQL database both create the
    event store's, the view's and the key store's tables; PostgreSQL refused the loser of
    eventsourcing's `CREATE OR REPLACE FUNCTION` with "tuple concurrently updated" before the
    table-creation lock."""
    skip_or_fail_without_postgres()
    name = create_database()
    try:
        env = {**os.environ, **store_env("postgres", tmp_path, name)}
        go = tmp_path / "go"
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_EVERY_STORE, str(go)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=Path(__file__).resolve().parents[1])
                 for _ in range(8)]
        time.sleep(3)  # every process imported and waiting
        go.touch()
        results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
        failed = [err.strip().splitlines()[-1] for out, err, code in results if code != 0]
        assert not failed, failed
    finally:
        drop_database(name)


def test_a_reports_case_list_limited_to_a_unit_is_that_units_report(tmp_path: Path):
    """`reports.cases_only` keeps a unit's cases and computes the figures again from them: the
    answer equals the report over a store that holds that unit's cases alone (the queue with
    its groups and past-deadline count, the IVO rows, the arrears' totals, the returns'
    counts); the caseload keeps its per-pilot counts and lists the unit's overdue visits."""
    steps = demo_steps(160, seed=5)
    district_of = {s.case: s.client.district for s in steps if s.type == "apply"}
    unit = Counter(district_of.values()).most_common(1)[0][0]
    ours = {c for c, dist in district_of.items() if dist == unit}
    assert 0 < len(ours) < len(district_of)
    views = {}
    for name, kept in (("all", steps), ("unit", [s for s in steps if getattr(s, "case", None)
                                                 in ours or not getattr(s, "case", None)])):
        (tmp_path / name).mkdir()
        app = HousingChain(env=store_env("sqlite", tmp_path / name))
        write(app, kept)
        runner = ProjectionRunner(app, open_view(view_env("sqlite", tmp_path / name)))
        runner.catch_up()
        views[name] = runner.view
    keep = ours.__contains__
    asked = [("queue", lambda v: reports.queue(v, date(2025, 6, 30), "district"), "district"),
             ("queue", lambda v: reports.queue(v, TODAY, "target-group"), "target-group"),
             ("queue", lambda v: reports.queue(v, TODAY), None),
             *[("ivo", lambda v, q=q: reports.ivo(v, q), None)
               for q in ("2025Q2", "2025Q4", "2026Q2", "2026Q3")],
             ("arrears", lambda v: reports.arrears(v), None),
             ("arrears", lambda v: reports.arrears(v, date(2025, 12, 31)), None)]
    for name, run, by in asked:
        limited = reports.cases_only(name, run(views["all"]), keep, by)
        assert limited == run(views["unit"]), name
        assert all(r["case"] in ours for r in limited["rows"])
    assert any(reports.cases_only(n, run(views["all"]), keep, by)["rows"]
               for n, run, by in asked)  # something was compared
    # a return's later case may be another unit's, which the unit's own store cannot name:
    # the returns are checked against their own rows
    returns = reports.cases_only("returns", reports.returns(views["all"]), keep)
    assert returns["rows"] and all(r["case"] in ours for r in returns["rows"])
    assert all(r["returned_case"] in ours for r in returns["rows"] if r["returned_case"])
    assert [r["within_24_months"] for r in returns["rows"]] == [
        r["within_24_months"] for r in reports.returns(views["all"])["rows"] if r["case"] in ours]
    for m in (6, 12, 24):
        assert returns[f"returned_within_{m}_months"] == sum(
            r[f"within_{m}_months"] for r in returns["rows"])
    assert returns["exits_to_permanent_housing"] == len(returns["rows"])
    whole = reports.caseload(views["all"], TODAY, POLICY)
    load = reports.cases_only("caseload", whole, keep)
    assert [(p["pilot"], p["cases"], p["overdue_visits"]) for p in load["rows"]] == [
        (p["pilot"], p["cases"], p["overdue_visits"]) for p in whole["rows"]]
    overdue = {o["case"] for p in whole["rows"] for o in p["overdue"]}
    assert {o["case"] for p in load["rows"] for o in p["overdue"]} == overdue & ours
    assert overdue - ours  # the other units' overdue visits were there and left out


def test_a_process_waiting_for_the_table_creation_lock_stops_with_a_message_not_a_hang():
    """A process holding the lock stuck makes the next one say so after the configured wait
    (HOUSING_CHAIN_SCHEMA_LOCK_SECONDS) instead of hanging at start; once it is free, the
    next one goes through."""
    from config import postgres

    skip_or_fail_without_postgres()
    name = create_database()
    try:
        env = {**store_env("postgres", Path("."), name), "HOUSING_CHAIN_SCHEMA_LOCK_SECONDS": "0.5"}
        holder = postgres.connect(env)
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (postgres.SCHEMA_LOCK,))
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="creating or migrating the tables"), \
                postgres.creating_tables(env):
            pass
        assert time.monotonic() - started < 30
        holder.close()
        with postgres.creating_tables(env):
            pass
    finally:
        drop_database(name)
