"""Activities that apply steps to cases and the apartment stock.

Idempotent: the application service remembers every command id (and every batch id) in the
same atomic save as its events, so a retry after a lost reply returns the first answer.
A domain refusal is a non-retryable `StepRefused` application error; anything else (a locked
database, a concurrent save to the same case) is retried by Temporal.
"""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from application.store import HousingChain, snapshot_of
from domain.errors import DomainError
from domain.views import CaseSnapshot, LineResult, StepsOutcome
from workflows.messages import ApplyStepsInput, NoteDueInput, NoteOutcome, StockInput

log = structlog.get_logger("activities")


def refusal(exc: DomainError) -> ApplicationError:
    """A refused step is an answer, not a fault: non-retryable, and logged as benign."""
    return ApplicationError(
        str(exc), type="StepRefused", non_retryable=True, category=ApplicationErrorCategory.BENIGN
    )


class CaseActivities:
    def __init__(self, app: HousingChain) -> None:
        self.app = app

    @activity.defn(name="apply_steps")
    def apply_steps(self, req: ApplyStepsInput) -> StepsOutcome:
        bound = log.bind(case=req.case, workflow_id=req.workflow_id, batch=req.batch_id)
        if req.batch_id is None:
            step = req.steps[0]
            try:
                result, case = self.app.execute_loaded(step, today=req.today, policy=req.policy,
                                                       recorded_by=req.recorded_by,
                                                       request=req.request,
                                                       sent_as=req.sent_as)
            except DomainError as exc:
                bound.info("step refused", command=step.type, command_id=step.id,
                           actor=step.actor, reason=str(exc))
                raise refusal(exc) from None
            results = [result]
        else:
            results, case = self.app.run_loaded(
                req.steps, today=req.today, policy=req.policy, batch_id=req.batch_id,
                recorded_by=req.recorded_by,
            )
        for step, result in zip(req.steps, results, strict=True):
            bound.info(
                "step accepted" if result.accepted else "step refused",
                command=step.type, command_id=step.id, actor=step.actor,
                duplicate=result.duplicate, reason=result.reason,
            )
        if case is not None and case.case_id == req.case:  # the case as saved: no second read
            return StepsOutcome(results=results, snapshot=snapshot_of(case))
        try:
            snapshot = snapshot_of(self.app.get_case(req.case))
        except DomainError:
            snapshot = None
        return StepsOutcome(results=results, snapshot=snapshot)

    @activity.defn(name="note_due")
    def note_due(self, req: NoteDueInput) -> CaseSnapshot:
        return self.note_due_v2(req).snapshot

    @activity.defn(name="note_due_v2")
    def note_due_v2(self, req: NoteDueInput) -> NoteOutcome:
        """Record a due item; says whether it still applied (a reminder goes out only then)."""
        noted = self.app.note_due(req.case, req.kind, req.due, req.quarter, req.command_id,
                                  today=req.today)
        log.info("due item", case=req.case, kind=req.kind, due=str(req.due), noted=noted,
                 workflow_id=req.workflow_id, command_id=req.command_id, actor="system")
        return NoteOutcome(noted=noted, snapshot=snapshot_of(self.app.get_case(req.case)))

    @activity.defn(name="apply_stock_step")
    def apply_stock_step(self, req: StockInput) -> LineResult:
        from domain.policy import Policy

        try:
            result = self.app.execute(req.step, today=req.today, policy=Policy(),
                                      recorded_by=req.recorded_by, request=req.request,
                                      sent_as=req.sent_as)
        except DomainError as exc:
            log.info("stock step refused", command=req.step.type, command_id=req.step.id,
                     actor=req.step.actor, reason=str(exc))
            raise refusal(exc) from None
        log.info("stock step accepted", command=req.step.type, command_id=req.step.id,
                 actor=req.step.actor, apartment=req.step.apartment)
        return result

    def all(self) -> list:
        return [self.apply_steps, self.note_due, self.note_due_v2, self.apply_stock_step]
