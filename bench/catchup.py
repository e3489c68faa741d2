"""The read-model projection over about a million events: raw read rate, catch-up, reports.

The event store (cached, built once): about 50,000 demo-like cases written straight through
`HousingChain.run`, the service the workflows' activities call, without Temporal. The demo
simulation is run as 50 municipalities of 1,000 cases (`runtime.demo.generate` with
seeds 5000..5049; one simulation of 50,000 cases would model one huge queue instead, and its
lines are not needed to be any more "real"), each one's case, apartment and client ids
prefixed `Mnn-` so they never collide, merged in date order (stable, so a municipality's
same-day lines keep their order). To reach about a million notifications rather than three
million, support visits are thinned: each case keeps its first home visit and drops the rest
(`--visits first`; `all` keeps every visit, `none` drops them all). Nothing else is changed:
every line goes through the real service and must be accepted. Lines go in 250 at a time
(one `run` call and one atomic save per 250 lines; bigger units get slower, see the README).
The store is kept in bench/results/catchup-store/ (git-ignored) with a JSON note of how it
was built and how long that took; later runs reuse it.

Then, each on a quiet process (no projection running):

(a) raw read: `app.recorder.select_notifications` over the whole log in pages of 1,000,
    notifications/s (best of two passes; the first also warms the OS page cache), and
    the same with `app.mapper.to_domain_event` on every notification;
(b) catch-up: `ProjectionRunner.catch_up()` as the CLI runs it (its default page size,
    `projections.runner.PAGE`) into a fresh views file in a temporary directory, seconds and
    notifications/s, with where the time went (read = select + decode, load rows, project,
    save rows + tracking and its commit; page-level timers only, so no per-event overhead),
    and the same steps re-done one by one on the log's last 50,000 notifications against
    the full view; target ≥ 25 % of the raw read rate and the whole catch-up under 2 minutes;
    `--extra-page-size N` times one more catch-up with pages of N, for comparison;
(c) reports: every report (`projections.reports`, as `housing-chain report` calls them) on
    the caught-up view, 20 timed runs each after one warm-up, p50/p95; target p95 < 200 ms.

Prints a table next to the targets and writes bench/results/catchup.json. Timings are
reported, never asserted. Removes its temporary views file on the way out (Ctrl-C too).
"""

from __future__ import annotations

import argparse
import heapq
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.sqlite import SQLiteConnection
from harness import RESULTS, CpuMeter, machine, percentile, write_results

from application.store import HousingChain
from config.gcwatch import collect_recent
from config.settings import Settings
from domain.commands import import_line_adapter
from domain.policy import Policy
from projections import projector, reports
from projections import runner as runner_module
from projections.runner import ProjectionRunner
from projections.view import ROW_TUPLE, open_view
from runtime import demo

TODAY = date(2026, 11, 24)  # after the demo's last line (2026-10-30)
AS_OF = date(2026, 11, 20)
PAST = date(2025, 12, 31)  # the reports "as of a past date": from the dated steps
SHARD_CASES = 1_000
BASE_SEED = 5_000
CHUNK = 250
PAGE = 1_000  # raw reads; the catch-up uses the runner's own page size
STORE_DIR = RESULTS / "catchup-store"
TARGET_RATIO = 0.25
TARGET_CATCH_UP_S = 120.0
TARGET_P95_MS = 200.0


def sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "30"}


# --- the event store ---------------------------------------------------------------------

def shard_lines(k: int, cases: int, visits: str) -> list[dict[str, Any]]:
    """One municipality's demo lines, ids prefixed, visits thinned."""
    prefix = f"M{k:02d}-"
    visited: set[str] = set()
    out = []
    for line in demo.generate(cases=cases, seed=BASE_SEED + k):
        if line["type"] == "record_visit" and visits != "all":
            if visits == "none" or line["kind"] != "home_visit" or line["case"] in visited:
                continue
            visited.add(line["case"])
        line = dict(line)
        for key in ("case", "apartment"):
            if key in line:
                line[key] = prefix + line[key]
        if line["type"] == "apply":
            line["client"] = {**line["client"], "id": prefix + line["client"]["id"]}
        out.append(line)
    return out


