"""Activities that apply eviction-prevention steps and raise the notice's deadlines.

Idempotent like `activities.case`: the notice service saves a processed-command marker with
the events, so a retry after a lost reply returns the first answer. A domain refusal is a
non-retryable, benign `StepRefused` (`activities.case.refusal`); anything else is retried.
"""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.case import refusal
from application.notice_store import (
    execute_notice_step,
    note_escalated,
    note_unreached,
    notice_snapshot,
)
from application.store import HousingChain, snapshot_of
from domain.errors import DomainError
from domain.notice_views import NoticeSnapshot, NoticeStepOutcome
from workflows.eviction_messages import ApplyNoticeStepInput, NoteNoticeInput

log = structlog.get_logger("activities")


class NoticeActivities:
    def __init__(self, app: HousingChain) -> None:
        self.app = app

    @activity.defn(name="apply_notice_step")
    def apply_notice_step(self, req: ApplyNoticeStepInput) -> NoticeStepOutcome:
        step = req.step
        bound = log.bind(notice=req.notice, workflow_id=req.workflow_id, command=step.type,
                         command_id=step.id, actor=step.actor)
        try:
            result = execute_notice_step(
                self.app, step, today=req.today, policy=req.policy, now=req.now,
                sent={"request": req.request, "sent_by": req.sent_by, "sent_as": req.sent_as}
                if req.request else None,
            )
        except DomainError as exc:
            bound.info("step refused", reason=str(exc))
            raise refusal(exc) from None
        bound.info("step accepted", duplicate=result.duplicate, events=result.events)
        try:
            snapshot = notice_snapshot(self.app, req.notice)
        except DomainError:
            snapshot = None
        case_snapshot = None
        if step.type == "open_case":
            case_snapshot = snapshot_of(self.app.get_case(step.case))
        return NoticeStepOutcome(result=result, snapshot=snapshot, case_snapshot=case_snapshot)

    @activity.defn(name="note_notice_due")
    def note_notice_due(self, req: NoteNoticeInput) -> NoticeSnapshot:
        if req.kind == "unreached":
            assert req.outreach_due is not None
            noted = note_unreached(self.app, req.notice, req.deadline, req.outreach_due,
                                   at=req.at, on=req.on, command_id=req.command_id)
        else:
            noted = note_escalated(self.app, req.notice, req.deadline, on=req.on,
                                   command_id=req.command_id)
        log.info("notice deadline", notice=req.notice, kind=req.kind,
                 deadline=req.deadline.isoformat(), noted=noted, workflow_id=req.workflow_id,
                 command_id=req.command_id, actor="system")
        return notice_snapshot(self.app, req.notice)

    def all(self) -> list:
        return [self.apply_notice_step, self.note_notice_due]
