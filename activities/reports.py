"""The `write_report` activity: bring the read models up to the event store's head (as the
`report` command does), compute a report for one period and write it as CSV to the reports
folder (`Settings.reports_path()`, default `<data>/reports`).

Files, each exactly what the matching `housing-chain report … --csv` prints:

* ivo, period `2026Q3`: `ivo-2026Q3.csv` = `report ivo --quarter 2026Q3 --csv`
* monthly, period `2026-10`: `throughput-2026-10.csv` = `report throughput --by month
  --from 2026-10-01 --to 2026-10-31 --csv`, and `waiting-times-2026-10.csv`: the four intervals
  one after the other, each `report waiting-times --interval I --by month --from … --to …
  --as-of 2026-10-31 --csv` with a first column `interval`
* yearly, period `2026`: `throughput-2026.csv` and `waiting-times-2026.csv`, the same by year

A file is written to a temporary name in the same folder and renamed over the old one, so a
rerun replaces it atomically and a reader never sees half a report.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from application.reporting import ReportOptions, csv_text, run_report
from config.settings import Settings
from domain.policy import Policy
from workflows.messages import WriteReportInput

log = structlog.get_logger("reports")

PATTERNS = {"ivo": r"\d{4}Q[1-4]", "monthly": r"\d{4}-(0[1-9]|1[0-2])", "yearly": r"\d{4}"}


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def report_files(view: Any, kind: str, period: str, policy: Policy | None = None) -> dict[str, str]:
    """File name → CSV text for one scheduled report (see the module docstring), through the
    same report table as `housing-chain report` and the API."""
    from projections.reports import INTERVALS, period_bounds

    policy = policy or Policy()

    def rows(name: str, **options: Any) -> list[dict[str, Any]]:
        last = options.get("date_to") or options.get("as_of") or date.today()
        return run_report(view, name, ReportOptions(**options), policy, last)["rows"]

    if kind == "ivo":
        return {f"ivo-{period}.csv": csv_text(rows("ivo", quarter=period))}
    by = "month" if kind == "monthly" else "year"
    first, last = period_bounds(period, by)
    waits = []
    for interval in INTERVALS:
        waits += [{"interval": interval, **row} for row in rows(
            "waiting-times", interval=interval, by=by, date_from=first, date_to=last, as_of=last)]
    return {
        f"throughput-{period}.csv": csv_text(rows("throughput", by=by, date_from=first, date_to=last)),
        f"waiting-times-{period}.csv": csv_text(waits),
    }


class ReportActivities:
    def __init__(self, settings: Settings, catch_up_timeout: float = 120.0) -> None:
        self.settings = settings
        self.catch_up_timeout = catch_up_timeout
        self._runner = None
        self._lock = threading.Lock()

    def runner(self):
        with self._lock:
            if self._runner is None:
                from application.readmodels import projection_for

                self._runner = projection_for(self.settings)
            return self._runner

    @activity.defn(name="write_report")
    def write_report(self, req: WriteReportInput) -> list[str]:
        """Writes the report's files; returns their names. `Behind` (the read models did not
        catch up in time) and I/O errors are retried by Temporal."""
        if not re.fullmatch(PATTERNS[req.kind], req.period):
            raise ApplicationError(f"{req.kind} report: bad period {req.period!r}",
                                   type="BadPeriod", non_retryable=True)
        runner = self.runner()
        runner.wait_or_catch_up(runner.head(), timeout=self.catch_up_timeout)
        files = report_files(runner.view, req.kind, req.period, self.settings.policy())
        folder = self.settings.reports_path()
        for name, text in files.items():
            write_atomically(folder / name, text)
        log.info("report written", kind=req.kind, period=req.period, files=sorted(files),
                 folder=str(folder), position=runner.position)
        return sorted(files)