def all_lines(cases: int, visits: str) -> list[dict[str, Any]]:
    shards = []
    left, k = cases, 0
    while left > 0:
        shards.append(shard_lines(k, min(SHARD_CASES, left), visits))
        left -= SHARD_CASES
        k += 1
    return list(heapq.merge(*shards, key=lambda line: line["on"]))


def steps(lines: Iterable[dict[str, Any]]) -> Iterator[Any]:
    for i, line in enumerate(lines):
        step = import_line_adapter.validate_python({**line, "id": f"b{i}"})
        yield step.without_identity() if step.type == "apply" else step


def count_store(path: Path) -> dict[str, Any]:
    with sqlite3.connect(path) as db:
        by_topic = dict(db.execute("SELECT topic, COUNT(*) FROM stored_events GROUP BY topic"))
        head = db.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
    db.close()
    domain = sum(n for t, n in by_topic.items() if t.startswith("domain."))
    return {
        "notifications": sum(by_topic.values()),
        "head": head,
        "domain_events": domain,
        "case_events": sum(n for t, n in by_topic.items() if t.startswith(projector.CASE_TOPIC)),
        "apartment_events": sum(n for t, n in by_topic.items()
                                if t.startswith(projector.APARTMENT_TOPIC)),
        "command_markers": sum(n for t, n in by_topic.items() if "ProcessedCommand" in t),
        "other": sum(n for t, n in by_topic.items()
                     if not t.startswith("domain.") and "ProcessedCommand" not in t),
        "cases": by_topic.get(projector.CASE_TOPIC + "Applied", 0),
        "apartments": by_topic.get(projector.APARTMENT_TOPIC + "Registered", 0),
    }


