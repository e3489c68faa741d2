"""The read-model projection is reliable: every event is applied exactly once, whatever stops
or doubles the runner, and a rebuild gives what incremental projection gave.

Event stores are written without Temporal, straight through `HousingChain.run` (the same
service the workflows' activities call) from the demo municipality's lines, once per module.
Every report is computed for fixed dates, so nothing depends on the clock. Tests that start
`housing-chain` subprocesses are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from application.store import HousingChain
from domain.commands import import_line_adapter
from domain.policy import Policy
from projections import reports
from projections.runner import ProjectionRunner
from projections.view import TABLES, ChainView, open_view
from runtime.demo import generate

TODAY = date(2026, 11, 24)  # after the demo's last line (2026-10-30)
AS_OF = date(2026, 11, 20)
POLICY = Policy()
CLI = [sys.executable, "-m", "interfaces.cli.main"]
APP = HousingChain.name


# --- building event stores -------------------------------------------------------------------

def demo_steps(cases: int, seed: int) -> list[Any]:
    """The demo municipality as parsed steps, each with a command id, identities left out."""
    steps = []
    for i, line in enumerate(generate(cases=cases, seed=seed)):
        step = import_line_adapter.validate_python(line).model_copy(update={"id": f"x{i}"})
        if step.type == "apply":
            step = step.without_identity()
        steps.append(step)
    return steps


def parse(lines: Sequence[dict[str, Any]], prefix: str) -> list[Any]:
    steps = []
    for i, line in enumerate(lines):
        step = import_line_adapter.validate_python({"actor": "handlaggare.lind", **line,
                                                    "id": f"{prefix}{i}"})
        if step.type == "apply":
            step = step.without_identity()
        steps.append(step)
    return steps


def sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "30"}


def store_app(path: Path) -> HousingChain:
    return HousingChain(env=sqlite_env(path))


def view_at(path: Path) -> ChainView:
    return open_view(sqlite_env(path))


def runner_for(store: Path, views: Path, page_size: int = 1_000) -> ProjectionRunner:
    return ProjectionRunner(store_app(store), view_at(views), page_size=page_size)


def write(app: HousingChain, steps: Sequence[Any], chunk: int = 200,
          after_chunk: Callable[[], Any] | None = None) -> None:
    for start in range(0, len(steps), chunk):
        results = app.run(steps[start:start + chunk], today=TODAY, policy=POLICY)
        refused = [(r.command_id, r.reason) for r in results if not r.accepted]
        assert refused == []
        if after_chunk is not None:
            after_chunk()


def build_store(path: Path, cases: int, seed: int) -> Path:
    app = store_app(path)
    write(app, demo_steps(cases, seed))
    app.close()
    return path


def copy_store(source: Path, target: Path) -> Path:
    """A consistent copy (the WAL folded in) of an SQLite event store."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def head_of(store: Path) -> int:
    with sqlite3.connect(store) as db:
        head = db.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
    db.close()
    return head


def count_topic(store: Path, like: str) -> int:
    with sqlite3.connect(store) as db:
        n = db.execute("SELECT COUNT(*) FROM stored_events WHERE topic LIKE ?", (like,)).fetchone()[0]
    db.close()
    return n


def tracking_position(views: Path) -> int:
    """The view's tracking position, read the way an operator would (0 before the first page)."""
    if not views.exists():
        return 0
    try:
        db = sqlite3.connect(views, timeout=30)
        try:
            row = db.execute("SELECT notification_id FROM tracking WHERE application_name = ?",
                             (APP,)).fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:  # the tracking table is not there yet
        return 0
    return row[0] if row else 0


# --- what the view holds ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def store_120(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("store120") / "events.sqlite", 120, seed=7)


@pytest.fixture(scope="module")
def store_600(tmp_path_factory) -> Path:
    """Big enough (about 38,000 notifications) that a catch-up takes a second or more."""
    return build_store(tmp_path_factory.mktemp("store600") / "events.sqlite", 600, seed=11)


