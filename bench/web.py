"""The web pages' server-side render time and page weight at scale (not a test).

Reuses bench/catchup.py's cached event store (`--cases` demo-like cases, built once into
bench/results/catchup-store/ and reused; 50,000 is the target size) and its catch-up into a
fresh views file. Then, in one process, with the whole FastAPI app (interfaces/web mounted)
called in-process (Starlette's TestClient: no sockets) as a signed-in admin:

* the worklist (`/?everyone=1`), a case page (`/cases/<busiest case>`) and the dashboard
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--visits", default="first", choices=("first", "all", "none"))
    parser.add_argument("--runs", type=int, default=20)
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
        views = Path(tmp) / "views.sqlite"
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

        import asyncio

        def dashboard_calls() -> None:
            today = TODAY
            from domain.calendar import quarter_bounds
            since = quarter_bounds(previous_quarters(today, 8)[0])[0]
            cases.report(who, "waiting-times", ReportOptions(interval="decision-to-move-in",
                                                             by="year"))
            cases.report(who, "throughput", ReportOptions(by="quarter", date_from=since))
            cases.report(who, "caseload", ReportOptions())
            for quarter in previous_quarters(today, 8):
                cases.report(who, "ivo", ReportOptions(quarter=quarter))

        def case_calls() -> None:
            asyncio.run(cases.status(who, case))
            cases.history(who, case)

        pages = {
            "worklist": ("/?everyone=1", lambda: cases.worklist(who, None, 14, None, True)),
            "case": (f"/cases/{case}", case_calls),
            "dashboard": ("/dashboard", dashboard_calls),
        }
        static = {}
        results: dict[str, Any] = {}
        for name, (path, baseline) in pages.items():
            def timed(fn: Any) -> list[float]:
                fn()  # warm-up
                out = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    fn()
                    out.append((time.perf_counter() - t) * 1e3)
                return out

            def get(path: str = path) -> Any:
                r = client.get(path, follow_redirects=False)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
                return r
            page_ms = timed(get)
            base_ms = timed(baseline)
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
                "baseline_p50_ms": round(statistics.median(base_ms), 1),
                "baseline_p95_ms": round(percentile(base_ms, 95), 1),
                "html_bytes": len(html), "inline_svg_bytes": svg,
                "css_js_bytes": sum(static[a] for a in assets), "page_bytes": weight,
                "assets": [a.decode() for a in assets],
            }
        chain_app.close()
    print(f"\nweb pages at {note.get('cases'):,} cases ({up['notifications']:,} notifications), "
          f"{args.runs} runs each; baseline = the same use-case calls without rendering")
    print(f"{'page':<10} {'p50 ms':>8} {'p95 ms':>8} {'base p50':>9} {'base p95':>9} "
          f"{'HTML KB':>8} {'SVG KB':>7} {'CSS+JS KB':>10} {'total KB':>9}  target <{TARGET_KB} KB")
    for name, r in results.items():
        total = r["page_bytes"] / 1024
        print(f"{name:<10} {r['render_p50_ms']:>8} {r['render_p95_ms']:>8} "
              f"{r['baseline_p50_ms']:>9} {r['baseline_p95_ms']:>9} {r['html_bytes'] / 1024:>8.1f} "
              f"{r['inline_svg_bytes'] / 1024:>7.1f} {r['css_js_bytes'] / 1024:>10.1f} "
              f"{total:>9.1f}  {'met' if total < TARGET_KB else 'NOT met'}")
    write_results("web", {"cases": note.get("cases"), "notifications": up["notifications"],
                          "pages": results})


if __name__ == "__main__":
    main()
