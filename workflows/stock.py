"""StockWorkflow: one apartment-stock command (register, return) through Temporal.

The apartments' own lifecycle moves with the case steps (offer, move-in, exit), so a stock
command is a short workflow: one activity, idempotent by command id, and its result.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.due import local_date
    from domain.views import LineResult
    from workflows.case import STEP_RETRY
    from workflows.messages import StockInput, StockRequest


@workflow.defn
class StockWorkflow:
    @workflow.run
    async def run(self, request: StockRequest) -> LineResult:
        step, policy = request.step, request.policy
        today = local_date(workflow.now(), policy)
        try:
            return await workflow.execute_local_activity(
                "apply_stock_step",
                StockInput(step=step, today=today, recorded_by=request.recorded_by,
                           request=request.request, sent_as=request.sent_as),
                result_type=LineResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=STEP_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == "StepRefused":
                return LineResult(accepted=False, command_id=step.id or "", reason=cause.message)
            raise
