"""ScheduledReportWorkflow: the report for the period that has just ended, written as CSV.

Started by the Temporal Schedules `report-ivo`, `report-monthly` and `report-yearly`
(application/schedules.py) at 06:00 on the first day of a quarter, month or year in the
municipality's time zone. The period is the one before the schedule's time (the action's
`TemporalScheduledStartTime`, so a run caught up after an outage still reports the period it
was meant for; the workflow's start time when started by hand), or a fixed `period` given in
the input. The `write_report` activity does the work; writing again overwrites the same file.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from domain.due import local_date
    from domain.policy import Policy
    from workflows.messages import ScheduledReport, WriteReportInput

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
WRITE_TIMEOUT = timedelta(minutes=10)
WRITE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=50,
                          non_retryable_error_types=["BadPeriod"])


def previous_period(kind: str, today: date) -> str:
    """The period that ended before `today`: `2026Q3` (ivo), `2026-10` (monthly), `2026`."""
    if kind == "ivo":
        index = (today.year * 4 + (today.month - 1) // 3) - 1
        return f"{index // 4}Q{index % 4 + 1}"
    if kind == "monthly":
        index = today.year * 12 + today.month - 1 - 1
        return f"{index // 12}-{index % 12 + 1:02d}"
    if kind == "yearly":
        return str(today.year - 1)
    raise ValueError(f"no scheduled report {kind!r}")


@workflow.defn
class ScheduledReportWorkflow:
    @workflow.run
    async def run(self, req: ScheduledReport) -> list[str]:
        period = req.period or previous_period(req.kind, self.local_day(req.time_zone))
        workflow.logger.info("scheduled report %s for %s", req.kind, period)
        return await workflow.execute_activity(
            "write_report", WriteReportInput(kind=req.kind, period=period),
            result_type=list[str], start_to_close_timeout=WRITE_TIMEOUT, retry_policy=WRITE_RETRY,
        )

    @staticmethod
    def local_day(time_zone: str) -> date:
        moment: datetime = (workflow.info().typed_search_attributes.get(SCHEDULED_START)
                            or workflow.now())
        return local_date(moment, Policy(time_zone=time_zone))