def all_reports(view: ChainView) -> dict[str, Any]:
    """Every report, with fixed dates, as JSON-comparable data."""
    out: dict[str, Any] = {}
    for interval in reports.INTERVALS:
        for by in ("year", "target-group"):
            out[f"waiting-times {interval} by {by}"] = reports.waiting_times(
                view, interval, by, as_of=AS_OF)
    out["throughput by quarter"] = reports.throughput(view, "quarter")
    out["queue 2024-06-28 by target-group"] = reports.queue(view, date(2024, 6, 28),
                                                            "target-group")
    out["queue as of"] = reports.queue(view, AS_OF)
    out["ivo 2024Q2"] = reports.ivo(view, "2024Q2")
    out["ivo 2026Q3"] = reports.ivo(view, "2026Q3")
    out["caseload"] = reports.caseload(view, AS_OF, POLICY)
    out["arrears"] = reports.arrears(view)
    out["stock"] = reports.stock(view, AS_OF)
    out["returns"] = reports.returns(view)
    return json.loads(json.dumps(out, ensure_ascii=False, default=str))


def fact_tables(views: Path) -> dict[str, list[tuple]]:
    """Every fact row, ordered by key (the tracking table apart)."""
    out = {}
    with sqlite3.connect(views) as db:
        for table, (columns, key) in TABLES.items():
            out[table] = db.execute(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(key)}").fetchall()
    db.close()
    return out


def assert_meaningful(result: dict[str, Any]) -> None:
    """The reports compared are not trivially empty."""
    assert result["waiting-times application-to-decision by year"]["rows"]
    assert result["waiting-times application-to-housed by target-group"]["rows"]
    assert any(r["applications"] for r in result["throughput by quarter"]["rows"])
    assert result["caseload"]["rows"] and result["arrears"]["rows"]
    assert result["stock"]["status"] and result["returns"]["exits_to_permanent_housing"]


def assert_each_event_applied_once(store: Path, views: Path) -> None:
    """Facts that count events equal the events in the store: nothing doubled or lost."""
    with sqlite3.connect(views) as db:
        sessions, complaints = db.execute(
            "SELECT SUM(course_sessions), SUM(complaints) FROM rm_cases").fetchone()
        lettings = db.execute("SELECT SUM(lettings) FROM rm_apartments").fetchone()[0]
        cases = db.execute("SELECT COUNT(*) FROM rm_cases").fetchone()[0]
        exits = db.execute("SELECT COUNT(*) FROM rm_exits").fetchone()[0]
        applications = db.execute(
            "SELECT SUM(n) FROM rm_daily WHERE measure = 'applications'").fetchone()[0]
    db.close()
    assert cases == applications == count_topic(store, "domain.case:Case.Applied")
    assert exits == count_topic(store, "domain.case:Case.Exited")
    assert sessions == count_topic(store, "domain.case:Case.CourseSessionAttended")
    assert complaints == count_topic(store, "domain.case:Case.ComplaintRecorded")
    # a letting is a move-in, or a move from another apartment of the programme (omflyttning)
    assert lettings == (count_topic(store, "domain.apartment:Apartment.Occupied")
                        + count_topic(store, "domain.apartment:Apartment.MovedInto"))


def reference(store: Path, views: Path) -> tuple[dict, dict]:
    """An uninterrupted projection into a views file of its own: its reports and tables."""
    runner = runner_for(store, views)
    runner.catch_up()
    assert runner.position == head_of(store)
    return all_reports(runner.view), fact_tables(views)


# --- rebuild ---------------------------------------------------------------------------------

def test_rebuild_gives_what_incremental_projection_gave(tmp_path):
    store, views = tmp_path / "events.sqlite", tmp_path / "views.sqlite"
    steps = demo_steps(120, seed=7)
    writer = store_app(store)
    # odd-sized pages, and a catch-up after every chunk of writes: page boundaries fall
    # everywhere, unlike the rebuild's
    runner = runner_for(store, views, page_size=137)
    catch_ups: list[int] = []
    write(writer, steps, chunk=200, after_chunk=lambda: catch_ups.append(runner.catch_up()))
    head = head_of(store)
    assert len(catch_ups) >= 15 and sum(catch_ups) == head and runner.position == head

    incremental = all_reports(runner.view)
    incremental_facts = fact_tables(views)
    assert_meaningful(incremental)
    assert_each_event_applied_once(store, views)

    assert runner.rebuild() == head
    assert runner.position == head
    assert fact_tables(views) == incremental_facts
    assert all_reports(runner.view) == incremental

    fresh, fresh_facts = reference(store, tmp_path / "fresh.sqlite")
    assert fresh == incremental and fresh_facts == incremental_facts


