"""Talking to the running stack: send steps to case workflows, read their status.

A refusal, whether from a workflow's update validator, the domain, or because the case does
not exist or is closed, comes back as `Refused` with a message that names the case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.commands import CaseStep, StockStep
from domain.policy import Policy
from domain.views import LineResult
from housing_chain.settings import Settings
from workflows.case import CaseWorkflow
from workflows.messages import CaseStart, CaseStatus, StepBatch, StepRequest, StockRequest
from workflows.stock import StockWorkflow


class Refused(Exception):
    """The stack refused a step; nothing was recorded."""


class Unreachable(Exception):
    """No Temporal server answers at the configured address."""


def case_workflow_id(case: str) -> str:
    return f"case-{case}"


async def connect(settings: Settings, attempts: int = 1) -> Client:
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
    def __init__(self, client: Client, settings: Settings, policy: Policy | None = None) -> None:
        self.client = client
        self.settings = settings
        self.policy = policy or settings.policy()

    def _start(self, case: str) -> WithStartWorkflowOperation:
        return WithStartWorkflowOperation(
            CaseWorkflow.run,
            CaseStart(case=case, policy=self.policy),
            id=case_workflow_id(case),
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )

    async def send(self, step: CaseStep) -> LineResult:
        """One caseworker step; raises Refused."""
        start = self._start(step.case)
        try:
            if step.type == "apply":
                return await self.client.execute_update_with_start_workflow(
                    CaseWorkflow.step,
                    StepRequest(step=step),
                    start_workflow_operation=start,
                    id=step.id,
                )
            handle = self.client.get_workflow_handle(case_workflow_id(step.case))
            return await handle.execute_update(CaseWorkflow.step, StepRequest(step=step), id=step.id)
        except WorkflowUpdateFailedError as exc:
            raise Refused(_reason(exc)) from None
        except (RPCError, WorkflowAlreadyStartedError) as exc:
            await _settle(start)
            raise Refused(await self._explain(step.case, exc)) from None

    async def send_batch(self, case: str, steps: Sequence[CaseStep], batch_id: str) -> list[LineResult]:
        """Consecutive steps of one case in one update; each line accepted or refused alone."""
        batch = StepBatch(batch_id=batch_id, steps=list(steps))
        start = self._start(case)
        try:
            if steps[0].type == "apply":
                return await self.client.execute_update_with_start_workflow(
                    CaseWorkflow.steps, batch, start_workflow_operation=start, id=batch_id,
                )
            handle = self.client.get_workflow_handle(case_workflow_id(case))
            return await handle.execute_update(CaseWorkflow.steps, batch, id=batch_id)
        except WorkflowUpdateFailedError as exc:
            reason = _reason(exc)
        except (RPCError, WorkflowAlreadyStartedError) as exc:
            await _settle(start)
            reason = await self._explain(case, exc)
        return [LineResult(accepted=False, command_id=s.id or "", reason=reason) for s in steps]

    async def send_stock(self, step: StockStep) -> LineResult:
        return await self.client.execute_workflow(
            StockWorkflow.run,
            StockRequest(step=step, policy=self.policy),
            id=f"stock-{step.apartment}-{step.id}",
            task_queue=self.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def status(self, case: str) -> CaseStatus:
        handle = self.client.get_workflow_handle(case_workflow_id(case))
        try:
            return await handle.query(CaseWorkflow.status)
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
    except Exception:  # noqa: BLE001 - the caller reports the refusal
        pass


def today_in(policy: Policy) -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(policy.time_zone)).date()
