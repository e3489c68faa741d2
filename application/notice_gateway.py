"""Talking to eviction-prevention workflows: send notice steps, read a notice's status.

`NoticeClient` is a `ChainClient` (same connection, same retries of transient Temporal
errors); a refusal comes back as `Refused` with a message that names the notice.
"""

from __future__ import annotations

from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from application.gateway import READ_RETRY_SECONDS, ChainClient, Refused, _raise_if_outage, _reason
from domain.notice_commands import NoticeStep
from domain.notice_stages import closed_notice_refusal
from domain.views import LineResult
from workflows.eviction import EvictionPreventionWorkflow, notice_workflow_id
from workflows.eviction_messages import NoticeStart, NoticeStatus, NoticeStepRequest


class NoticeClient(ChainClient):
    def _start_notice(self, notice: str) -> WithStartWorkflowOperation:
        return WithStartWorkflowOperation(
            EvictionPreventionWorkflow.run,
            NoticeStart(notice=notice, policy=self.policy),
            id=notice_workflow_id(notice),
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )

    async def send_notice(self, step: NoticeStep, *, request: str | None = None,
                          sent_by: str | None = None, sent_as: str | None = None) -> LineResult:
        """One notice step (`register` starts the workflow); raises Refused. `request`,
        `sent_by`, `sent_as`: as `ChainClient.send`'s, kept in the step's marker."""
        start = (lambda: self._start_notice(step.notice)) if step.type == "register" else None
        # as a case step's: the same request sent again is answered by Temporal, a
        # corrected one under the key is asked anew
        update_id = f"{step.id}:{request}" if request and step.id else step.id or ""
        try:
            return await self.update(notice_workflow_id(step.notice), EvictionPreventionWorkflow.step,
                                     NoticeStepRequest(step=step, request=request,
                                                       sent_by=sent_by, sent_as=sent_as),
                                     update_id, start)
        except WorkflowUpdateFailedError as exc:
            raise Refused(_reason(exc)) from None
        except (RPCError, WorkflowAlreadyStartedError) as exc:
            _raise_if_outage(exc)  # no answer is not a refusal: the step may have been taken
            raise Refused(await self._explain_notice(step.notice, exc)) from None

    async def notice_status(self, notice: str) -> NoticeStatus:
        handle = self.client.get_workflow_handle(notice_workflow_id(notice))
        try:
            return await self._retrying(lambda: handle.query(EvictionPreventionWorkflow.status),
                                        min(self.retry_for, READ_RETRY_SECONDS))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"notice {notice} does not exist") from None
            _raise_if_outage(exc)
            raise

    async def _explain_notice(self, notice: str, exc: Exception) -> str:
        """Turn 'not found' and 'already completed' into what they mean for the notice."""
        try:
            status = await self.notice_status(notice)
        except Refused:
            return f"notice {notice} does not exist: register it first"
        except Exception:  # noqa: BLE001 - the original error is the better message then
            return f"notice {notice}: {exc}"
        if status.stage == "closed":
            return closed_notice_refusal(notice, status.outcome)
        if isinstance(exc, WorkflowAlreadyStartedError):
            return f"notice {notice} already exists ({status.stage_label})"
        return f"notice {notice}: {exc}"
