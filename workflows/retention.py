"""IdentityRetentionWorkflow: erase the identities whose retention period (gallring) is over.

Started every day by the Temporal Schedule `identity-retention` (application/schedules.py) in
the municipality's time zone. The day counted from is the schedule's time (the action's
`TemporalScheduledStartTime`, so a run caught up after an outage erases as on the day it was
meant for), the workflow's start time when started by hand, or a fixed `as_of`. Everything
that reads stores is in the `erase_expired_identities` activity, which is idempotent: a
retried or repeated run finds the clients already erased and skips them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from domain.due import local_date
    from domain.policy import Policy
    from workflows.messages import RetentionInput, RetentionResult, RetentionRun

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
ERASE_TIMEOUT = timedelta(minutes=30)
ERASE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=50)


@workflow.defn
class IdentityRetentionWorkflow:
    @workflow.run
    async def run(self, req: RetentionRun) -> RetentionResult:
        today = req.as_of or self.local_day(req.time_zone)
        result: RetentionResult = await workflow.execute_activity(
            "erase_expired_identities", RetentionInput(today=today), result_type=RetentionResult,
            start_to_close_timeout=ERASE_TIMEOUT, retry_policy=ERASE_RETRY,
        )
        workflow.logger.info("identity retention as of %s: %d erased", today, len(result.erased))
        return result

    @staticmethod
    def local_day(time_zone: str) -> date:
        moment: datetime = (workflow.info().typed_search_attributes.get(SCHEDULED_START)
                            or workflow.now())
        return local_date(moment, Policy(time_zone=time_zone))