def test_a_case_row_saved_column_by_column_over_many_pages_is_the_row_written_whole(
        tmp_path, store_120):
    """A loaded case row is saved as an update of the columns its page changed; a row first
    seen in a page is written whole. Pages of 5 notifications update rows again and again;
    one page of the whole store writes every row whole, once."""
    head = head_of(store_120)
    small = runner_for(store_120, tmp_path / "small.sqlite", page_size=5)
    whole = runner_for(store_120, tmp_path / "whole.sqlite", page_size=head)
    updates = []
    save = small.view._save_cases

    def counting(c, page):
        updates.append(len(page.cases_before))
        return save(c, page)

    small.view._save_cases = counting  # type: ignore[method-assign]
    assert small.catch_up() == whole.catch_up() == head
    assert sum(updates) > 1_000  # rows loaded and updated, not only new ones
    small_facts, whole_facts = (fact_tables(tmp_path / "small.sqlite"),
                                fact_tables(tmp_path / "whole.sqlite"))
    assert small_facts["rm_cases"] and small_facts == whole_facts
    assert all_reports(small.view) == all_reports(whole.view)


# --- two runners on one view -----------------------------------------------------------------

def test_two_runners_at_once_apply_every_event_exactly_once(tmp_path, store_120):
    store = copy_store(store_120, tmp_path / "events.sqlite")
    views = tmp_path / "views.sqlite"
    head = head_of(store)
    runners = [runner_for(store, views, page_size=250) for _ in range(2)]
    saved = [0, 0]
    refused = [0, 0]
    for i, runner in enumerate(runners):
        def counting_save(page, start, tracking, i=i, save=runner.view.save_page):
            try:
                save(page, start, tracking)
            except Exception:
                refused[i] += 1
                raise
            saved[i] += 1
        runner.view.save_page = counting_save  # type: ignore[method-assign]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(runner: ProjectionRunner) -> None:
        try:
            start.wait()
            while runner.position < head:
                runner.catch_up()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert all(r.position == head for r in runners)
    # every page (all full but the last, so both runners cut the log alike) was committed
    # once, by one runner or the other; the other's attempt, if any, was refused
    assert sum(saved) == -(-head // 250)
    assert_each_event_applied_once(store, views)
    expected, expected_facts = reference(store, tmp_path / "single.sqlite")
    assert fact_tables(views) == expected_facts
    assert all_reports(runners[0].view) == expected


def new_case_lines(case: str, first_day: int) -> tuple[list[dict], list[dict]]:
    """Two batches of steps for a new case; both batches carry counted events."""
    day = lambda n: date(2026, 11, first_day + n).isoformat()  # noqa: E731
    client = {"id": f"kl-{case}", "target_group": "young_adults", "district": "Farsta"}
    first = [
        {"type": "apply", "case": case, "on": day(0), "client": client},
        {"type": "start_assessment", "case": case, "on": day(0)},
        {"type": "decide", "case": case, "on": day(1), "outcome": "granted",
         "programme": "training_apartment"},
        {"type": "course_session", "case": case, "on": day(1), "session": 1},
    ]
    second = [{"type": "course_session", "case": case, "on": day(2), "session": 2}]
    return first, second


def interleave(a: ProjectionRunner, b: ProjectionRunner, meanwhile: Callable[[], Any]) -> None:
    """Two runners' pages, interleaved deterministically: A reads the position and selects
    its page; `meanwhile` writes more events; B reads the same position and selects a longer
    page; A loads its rows, projects and saves; only then does B load its rows and save.
    (A `project` process and a `report` catching up beside it, while an import runs.)"""
    a_selected, b_selected = threading.Event(), threading.Event()
    a_load, b_load = a.view.load_page, b.view.load_page

    def a_loads(*args: Any) -> Any:
        a_selected.set()
        assert b_selected.wait(30)
        return a_load(*args)

    def b_loads(*args: Any) -> Any:
        b_selected.set()
        thread_a.join(30)
        return b_load(*args)

    a.view.load_page = a_loads  # type: ignore[method-assign]
    b.view.load_page = b_loads  # type: ignore[method-assign]
    thread_a = threading.Thread(target=a.run_page)
    thread_a.start()
    try:
        assert a_selected.wait(30)
        meanwhile()
        b.run_page()
    finally:
        b_selected.set()
        thread_a.join(30)
        del a.view.load_page, b.view.load_page


def test_a_runner_that_read_an_old_position_does_not_apply_a_page_twice(tmp_path, store_120):
    """B's rows are loaded after A saved, so they already hold A's page, which B's page
    repeats. B must not apply those events again. (Today it is the audit table's primary
    key that refuses B's page: re-inserting a case event's audit row fails the transaction.)"""
    store = copy_store(store_120, tmp_path / "events.sqlite")
    views = tmp_path / "views.sqlite"
    writer = store_app(store)
    a, b = runner_for(store, views), runner_for(store, views)
    a.catch_up()
    first, second = new_case_lines("RACE-1", 2)
    write(writer, parse(first, "race1-"))
    interleave(a, b, lambda: write(writer, parse(second, "race2-")))
    b.catch_up()
    assert a.position == b.position == head_of(store)

    assert_each_event_applied_once(store, views)
    _, expected_facts = reference(store, tmp_path / "single.sqlite")
    assert fact_tables(views) == expected_facts


def tenancy_lines(case: str, apartment: str) -> list[dict]:
    """A new apartment and a new case up to the landlord's approval, in November 2026."""
    day = lambda n: date(2026, 11, n).isoformat()  # noqa: E731
    client = {"id": f"kl-{case}", "target_group": "young_adults", "district": "Farsta"}
    return [
        {"type": "register_apartment", "apartment": apartment, "landlord": "Stockholmshem",
         "rooms": 1, "on": day(2)},
        {"type": "apply", "case": case, "on": day(2), "client": client},
        {"type": "start_assessment", "case": case, "on": day(2)},
        {"type": "decide", "case": case, "on": day(3), "outcome": "granted",
         "programme": "training_apartment"},
        {"type": "offer", "case": case, "apartment": apartment, "on": day(4)},
        {"type": "landlord_decision", "case": case, "approved": True, "on": day(5)},
    ]


def test_a_runner_that_read_an_old_position_does_not_fold_apartment_events_twice(
        tmp_path, store_120):
    store = copy_store(store_120, tmp_path / "events.sqlite")
    views = tmp_path / "views.sqlite"
    writer = store_app(store)
    a, b = runner_for(store, views), runner_for(store, views)
    write(writer, parse(tenancy_lines("RACE-2", "APT-RACE-2"), "tenancy-"))
    a.catch_up()
    write(writer, parse([{"type": "move_in", "case": "RACE-2", "apartment": "APT-RACE-2",
                          "on": date(2026, 11, 6).isoformat()}], "movein-"))
    # a page ends between the move-in's two events, as a full page can end anywhere
    cutter = runner_for(store, views, page_size=1)
    assert cutter.run_page() == 1
    after_cut = a.app.recorder.select_notifications(
        start=a.position, limit=1, inclusive_of_start=False)
    assert after_cut[0].topic == "domain.apartment:Apartment.Occupied"
    session = [{"type": "course_session", "case": "RACE-2", "session": 1,
                "on": date(2026, 11, 7).isoformat()}]
    interleave(a, b, lambda: write(writer, parse(session, "session-")))
    b.catch_up()
    assert a.position == b.position == head_of(store)

    assert_each_event_applied_once(store, views)


def test_a_rebuild_beside_a_running_projection_loses_nothing(tmp_path, store_120):
    store = copy_store(store_120, tmp_path / "events.sqlite")
    views = tmp_path / "views.sqlite"
    writer = store_app(store)
    running, rebuilding = runner_for(store, views), runner_for(store, views)
    running.catch_up()
    batch1, _ = new_case_lines("REB-1", 2)
    write(writer, parse(batch1, "reb-"))
    save = running.view.save_page

    def rebuild_starts_meanwhile(page, start, tracking):
        rebuilding.view.drop_all()  # `housing-chain projections rebuild`'s first step
        save(page, start, tracking)

    running.view.save_page = rebuild_starts_meanwhile  # type: ignore[method-assign]
    running.run_page()
    rebuilding.catch_up()  # the rest of the rebuild
    assert rebuilding.position == head_of(store)

    assert_each_event_applied_once(store, views)


# --- SIGKILL ---------------------------------------------------------------------------------

def cli_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PERSISTENCE_MODULE", "SQLITE_DBNAME", "POSTGRES_DBNAME")}
    # pages smaller than the store, so that a kill can fall between two of them
    env.update(HOUSING_CHAIN_DATA=str(data), HOUSING_CHAIN_LOG_FORMAT="json", COLUMNS="200",
               HOUSING_CHAIN_PROJECTION_PAGE="5000")
    return env


def start_project(data: Path, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([*CLI, "project"], env=cli_env(data), stdout=out,
                                stderr=subprocess.STDOUT)


def poll(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@pytest.mark.slow
def test_sigkill_mid_catch_up_then_restart_applies_every_event_once(tmp_path, store_600):
    data = tmp_path / "data"
    store = copy_store(store_600, data / "events.sqlite")
    views = data / "views.sqlite"
    head = head_of(store)
    log = tmp_path / "project.log"

    first = start_project(data, log)
    try:
        mid = poll(lambda: 0 < tracking_position(views) < head, timeout=120)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(30)
    assert mid, log.read_text()
    assert first.returncode == -signal.SIGKILL
    killed_at = tracking_position(views)
    assert 0 < killed_at < head, (killed_at, head)

    second = start_project(data, log)
    try:
        assert poll(lambda: tracking_position(views) == head, timeout=180, interval=0.1), \
            log.read_text()
        second.terminate()  # SIGTERM: the runner stops after its page and says where
        second.wait(60)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(30)
    output = log.read_text()
    assert second.returncode == 0, output
    assert f"projecting from event 0 of {head}" in output
    assert f"projecting from event {killed_at} of {head}" in output  # resumed, not restarted
    assert f"stopped at event {head}" in output

    assert_each_event_applied_once(store, views)
    expected, expected_facts = reference(store, tmp_path / "uninterrupted.sqlite")
    assert fact_tables(views) == expected_facts
    assert all_reports(view_at(views)) == expected
    status = subprocess.run([*CLI, "projections", "status", "--json"], env=cli_env(data),
                            capture_output=True, text=True, timeout=120)
    assert json.loads(status.stdout)["projections"] == [
        {"projection": "ChainView", "position": head, "head": head, "behind": 0}]


# --- `report` reads its own writes -----------------------------------------------------------

def report(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "report", *args, "--json"], env=cli_env(data),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_report_catches_up_on_writes_made_after_the_last_projection(tmp_path, store_120):
    data = tmp_path / "data"
    store = copy_store(store_120, data / "events.sqlite")
    views = data / "views.sqlite"
    runner = runner_for(store, views)
    runner.catch_up()
    projected = runner.position
    runner.app.close()

    # new events, with no projection running
    first, second = new_case_lines("RYW-1", 3)
    write(store_app(store), parse(first + second, "ryw-"))
    head = head_of(store)
    assert head > projected and tracking_position(views) == projected

    history = report(data, "history", "RYW-1")  # read from the event store itself
    assert history.returncode == 0, history.stderr
    assert [r["event"] for r in json.loads(history.stdout)["rows"]] == [
        "Applied", "AssessmentStarted", "Granted", "CourseSessionAttended",
        "CourseSessionAttended"]

    queue = report(data, "queue", "--as-of", AS_OF.isoformat())
    assert queue.returncode == 0, queue.stderr
    assert tracking_position(views) == head
    answered = json.loads(queue.stdout)
    assert "RYW-1" in [r["case"] for r in answered["rows"]]
    fresh = runner_for(store, tmp_path / "fresh.sqlite")
    fresh.catch_up()
    assert answered == {"definition_version": reports.DEFINITION_VERSIONS["queue"],
                        **json.loads(json.dumps(reports.queue(fresh.view, AS_OF)))}


def assert_current_or_refused(result: subprocess.CompletedProcess, expected: dict) -> str:
    """The contract of `report`: the numbers of the whole event store, or a refusal (exit 1)
    that says how far behind the read models are. Never stale numbers with exit 0."""
    answer = json.loads(result.stdout)
    if result.returncode == 0:
        assert answer == expected
        return "answered"
    assert result.returncode == 1, result.stderr
    assert answer["accepted"] is False and "rows" not in answer
    assert "the read models are at event" in answer["reason"]
    assert "is the projection running?" in answer["reason"]
    return "refused"


@pytest.mark.slow
def test_report_never_prints_stale_numbers_when_far_behind(tmp_path, store_600):
    data = tmp_path / "data"
    store = copy_store(store_600, data / "events.sqlite")
    views = data / "views.sqlite"
    head = head_of(store)
    fresh = runner_for(store, tmp_path / "fresh.sqlite")
    fresh.catch_up()
    expected = {"definition_version": reports.DEFINITION_VERSIONS["throughput"],
                **json.loads(json.dumps(reports.throughput(fresh.view, "quarter"), default=str))}

    # --wait 0 against a view that has projected nothing of ~38,000 notifications
    immediate = report(data, "throughput", "--by", "quarter", "--wait", "0")
    outcome = assert_current_or_refused(immediate, expected)
    after = tracking_position(views)
    if outcome == "refused":
        assert f"at event {after} of {head}" in json.loads(immediate.stdout)["reason"]
    else:
        assert after == head

    # a wait too short for a whole catch-up: partial progress is kept, never shown as final
    short = report(data, "throughput", "--by", "quarter", "--wait", "0.3")
    assert_current_or_refused(short, expected)
    assert tracking_position(views) >= after

    # the default wait is long enough: it catches up itself and answers
    full = report(data, "throughput", "--by", "quarter")
    assert assert_current_or_refused(full, expected) == "answered"
    assert tracking_position(views) == head


def test_a_compressed_event_store_gives_the_same_reports_as_a_plain_one(tmp_path):
    """With a compressor (or a cipher) the stored state is not plain JSON: the runner then
    reads through the library's mapper, and the read models must come out the same."""
    steps = demo_steps(20, seed=5)
    plain = tmp_path / "plain.sqlite"
    compressed = tmp_path / "compressed.sqlite"
    write(store_app(plain), steps)
    zipped = {**sqlite_env(compressed), "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"}
    write(HousingChain(env=zipped), steps)
    with sqlite3.connect(compressed) as db:  # the state really is compressed
        state = db.execute("SELECT state FROM stored_events LIMIT 1").fetchone()[0]
    db.close()
    assert not state.startswith(b"{")

    expected = runner_for(plain, tmp_path / "views-plain.sqlite")
    expected.catch_up()
    runner = ProjectionRunner(HousingChain(env=zipped), view_at(tmp_path / "views-zip.sqlite"),
                              page_size=1_000)
    runner.catch_up()
    assert runner.position == expected.position
    assert_meaningful(all_reports(runner.view))
    assert all_reports(runner.view) == all_reports(expected.view)


def test_a_new_views_file_has_large_pages_and_an_existing_one_keeps_its_own(tmp_path):
    fresh = tmp_path / "fresh.sqlite"
    open_view({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(fresh)})
    with sqlite3.connect(fresh) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 16384
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    older = tmp_path / "older.sqlite"
    with sqlite3.connect(older) as conn:
        conn.execute("CREATE TABLE t (a)")
    open_view({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(older)})
    with sqlite3.connect(older) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096


def test_a_page_is_projected_without_automatic_collections_and_the_collector_comes_back(
        tmp_path, monkeypatch):
    import gc

    store, views = tmp_path / "events.sqlite", tmp_path / "views.sqlite"
    write(store_app(store), demo_steps(10, seed=3), chunk=500)
    runner = runner_for(store, views, page_size=50)
    seen: list[bool] = []
    project = runner._project
    monkeypatch.setattr(runner, "_project", lambda *a: (seen.append(gc.isenabled()),
                                                         project(*a)))
    assert gc.isenabled()
    assert runner.catch_up() == head_of(store)
    assert seen and not any(seen) and gc.isenabled()

    def broken(*_: object) -> None:
        raise RuntimeError("the page failed")

    again = runner_for(store, tmp_path / "again.sqlite", page_size=50)
    monkeypatch.setattr(again, "_project", broken)
    with pytest.raises(RuntimeError):
        again.run_page()
    assert gc.isenabled() and again.position == 0
