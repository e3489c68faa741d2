"""The report schedules, created (or brought up to date) whenever a worker starts.

* `report-ivo`: 06:00 on 1 January, April, July and October — the IVO report of the quarter
  that has just ended
* `report-monthly`: 06:00 on the 1st of every month — throughput and waiting times of the
  month that has just ended
* `report-yearly`: 06:00 on 1 January — the same for the year that has just ended

in the municipality's time zone (the policy's `time_zone`). Each starts ScheduledReportWorkflow
on the worker's task queue. Missed runs (the stack was down) are caught up for up to a year,
one after the other, each reporting the period it was scheduled for.

* `identity-retention`: 03:00 every day, same time zone — IdentityRetentionWorkflow erases the
  identities whose retention period (the policy's `identity_retention_years`) is over. A run
  missed while the stack was down is caught up once (a day's window, overlaps skipped): the
  next run finds whatever the missed ones would have.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from config.settings import Settings
from workflows.messages import RetentionRun, ScheduledReport
from workflows.reports import ScheduledReportWorkflow
from workflows.retention import IdentityRetentionWorkflow

log = structlog.get_logger("schedules")

MONTHS = {
    "ivo": ScheduleRange(1, 10, step=3),  # January, April, July, October
    "monthly": ScheduleRange(1, 12),
    "yearly": ScheduleRange(1),
}
SCHEDULE_IDS = {kind: f"report-{kind}" for kind in MONTHS}
RETENTION_SCHEDULE_ID = "identity-retention"


def report_schedule(kind: str, settings: Settings) -> Schedule:
    time_zone = settings.policy().time_zone
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ScheduledReportWorkflow.run,
            ScheduledReport(kind=kind, time_zone=time_zone),
            id=SCHEDULE_IDS[kind],
            task_queue=settings.task_queue,
            execution_timeout=timedelta(hours=6),
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(
                second=(ScheduleRange(0),), minute=(ScheduleRange(0),), hour=(ScheduleRange(6),),
                day_of_month=(ScheduleRange(1),), month=(MONTHS[kind],),
                comment=f"{kind} report for the period just ended",
            )],
            time_zone_name=time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ALL,
                              catchup_window=timedelta(days=365)),
        state=ScheduleState(note="created by the housing-chain worker"),
    )


def retention_schedule(settings: Settings) -> Schedule:
    time_zone = settings.policy().time_zone
    return Schedule(
        action=ScheduleActionStartWorkflow(
            IdentityRetentionWorkflow.run,
            RetentionRun(time_zone=time_zone),
            id=RETENTION_SCHEDULE_ID,
            task_queue=settings.task_queue,
            execution_timeout=timedelta(hours=6),
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(
                second=(ScheduleRange(0),), minute=(ScheduleRange(0),), hour=(ScheduleRange(3),),
                comment="erase identities whose retention period is over",
            )],
            time_zone_name=time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP,
                              catchup_window=timedelta(days=1)),
        state=ScheduleState(note="created by the housing-chain worker"),
    )


def all_schedules(settings: Settings) -> dict[str, Schedule]:
    """Schedule id → the schedule as this version of the worker wants it."""
    schedules = {schedule_id: report_schedule(kind, settings)
                 for kind, schedule_id in SCHEDULE_IDS.items()}
    schedules[RETENTION_SCHEDULE_ID] = retention_schedule(settings)
    return schedules


async def ensure_schedules(client: Client, settings: Settings) -> list[str]:
    """Create the report and retention schedules, or update existing ones to the current spec
    and action (keeping whether an operator paused them). Safe to call at every worker start
    and from several workers at once."""
    schedules = all_schedules(settings)
    for schedule_id, schedule in schedules.items():
        try:
            await client.create_schedule(schedule_id, schedule)
            log.info("schedule created", schedule=schedule_id)
        except ScheduleAlreadyRunningError:

            def updated(current: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
                schedule.state = current.description.schedule.state
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(schedule_id).update(updated)
            log.info("schedule updated", schedule=schedule_id)
    return list(schedules)
