"""Talking to the running stack: send steps to case workflows, read their status.

A refusal, whether from a workflow's update validator, the domain, or because the case does
not exist or is closed, comes back as `Refused` with a message that names the case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from application.errors import Refused, Unavailable
from config.logs import route_temporal_logs
from config.settings import Settings
from domain.commands import CaseStep, StockStep
from domain.policy import Policy
from domain.views import LineResult
from workflows.case import CaseWorkflow
from workflows.messages import CaseStart, CaseStatus, StepBatch, StepRequest, StockRequest
from workflows.stock import StockWorkflow

T = TypeVar("T")

# A restarting server or a busy one: the same update id sent again is safe (Temporal and the
# service both deduplicate it), so these are retried until `retry_for` runs out.
TRANSIENT = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
             RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.ABORTED, RPCStatusCode.CANCELLED}


class Unreachable(Unavailable):
    """No Temporal server answers at the configured address."""


def case_workflow_id(case: str) -> str:
    return f"case-{case}"


async def connect(settings: Settings, attempts: int = 1) -> Client:
    route_temporal_logs()
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
            )
        except RuntimeError as exc:
            last = exc
            if attempt + 1 < attempts:
                await asyncio.sleep(0.5)
    raise Unreachable(
        f"no Temporal server at {settings.temporal_address} ({last}); start the stack with "
        "`housing-chain up` or set TEMPORAL_ADDRESS"
    )


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or getattr(exc, "cause", None)
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        cause = getattr(cause, "cause", None) or cause.__cause__
    return str(exc)


class ChainClient:
    def __init__(self, client: Client, settings: Settings, policy: Policy | None = None,
                 retry_for: float = 600.0) -> None:
        self.client = client
        self.settings = settings
        self.policy = policy or settings.policy()
        self.retry_for = retry_for

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.retry_for
        delay = 0.2
        while True:
            try:
                return await call()
            except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
                if isinstance(exc.__cause__, asyncio.CancelledError):
                    # temporalio wraps our own cancellation (Ctrl-C, a caller's timeout)
                    # in the same error as a server-side timeout: a cancel must stop here
                    raise asyncio.CancelledError() from exc
                if time.monotonic() > deadline:
                    raise
            except RPCError as exc:
                if exc.status not in TRANSIENT or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _start(self, case: str) -> WithStartWorkflowOperation:
        return WithStartWorkflowOperation(
            CaseWorkflow.run,
            CaseStart(case=case, policy=self.policy),
            id=case_workflow_id(case),
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )

    async def update(
        self, workflow_id: str, update: Any, request: Any, update_id: str,
        start: Callable[[], WithStartWorkflowOperation] | None = None,
    ) -> Any:
        """Send an update, starting the workflow first when `start` is given, and retry
        transient errors with the same update id. Temporal's own errors propagate."""
        unsettled: list[WithStartWorkflowOperation] = []

        async def call() -> Any:
            if start is not None:
                while unsettled:  # a retry: collect the failed attempt's operation
                    await _settle(unsettled.pop())
                unsettled.append(start())  # an operation is good for one request
                return await self.client.execute_update_with_start_workflow(
                    update, request, start_workflow_operation=unsettled[-1], id=update_id,
                )
            handle = self.client.get_workflow_handle(workflow_id)
            return await handle.execute_update(update, request, id=update_id)

        try:
            return await self._retrying(call)
        except (RPCError, WorkflowAlreadyStartedError, asyncio.CancelledError):
            while unsettled:
                await _settle(unsettled.pop())
            raise

    async def send(self, step: CaseStep) -> LineResult:
        """One caseworker step; raises Refused."""
        start = (lambda: self._start(step.case)) if step.type == "apply" else None
        try:
            return await self.update(case_workflow_id(step.case), CaseWorkflow.step,
                                     StepRequest(step=step), step.id or "", start)
        except WorkflowUpdateFailedError as exc:
            raise Refused(_reason(exc)) from None
        except (RPCError, WorkflowAlreadyStartedError) as exc:
            raise Refused(await self._explain(step.case, exc)) from None

    async def send_batch(self, case: str, steps: Sequence[CaseStep], batch_id: str) -> list[LineResult]:
        """Consecutive steps of one case in one update; each line accepted or refused alone."""
        start = (lambda: self._start(case)) if steps[0].type == "apply" else None
        try:
            return await self.update(case_workflow_id(case), CaseWorkflow.steps,
                                     StepBatch(batch_id=batch_id, steps=list(steps)), batch_id,
                                     start)
        except WorkflowUpdateFailedError as exc:
            reason = _reason(exc)
        except (RPCError, WorkflowAlreadyStartedError) as exc:
            reason = await self._explain(case, exc)
        return [LineResult(accepted=False, command_id=s.id or "", reason=reason) for s in steps]

    async def send_stock(self, step: StockStep) -> LineResult:
        """A step on the apartment stock; a refusal (the id exists, the apartment is not
        vacant) raises Refused with the domain's message, as a case step does."""
        try:
            return await self._send_stock(step)
        except WorkflowFailureError as exc:
            raise Refused(_reason(exc)) from None

    async def _send_stock(self, step: StockStep) -> LineResult:
        return await self._retrying(lambda: self.client.execute_workflow(
            StockWorkflow.run,
            StockRequest(step=step, policy=self.policy),
            id=f"stock-{step.apartment}-{step.id}",
            task_queue=self.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        ))

    async def status(self, case: str) -> CaseStatus:
        handle = self.client.get_workflow_handle(case_workflow_id(case))
        try:
            return await self._retrying(lambda: handle.query(CaseWorkflow.status))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"case {case} does not exist") from None
            raise

    async def _explain(self, case: str, exc: Exception) -> str:
        """Turn 'not found' and 'already completed' into what they mean for the case."""
        if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
            return f"case {case} does not exist: apply first"
        try:
            status = await self.status(case)
        except Exception:  # noqa: BLE001 - the original error is the better message then
            return f"case {case}: {exc}"
        if status.stage == "closed":
            return f"case {case} is closed ({status.outcome}): no further steps are allowed"
        if isinstance(exc, WorkflowAlreadyStartedError):
            return f"case {case} already exists ({status.stage_label})"
        return f"case {case}: {exc}"


async def _settle(start: WithStartWorkflowOperation) -> None:
    """Collect the start operation's own failure (else asyncio reports it as never retrieved)."""
    try:
        await asyncio.wait_for(start.workflow_handle(), timeout=0.1)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # we are being cancelled ourselves
            raise
    except Exception:  # noqa: BLE001 - the caller reports the refusal
        pass


def today_in(policy: Policy) -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(policy.time_zone)).date()
