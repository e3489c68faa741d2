"""The web pages' server-side render time and page weight at scale (not a test).

Reuses bench/catchup.py's cached event store (`--cases` demo-like cases, built once into
bench/results/catchup-store/ and reused; 50,000 is the target size) and its catch-up into a
fresh views file. Then, in one process, with the whole FastAPI app (interfaces/web mounted)
called in-process (Starlette's TestClient: no sockets) as a signed-in admin:

* the worklist: a caseworker's own (`/`, signed in as the caseworker with the most open
  cases, role caseworker in that case's district) and everyone's (`/?everyone=1`, the
  supervisor's view of every open case), a case page (`/cases/<busiest case>`) and the dashboard
  (`/dashboard`): `--runs` timed requests each after one warm-up, p50/p95 ms, next to the
  baseline measured in the same run, the same use-case calls without rendering
  (`UseCases.worklist`, `status` + `history`, the dashboard's reports). Three ways: again
  at the same read-model position (answers remembered); after a step (a home visit on
  another of the caseworker's cases, not visited that day, recorded in the event store
  before each timed request, which then projects it, as a request after a step does: an
  answer that read what the visit changed, such as the caseload, is computed again); and
  from nothing (every remembered answer and the worklists and caseload kept between reads
  forgotten too, as on a new day or in a new process). Timed under the collector schedule of the
  process that serves the pages (config/gcwatch.py, as in bench/catchup.py);
* page weight per page: the HTML (with its inline SVG charts) plus the CSS and JS it links,
  target < 300 KB.

The case workflow's status comes from Temporal, which a bench does not run: `chain()` is
made to answer "unavailable" at once (the page then shows no due items), for both the page
and its baseline.

    .venv/bin/python bench/web.py [--cases 50000] [--runs 20]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catchup import TODAY, busiest_cases, catch_up, sqlite_env, the_store  # noqa: E402
from harness import percentile, write_results  # noqa: E402

TARGET_KB = 300


def caught_up(store: Path, views: Path) -> int:
    """The notifications a kept views file covers, if it is of this schema version and at
    the store's head; else 0."""
    import sqlite3

    from projections.view import SCHEMA_VERSION

    try:
        with sqlite3.connect(f"file:{views}?mode=ro", uri=True) as v, \
                sqlite3.connect(f"file:{store}?mode=ro", uri=True) as s:
            schema = v.execute("SELECT value FROM rm_meta WHERE key = 'schema'").fetchone()
            position = v.execute("SELECT MAX(notification_id) FROM tracking").fetchone()[0]
            head = s.execute("SELECT MAX(notification_id) FROM stored_events").fetchone()[0]
    except sqlite3.Error:
        return 0
    return head if schema and schema[0] == str(SCHEMA_VERSION) and position == head else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--visits", default="first", choices=("first", "all", "none"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--views", type=Path, default=None,
                        help="keep the caught-up read models in this file and reuse them on the "
                             "next run (of the same store and schema version)")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from application import use_cases as uc
    from application.errors import Unavailable
    from application.reporting import ReportOptions
    from application.store import HousingChain
    from config.settings import Settings
    from domain.access import Principal
    from interfaces.api.app import create_app
    from interfaces.web.app import CASELOAD_NORM, previous_quarters  # noqa: F401
    from interfaces.web.session import SESSION, new_session
    from projections.runner import ProjectionRunner
    from projections.view import open_view

    kept_store, note, cached = the_store(args.cases, args.visits, False)
    print(f"event store: {kept_store} ({'cached' if cached else 'built now'}), "
          f"{note.get('cases'):,} cases", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        kept_views = args.views or Path(tmp) / "kept-views.sqlite"
        if kept_views.exists() and caught_up(kept_store, kept_views):
            up = {"notifications": caught_up(kept_store, kept_views), "seconds": "(reused)"}
        else:
            kept_views.unlink(missing_ok=True)
            up = catch_up(kept_store, kept_views)
        # the steps recorded below go into copies: the kept store and views stay as they are
        store, views = Path(tmp) / "events.sqlite", Path(tmp) / "views.sqlite"
        shutil.copyfile(kept_store, store)
        shutil.copyfile(kept_views, views)
        print(f"caught up {up['notifications']:,} notifications in {up['seconds']} s", flush=True)
        data = Path(tmp) / "data"
        settings = Settings(data=data)
        app = create_app(settings)
        web = app.state.web
        cases = web.cases
        chain_app = HousingChain(env=sqlite_env(store))
        cases._store = chain_app
        cases._runner = ProjectionRunner(chain_app, open_view(sqlite_env(views)))

        async def no_temporal() -> Any:
            raise Unavailable("no Temporal in the bench")
        cases.chain = no_temporal  # type: ignore[method-assign]
        cases.today = lambda: TODAY  # type: ignore[method-assign]
        uc.gw.today_in = lambda policy: TODAY  # the dashboard's quarters, as of the store's end

        token = web.auth.local.mint("bench", ["admin"], ttl_seconds=3600)
        client = TestClient(app, base_url="http://testserver")
        client.cookies.set(SESSION, web.sealer.seal(new_session(token)))
        who = Principal(subject="bench", roles=frozenset({"admin"}), address="testclient")
        case = busiest_cases(store, 1)[0]
        worker, district, open_cases = cases._runner.view.rows(
            "SELECT caseworker, district, COUNT(*) FROM rm_cases WHERE stage <> 'closed' "
            "GROUP BY caseworker, district ORDER BY 3 DESC LIMIT 1")[0]
        open_cases = cases._runner.view.rows(
            "SELECT COUNT(*) FROM rm_cases WHERE stage <> 'closed' AND (caseworker = ? OR "
            "assigned_pilot = ?)", (worker, worker))[0][0]  # every district, and as pilot
        print(f"own worklist: {worker}, {open_cases} open cases", flush=True)
        own = Principal(subject=worker, roles=frozenset({"caseworker"}),
                        units=frozenset({district}), address="testclient")
        own_token = web.auth.local.mint(worker, ["caseworker"], [district], ttl_seconds=3600)
        own_client = TestClient(app, base_url="http://testserver")  # a jar of its own
        own_client.cookies.set(SESSION, web.sealer.seal(new_session(own_token)))
        # a case not visited today each time: every step changes the case row's last visit
        # and contact dates (what the caseload and the worklists read), not only adds a step
        to_visit = [r[0] for r in cases._runner.view.rows(
            "SELECT case_id FROM rm_cases WHERE stage = 'training' AND caseworker = ? "
            "AND (last_home_visit IS NULL OR last_home_visit < ?) ORDER BY case_id LIMIT 2000",
            (worker, TODAY.isoformat()))]
        steps_taken = [0]

        from domain.commands import import_line_adapter

        def a_step() -> None:
            """A home visit on another of the caseworker's cases, recorded in the event store
            (as the step's activity records it); the next request projects it."""
            steps_taken[0] += 1
            if steps_taken[0] > len(to_visit):
                raise RuntimeError(f"the bench has only {len(to_visit)} cases to visit")
            step = import_line_adapter.validate_python({
                "type": "record_visit", "case": to_visit[steps_taken[0] - 1], "kind": "home_visit",
                "on": TODAY.isoformat(), "actor": worker, "id": f"bench-{steps_taken[0]}"})
            [result] = chain_app.run([step], today=TODAY, policy=cases.policy)
            if not result.accepted:
                raise RuntimeError(f"the bench's step was refused: {result.reason}")

        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        from domain.calendar import quarter_bounds
        pool = ThreadPoolExecutor(max_workers=16)

        def dashboard_calls() -> None:
            """The dashboard's use-case calls, side by side as the page makes them."""
            today = TODAY
            since = quarter_bounds(previous_quarters(today, 8)[0])[0]
            calls = [(cases.report, who, "waiting-times",
                      ReportOptions(interval="decision-to-move-in", by="year")),
                     (cases.report, who, "throughput", ReportOptions(by="quarter",
                                                                    date_from=since)),
                     (cases.report, who, "caseload", ReportOptions()),
                     (cases.report, who, "stock", ReportOptions(by="landlord")),
                     (cases.unexecuted_series, who, previous_quarters(today, 8)),
                     (cases.course_completion_per_year, who,
                      list(range(today.year - 2, today.year + 1)))]
            for f in [pool.submit(*call) for call in calls]:
                f.result()

        def case_calls() -> None:
            asyncio.run(cases.status(who, case))
            cases.history(who, case)

        pages = {
            "own worklist": ("/", lambda: cases.worklist(own, None, 14, None, False)),
            "worklist": ("/?everyone=1", lambda: cases.worklist(who, None, 14, None, True)),
            "case": (f"/cases/{case}", case_calls),
            "dashboard": ("/dashboard", dashboard_calls),
        }
        # the collector schedule of the process that serves the pages (`serve`, the worker's
        # under `up`: config/gcwatch.py): recent garbage collected and the rest frozen every
        # HOUSING_CHAIN_GC_FREEZE_SECONDS, between the runs here (as bench/catchup.py does)
        from config.gcwatch import collect_recent
        every = settings.gc_freeze_seconds
        collect_recent()
        frozen_at = [time.monotonic()]
        static = {}
        results: dict[str, Any] = {}
        for name, (path, baseline) in pages.items():
            def timed(fn: Any, after: str | None = None) -> list[float]:
                fn()  # warm-up
                out = []
                for _ in range(args.runs):
                    if every and time.monotonic() - frozen_at[0] >= every:
                        collect_recent()
                        frozen_at[0] = time.monotonic()
                    if after:  # a step moves the read models and what it changed is read again
                        a_step()
                    if after == "nothing":  # nor the worklists and caseload kept between reads
                        cases._answers.clear()
                        cases._worklists.clear()
                        cases._caseload.clear()
                    t = time.perf_counter()
                    fn()
                    out.append((time.perf_counter() - t) * 1e3)
                return out

            def get(path: str = path, name: str = name) -> Any:
                r = (own_client if name == "own worklist" else client).get(
                    path, follow_redirects=False)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
                return r
            page_ms = timed(get)
            cold_ms = timed(get, after="step")
            base_ms = timed(baseline, after="step")
            fresh_ms = timed(get, after="nothing")
            html = get().content
            assets = sorted(set(re.findall(rb'(?:href|src)="(/static/[^"]+)"', html)))
            for a in assets:
                if a not in static:
                    static[a] = len(client.get(a.decode()).content)
            svg = sum(len(m) for m in re.findall(rb"<svg.*?</svg>", html, re.S))
            weight = len(html) + sum(static[a] for a in assets)
            results[name] = {
                "path": path, "runs": args.runs,
                "render_p50_ms": round(statistics.median(page_ms), 1),
                "render_p95_ms": round(percentile(page_ms, 95), 1),
                # after a step (the read models moved by one event, projected by the request)
                "cold_p50_ms": round(statistics.median(cold_ms), 1),
                "cold_p95_ms": round(percentile(cold_ms, 95), 1),
                "fresh_p50_ms": round(statistics.median(fresh_ms), 1),
                "fresh_p95_ms": round(percentile(fresh_ms, 95), 1),
                "baseline_p50_ms": round(statistics.median(base_ms), 1),
                "baseline_p95_ms": round(percentile(base_ms, 95), 1),
                "html_bytes": len(html), "inline_svg_bytes": svg,
                "css_js_bytes": sum(static[a] for a in assets), "page_bytes": weight,
                "assets": [a.decode() for a in assets],
            }
        chain_app.close()
    print(f"\nweb pages at {note.get('cases'):,} cases ({up['notifications']:,} notifications), "
          f"{args.runs} runs each; baseline = the same use-case calls without rendering")
    print("same: the page again at the same read-model position (answers remembered); "
          "step: after a step, which the request projects; nothing: after a step with the kept "
          "worklists forgotten too (a new day, a new process); baseline: the use-case calls "
          "after a step, without rendering. Target: p95 < 150 ms")
    print(f"{'page':<13} {'same p50':>9} {'same p95':>9} {'step p50':>9} {'step p95':>9} "
          f"{'none p50':>9} {'none p95':>9} {'base p50':>9} {'base p95':>9} "
          f"{'HTML KB':>8} {'SVG KB':>7} {'CSS+JS KB':>10} {'total KB':>9}  target <{TARGET_KB} KB")
    for name, r in results.items():
        total = r["page_bytes"] / 1024
        print(f"{name:<13} {r['render_p50_ms']:>9} {r['render_p95_ms']:>9} "
              f"{r['cold_p50_ms']:>9} {r['cold_p95_ms']:>9} "
              f"{r['fresh_p50_ms']:>9} {r['fresh_p95_ms']:>9} "
              f"{r['baseline_p50_ms']:>9} {r['baseline_p95_ms']:>9} {r['html_bytes'] / 1024:>8.1f} "
              f"{r['inline_svg_bytes'] / 1024:>7.1f} {r['css_js_bytes'] / 1024:>10.1f} "
              f"{total:>9.1f}  {'met' if total < TARGET_KB else 'NOT met'}")
    write_results("web", {"cases": note.get("cases"), "notifications": up["notifications"],
                          "own_worklist": {"caseworker": worker, "open_cases": open_cases},
                          "pages": results})


if __name__ == "__main__":
    main()