def build_store(path: Path, cases: int, visits: str) -> dict[str, Any]:
    partial = path.with_suffix(".partial")
    for stale in partial.parent.glob(partial.name + "*"):
        stale.unlink()
    began = time.perf_counter()
    lines = all_lines(cases, visits)
    generated = time.perf_counter() - began
    print(f"  generated {len(lines):,} lines of {cases:,} cases in {generated:.0f} s; "
          f"writing them {CHUNK} a call through HousingChain.run…", flush=True)
    app = HousingChain(env=sqlite_env(partial))
    policy = Policy()
    chunk: list[Any] = []
    written = 0
    write_began = last = time.perf_counter()

    def flush() -> None:
        nonlocal written, last
        refused = [(r.command_id, r.reason) for r in app.run(chunk, today=TODAY, policy=policy)
                   if not r.accepted]
        if refused:
            raise RuntimeError(f"the service refused demo lines: {refused[:3]}")
        written += len(chunk)
        chunk.clear()
        if time.perf_counter() - last > 30:
            last = time.perf_counter()
            rate = written / (last - write_began)
            print(f"  {written:,} of {len(lines):,} lines, {rate:,.0f} lines/s, "
                  f"about {(len(lines) - written) / rate / 60:.1f} min to go", flush=True)

    for step in steps(lines):
        chunk.append(step)
        if len(chunk) == CHUNK:
            flush()
    if chunk:
        flush()
    app.close()
    wrote = time.perf_counter() - write_began
    with sqlite3.connect(partial) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    partial.rename(path)
    for leftover in partial.parent.glob(partial.name + "-*"):
        leftover.unlink()
    note = {
        "cases": cases, "visits": visits, "shard_cases": SHARD_CASES, "seeds":
        [BASE_SEED, BASE_SEED + (cases - 1) // SHARD_CASES], "lines": len(lines),
        "lines_per_run_call": CHUNK, "generate_seconds": round(generated, 1),
        "write_seconds": round(wrote, 1), "build_seconds": round(time.perf_counter() - began, 1),
        "lines_per_second": round(len(lines) / wrote), "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        **count_store(path),
    }
    path.with_suffix(".json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    return note


def the_store(cases: int, visits: str, rebuild: bool) -> tuple[Path, dict[str, Any], bool]:
    STORE_DIR.mkdir(parents=True, exist_ok=True)
    path = STORE_DIR / f"events-{cases}-visits-{visits}.sqlite"
    note_path = path.with_suffix(".json")
    if path.exists() and note_path.exists() and not rebuild:
        return path, json.loads(note_path.read_text(encoding="utf-8")), True
    print(f"building the event store {path} (once; later runs reuse it)…", flush=True)
    return path, build_store(path, cases, visits), False


# --- (a) raw read ------------------------------------------------------------------------

def read_log(app: HousingChain, decode: bool) -> tuple[int, float, float]:
    """(notifications, wall seconds, CPU seconds of this process)."""
    cpu = time.process_time()
    began = time.perf_counter()
    position, n = 0, 0
    to_event = app.mapper.to_domain_event
    while True:
        page = app.recorder.select_notifications(start=position, limit=PAGE,
                                                 inclusive_of_start=False)
        if not page:
            break
        if decode:
            for notification in page:
                to_event(notification)
        n += len(page)
        position = page[-1].id
    return n, time.perf_counter() - began, time.process_time() - cpu


# --- (b) catch-up ------------------------------------------------------------------------

class PhaseTimer:
    """Wraps page-level calls (four a page, so the overhead is nil) and sums their time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.save_by_page: list[float] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - began
                self.seconds[name] = self.seconds.get(name, 0.0) + took
                self.calls[name] = self.calls.get(name, 0) + 1
                if name == "save rows + tracking":
                    self.save_by_page.append(took)
        return timed


def catch_up(store: Path, views: Path, page_size: int | None = None) -> dict[str, Any]:
    app = HousingChain(env=sqlite_env(store))
    view = open_view(sqlite_env(views))
    runner = ProjectionRunner(app, view, page_size=page_size or runner_module.PAGE)
    timer = PhaseTimer()
    # the commit at the end of save_page (WAL write, fsync, checkpoints), timed on its own
    commit = SQLiteConnection.commit
    SQLiteConnection.commit = timer.wrap("commit (part of save)", commit)  # type: ignore[method-assign]
    runner.read = timer.wrap("read (select + decode)", runner.read)  # type: ignore[method-assign]
    view.load_page = timer.wrap("load rows", view.load_page)  # type: ignore[method-assign]
    view.save_page = timer.wrap("save rows + tracking", view.save_page)  # type: ignore[method-assign]
    view.max_tracking_id = timer.wrap("read position", view.max_tracking_id)  # type: ignore[method-assign]
    runner.run_page = timer.wrap("page", runner.run_page)  # type: ignore[method-assign]
    meter = CpuMeter()
    cpu_began = time.process_time()
    began = time.perf_counter()
    try:
        covered = runner.catch_up()
    finally:
        SQLiteConnection.commit = commit  # type: ignore[method-assign]
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    cpu = meter.stop()
    head = runner.head()
    if runner.position != head:
        raise RuntimeError(f"catch-up stopped at {runner.position} of {head}")
    pages = timer.calls.get("page", 0)
    page_total = timer.seconds.pop("page", 0.0)
    timer.calls.pop("page", None)
    # the position is read once inside run_page and once more by catch_up's loop test
    position_in_pages = timer.seconds.get("read position", 0.0) / 2
    in_memory = page_total - position_in_pages - sum(
        v for k, v in timer.seconds.items() if k not in ("read position", "commit (part of save)"))
    phases = {**timer.seconds, "project (in memory)": in_memory,
              "outside pages (loop, head)": seconds - page_total - position_in_pages}
    tenth = max(1, len(timer.save_by_page) // 10)
    return {
        "page_size": runner.page_size,
        "notifications": covered,
        "pages": pages,
        "seconds": round(seconds, 2),
        "notifications_per_second": round(covered / seconds),
        "cpu_seconds": round(cpu_seconds, 2),
        "notifications_per_cpu_second": round(covered / cpu_seconds),
        "cpu": cpu,
        "phases_seconds": {k: round(v, 2) for k, v in phases.items()},
        "phases_share": {k: round(v / seconds, 3) for k, v in phases.items()},
        "save_ms_per_page_first_tenth": round(statistics.fmean(timer.save_by_page[:tenth]) * 1e3, 1),
        "save_ms_per_page_last_tenth": round(statistics.fmean(timer.save_by_page[-tenth:]) * 1e3, 1),
        "views_file_mb": round(sum(p.stat().st_size for p in views.parent.glob(views.name + "*"))
                               / 1e6, 1),
    }


def split_page_work(store: Path, views: Path, notifications: int) -> dict[str, Any]:
    """Read (select + decode) vs load vs project, on the log's last pages against the full
    view: `run_page`'s steps re-done one by one with the runner's own methods and page size,
    without saving (the view is already at the head)."""
    app = HousingChain(env=sqlite_env(store))
    view = open_view(sqlite_env(views))
    runner = ProjectionRunner(app, view)
    size = runner.page_size
    head = runner.head()
    t: dict[str, float] = dict.fromkeys(
        ("read (select + decode)", "load rows", "project (fold into rows)",
         "row tuples (save's Python part)"), 0.0)
    n = domain = pages = 0
    position = max(0, head - notifications)
    while position < head:
        stop = min(position + size, head)
        began = time.perf_counter()
        decoded = runner.read(position, stop)
        t["read (select + decode)"] += time.perf_counter() - began
        case_ids = {uuid for topic, uuid, _ in decoded if topic.startswith(projector.CASE_TOPIC)}
        apartment_ids = {uuid for topic, uuid, _ in decoded
                         if topic.startswith(projector.APARTMENT_TOPIC)}
        began = time.perf_counter()
        page = view.load_page(sorted(case_ids), sorted(apartment_ids))
        t["load rows"] += time.perf_counter() - began
        began = time.perf_counter()
        for topic, uuid, data in decoded:
            name = topic.rsplit(".", 1)[1]
            if topic.startswith(projector.CASE_TOPIC):
                runner_module.project_case(page, uuid, name, data)
            else:
                runner_module.project_apartment(page, uuid, name, data)
        t["project (fold into rows)"] += time.perf_counter() - began
        began = time.perf_counter()
        for table, rows in (("rm_cases", page.cases.values()),
                            ("rm_apartments", page.apartments.values()),
                            ("rm_vacancies", page.vacancies.values()),
                            ("rm_exits", page.exits.values())):
            _ = list(map(ROW_TUPLE[table], rows))
        t["row tuples (save's Python part)"] += time.perf_counter() - began
        n += stop - position
        domain += len(decoded)
        pages += 1
        position = stop
    return {"page_size": size, "pages": pages, "notifications": n, "domain_events": domain,
            "ms_per_page": {k: round(v / max(1, pages) * 1e3, 2) for k, v in t.items()},
            "us_per_domain_event": {k: round(v / max(1, domain) * 1e6, 2) for k, v in t.items()}}


# --- (c) reports -------------------------------------------------------------------------

def busiest_cases(store: Path, n: int) -> list[str]:
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT originator_id FROM stored_events WHERE topic LIKE 'domain.case:%' "
            "GROUP BY originator_id ORDER BY COUNT(*) DESC, originator_id LIMIT ?",
            (n,)).fetchall()
    db.close()
    app = HousingChain(env=sqlite_env(store))
    return [app.repository.get(UUID(str(r[0]))).case_id for r in rows]


def time_reports(store: Path, views: Path, runs: int) -> dict[str, Any]:
    view = open_view(sqlite_env(views))
    app = HousingChain(env=sqlite_env(store))
    policy = Policy()
    cases = busiest_cases(store, runs + 1)
    history_runs = iter(cases * 2)
    calls: dict[str, Callable[[], dict[str, Any]]] = {
        "waiting-times (appl.-to-decision, by year)":
            lambda: reports.waiting_times(view, "application-to-decision", "year", as_of=AS_OF),
        "waiting-times (appl.-to-housed, by target-group)":
            lambda: reports.waiting_times(view, "application-to-housed", "target-group",
                                          as_of=AS_OF),
        "throughput (by quarter)": lambda: reports.throughput(view, "quarter"),
        "queue (as of, by target-group)": lambda: reports.queue(view, AS_OF, "target-group"),
        "ivo (2026Q3)": lambda: reports.ivo(view, "2026Q3"),
        "caseload": lambda: reports.caseload(view, AS_OF, policy),
        "arrears": lambda: reports.arrears(view),
        "stock": lambda: reports.stock(view, AS_OF),
        "returns": lambda: reports.returns(view),
        "waiting-times (decision-to-move-in, by landlord)":
            lambda: reports.waiting_times(view, "decision-to-move-in", "landlord", as_of=AS_OF),
        "throughput (by district)": lambda: reports.throughput(view, "district"),
        "refusals (by quarter)": lambda: reports.refusals(view, "quarter"),
        "by-name (by month)": lambda: reports.by_name(view, policy, "month"),
        "kpis (2026)": lambda: reports.kpis(view, policy, 2026),
        "stock (by landlord)": lambda: reports.stock(view, AS_OF, "landlord"),
        "caseload (as of a past date)": lambda: reports.caseload(view, PAST, policy),
        "arrears (as of a past date)": lambda: reports.arrears(view, PAST),
        "stock (as of a past date, by landlord)": lambda: reports.stock(view, PAST, "landlord"),
        "placements (by month)": lambda: reports.placements(view, "month", as_of=AS_OF),
        "homelessness (as of, by sex)": lambda: reports.homelessness(view, AS_OF, "sex"),
        "homelessness (as of a past date, by age band)":
            lambda: reports.homelessness(view, PAST, "age-band"),
        "history (one case each run, from the event store)":
            lambda: reports.case_history(app, next(history_runs)),
    }
    # the collector schedule of the process that serves reports (the worker's under `up`,
    # `serve`'s own: config/gcwatch.py): recent garbage collected and the rest frozen every
    # HOUSING_CHAIN_GC_FREEZE_SECONDS, between the runs here
    every = Settings().gc_freeze_seconds
    collect_recent()
    frozen_at = time.monotonic()
    out = {}
    for name, call in calls.items():
        result = call()  # warm-up
        samples = []
        for _ in range(runs):
            if every and time.monotonic() - frozen_at >= every:
                collect_recent()
                frozen_at = time.monotonic()
            began = time.perf_counter()
            call()
            samples.append(time.perf_counter() - began)
        rows = result.get("rows")
        out[name] = {"runs": runs, "p50_ms": round(percentile(samples, 50) * 1e3, 1),
                     "p95_ms": round(percentile(samples, 95) * 1e3, 1),
                     "max_ms": round(max(samples) * 1e3, 1),
                     "rows": len(rows) if isinstance(rows, list) else None}
    return out


# --- main ----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--visits", choices=("first", "none", "all"), default="first",
                        help="support visits kept per case (default: the first home visit)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per report")
    parser.add_argument("--split", type=int, default=50_000,
                        help="notifications at the log's end re-done step by step for the split")
    parser.add_argument("--extra-page-size", type=int, default=0,
                        help="also time a catch-up with this page size (ProjectionRunner's "
                             "page_size; the CLI uses projections.runner.PAGE), for comparison")
    parser.add_argument("--rebuild-store", action="store_true",
                        help="build the cached event store again")
    args = parser.parse_args()
    total_began = time.perf_counter()
    store, note, cached = the_store(args.cases, args.visits, args.rebuild_store)
    print(f"event store: {store} ({'cached' if cached else 'built now'}; built in "
          f"{note['build_seconds']:.0f} s: {note['lines']:,} lines of {note['cases']:,} cases "
          f"at {note['lines_per_second']:,} lines/s)")
    print(f"  {note['notifications']:,} notifications = {note['domain_events']:,} domain events "
          f"({note['case_events']:,} case, {note['apartment_events']:,} apartment) + "
          f"{note['command_markers']:,} command markers + {note['other']:,} other", flush=True)

    app = HousingChain(env=sqlite_env(store))
    print("(a) raw read…", flush=True)
    raw_passes = [read_log(app, decode=False) for _ in range(2)]
    n, raw_s, raw_cpu = min(raw_passes, key=lambda p: p[1])
    decode_n, decode_s, decode_cpu = read_log(app, decode=True)
    app.close()
    raw = {"notifications": n, "seconds": round(raw_s, 2), "notifications_per_second": round(n / raw_s),
           "cpu_seconds": round(raw_cpu, 2), "notifications_per_cpu_second": round(n / raw_cpu),
           "passes_seconds": [round(p[1], 2) for p in raw_passes]}
    raw_decode = {"notifications": decode_n, "seconds": round(decode_s, 2),
                  "notifications_per_second": round(decode_n / decode_s),
                  "cpu_seconds": round(decode_cpu, 2),
                  "notifications_per_cpu_second": round(decode_n / decode_cpu)}

    tmp = Path(tempfile.mkdtemp(prefix="catchup-views-"))
    try:
        views = tmp / "views.sqlite"
        print("(b) catch-up into a fresh views file…", flush=True)
        projection = catch_up(store, views)
        projection["ratio_to_raw_read"] = round(
            projection["notifications_per_second"] / raw["notifications_per_second"], 3)
        projection["ratio_to_raw_read_cpu"] = round(raw["cpu_seconds"] / projection["cpu_seconds"], 3)
        projection["ratio_to_raw_read_and_decode"] = round(
            projection["notifications_per_second"] / raw_decode["notifications_per_second"], 3)
        projection["domain_events_per_second"] = round(note["domain_events"] / projection["seconds"])
        extra = None
        if args.extra_page_size:
            print(f"    and again with pages of {args.extra_page_size:,}…", flush=True)
            extra = catch_up(store, tmp / "views-extra.sqlite", args.extra_page_size)
            extra["ratio_to_raw_read"] = round(
                extra["notifications_per_second"] / raw["notifications_per_second"], 3)
            extra["ratio_to_raw_read_cpu"] = round(raw["cpu_seconds"] / extra["cpu_seconds"], 3)
        print("    splitting a page's work…", flush=True)
        split = split_page_work(store, views, args.split)
        print(f"(c) reports, {args.runs} runs each…", flush=True)
        report_times = time_reports(store, views, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    target_rate = TARGET_RATIO * raw["notifications_per_second"]
    ok_rate = projection["notifications_per_second"] >= target_rate
    ok_time = projection["seconds"] < TARGET_CATCH_UP_S
    ok_reports = all(r["p95_ms"] < TARGET_P95_MS for r in report_times.values())
    figures = {
        "store": {**note, "path": str(store), "cached": cached},
        "raw_read": raw,
        "raw_read_and_decode": raw_decode,
        "catch_up": projection,
        "catch_up_other_page_size": extra,
        "page_split": split,
        "reports": report_times,
        "targets": {
            "catch_up_notifications_per_second": {"target": round(target_rate),
                                                  "measured": projection["notifications_per_second"],
                                                  "met": ok_rate},
            "catch_up_seconds": {"target": TARGET_CATCH_UP_S, "measured": projection["seconds"],
                                 "met": ok_time},
            "report_p95_ms": {"target": TARGET_P95_MS,
                              "measured_worst": max(r["p95_ms"] for r in report_times.values()),
                              "met": ok_reports},
        },
        "machine": machine(),
        "run_seconds": round(time.perf_counter() - total_began, 1),
    }
    path = write_results("catchup", figures)
    print_table(figures)
    print(f"\nwrote {path}; whole run {figures['run_seconds']:.0f} s")


def print_table(f: dict[str, Any]) -> None:
    raw, dec, cu = f["raw_read"], f["raw_read_and_decode"], f["catch_up"]
    s = f["store"]
    print(f"\nstore: {s['cases']:,} cases, {s['lines']:,} lines, {s['notifications']:,} "
          f"notifications ({s['domain_events']:,} domain events + {s['command_markers']:,} "
          f"command markers); built in {s['build_seconds']:.0f} s"
          + (" (earlier; cached)" if s["cached"] else ""))
    print(f"\n{'measure':<62}{'measured':>14}{'target':>14}  met")
    print("-" * 96)

    def row(name: str, measured: str, target: str = "", met: bool | None = None) -> None:
        print(f"{name:<62}{measured:>14}{target:>14}  {'' if met is None else 'yes' if met else 'NO'}")

    row("(a) raw read, notifications/s", f"{raw['notifications_per_second']:,}")
    row("(a) raw read + to_domain_event, notifications/s", f"{dec['notifications_per_second']:,}")
    t = f["targets"]
    row("(b) catch-up, notifications/s", f"{cu['notifications_per_second']:,}",
        f"≥ {t['catch_up_notifications_per_second']['target']:,}",
        t["catch_up_notifications_per_second"]["met"])
    row("    = share of the raw read rate", f"{cu['ratio_to_raw_read']:.1%}", "≥ 25.0%",
        t["catch_up_notifications_per_second"]["met"])
    row("    domain events/s", f"{cu['domain_events_per_second']:,}")
    row("    on CPU time (machine load aside): share of raw read", f"{cu['ratio_to_raw_read_cpu']:.1%}",
        "(≥ 25.0%)")
    row("(b) catch-up, whole log, s", f"{cu['seconds']:.1f}", "< 120",
        t["catch_up_seconds"]["met"])
    for name, r in f["reports"].items():
        row(f"(c) {name} p50 / p95 ms", f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f}", "p95 < 200",
            r["p95_ms"] < TARGET_P95_MS)
    print(f"\ncatch-up: {cu['pages']:,} pages of {cu['page_size']:,}; where the time went (s): "
          + ", ".join(f"{k} {v}" for k, v in cu["phases_seconds"].items()))
    print(f"  save per page: {cu['save_ms_per_page_first_tenth']} ms in the first tenth, "
          f"{cu['save_ms_per_page_last_tenth']} ms in the last; views file {cu['views_file_mb']} MB; "
          f"CPU {cu['cpu']}")
    ex = f["catch_up_other_page_size"]
    if ex:
        print(f"  with pages of {ex['page_size']:,} instead: {ex['seconds']:.1f} s, "
              f"{ex['notifications_per_second']:,} notifications/s "
              f"({ex['ratio_to_raw_read']:.1%} of the raw read rate, {ex['ratio_to_raw_read_cpu']:.1%} "
              "on CPU time); where the time went (s): "
              + ", ".join(f"{k} {v}" for k, v in ex["phases_seconds"].items()))
    sp = f["page_split"]
    print(f"  last {sp['pages']} pages of {sp['page_size']:,} redone step by step, ms a page: "
          + ", ".join(f"{k} {v}" for k, v in sp["ms_per_page"].items()))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
