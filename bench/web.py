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
  (`UseCases.worklist`, `status` + `history`, the dashboard's reports);
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

    store, note, cached = the_store(args.cases, args.visits, False)
    print(f"event store: {store} ({'cached' if cached else 'built now'}), "
          f"{note.get('cases'):,} cases", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        views = args.views or Path(tmp) / "views.sqlite"
        if views.exists() and caught_up(store, views):
            up = {"notifications": caught_up(store, views), "seconds": "(reused)"}
        else:
            views.unlink(missing_ok=True)
            up = catch_up(store, views)
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

        import asyncio
        from concurrent.futures import ThreadPoolExecutor
        from datetime import date

        from domain.calendar import quarter_bounds
        pool = ThreadPoolExecutor(max_workers=16)

        def dashboard_calls() -> None:
            """The dashboard's reports, side by side as the page asks for them."""
            today = TODAY
            since = quarter_bounds(previous_quarters(today, 8)[0])[0]
            calls = [("waiting-times", ReportOptions(interval="decision-to-move-in", by="year")),
                     ("throughput", ReportOptions(by="quarter", date_from=since)),
                     ("caseload", ReportOptions()), ("stock", ReportOptions(by="landlord")),
                     *(("ivo", ReportOptions(quarter=q)) for q in previous_quarters(today, 8)),
                     *(("caseload", ReportOptions(as_of=min(date(y, 12, 31), today),
                                                  date_from=date(y, 1, 1),
                                                  date_to=date(y, 12, 31)))
                       for y in range(today.year - 2, today.year + 1))]
            for f in [pool.submit(cases.report, who, name, o) for name, o in calls]:
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
        static = {}
        results: dict[str, Any] = {}
        for name, (path, baseline) in pages.items():
            def timed(fn: Any, cold: bool = False) -> list[float]:
                fn()  # warm-up
                out = []
                for _ in range(args.runs):
                    if cold:  # as after a step: nothing remembered (application/memo.py)
                        cases._answers.clear()
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
            cold_ms = timed(get, cold=True)
            base_ms = timed(baseline, cold=True)
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
                "cold_p50_ms": round(statistics.median(cold_ms), 1),
                "cold_p95_ms": round(percentile(cold_ms, 95), 1),
                "baseline_p50_ms": round(statistics.median(base_ms), 1),
                "baseline_p95_ms": round(percentile(base_ms, 95), 1),
                "html_bytes": len(html), "inline_svg_bytes": svg,
                "css_js_bytes": sum(static[a] for a in assets), "page_bytes": weight,
                "assets": [a.decode() for a in assets],
            }
        chain_app.close()
    print(f"\nweb pages at {note.get('cases'):,} cases ({up['notifications']:,} notifications), "
          f"{args.runs} runs each; baseline = the same use-case calls without rendering")
    print("p50/p95: the page again at the same read-model position (answers remembered); "
          "cold: nothing remembered, as after any step; baseline: the use-case calls, cold")
    print(f"{'page':<13} {'p50 ms':>8} {'p95 ms':>8} {'cold p50':>9} {'cold p95':>9} "
          f"{'base p50':>9} {'base p95':>9} "
          f"{'HTML KB':>8} {'SVG KB':>7} {'CSS+JS KB':>10} {'total KB':>9}  target <{TARGET_KB} KB")
    for name, r in results.items():
        total = r["page_bytes"] / 1024
        print(f"{name:<13} {r['render_p50_ms']:>8} {r['render_p95_ms']:>8} "
              f"{r['cold_p50_ms']:>9} {r['cold_p95_ms']:>9} "
              f"{r['baseline_p50_ms']:>9} {r['baseline_p95_ms']:>9} {r['html_bytes'] / 1024:>8.1f} "
              f"{r['inline_svg_bytes'] / 1024:>7.1f} {r['css_js_bytes'] / 1024:>10.1f} "
              f"{total:>9.1f}  {'met' if total < TARGET_KB else 'NOT met'}")
    write_results("web", {"cases": note.get("cases"), "notifications": up["notifications"],
                          "own_worklist": {"caseworker": worker, "open_cases": open_cases},
                          "pages": results})


if __name__ == "__main__":
    main()
