"""CaseWorkflow: one client's case, from application to exit.

Steps arrive as Updates. The validator refuses, before anything enters the workflow history,
a step the case's stage does not allow or whose date is in the future or before the last
step; an accepted step runs the `apply_steps` activity, whose answer (a snapshot: the stage,
the steps allowed next and the dates timers need) is all the workflow keeps. Timers raise
the unexecuted-decision deadline each quarter, overdue visits and follow-ups, and takeover
eligibility, as system notes on the case. Long journeys continue as new.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.commands import CaseStep
    from domain.due import ESCALATING, answered, due_items, local_date, responsible
    from domain.errors import DomainError
    from domain.stages import Stage, check_dates, check_step, pilot_refusal
    from domain.steps import missing_fields
    from domain.views import CaseSnapshot, LineResult, StepsOutcome
    from workflows.messages import (
        ApplyStepsInput,
        CarriedState,
        CaseOutcome,
        CaseStart,
        CaseStatus,
        DueItem,
        NoteDueInput,
        NoteOutcome,
        ReminderDelivery,
        StepBatch,
        StepRequest,
    )

STEP_TIMEOUT = timedelta(seconds=30)
STEP_RETRY = RetryPolicy(maximum_attempts=10, non_retryable_error_types=["StepRefused"])
NEVER_OPENED_AFTER = timedelta(minutes=10)
APPLIED_KEPT = 500


def reminder_text(case: str, item: DueItem) -> str:
    what = {
        "unexecuted_decision": f"the granted decision is unexecuted past three months "
                               f"(quarter {item.quarter}, limit {item.due})",
        "home_visit": f"a support visit was due on {item.due}",
        "follow_up": f"a follow-up meeting was due on {item.due}",
        "takeover_eligible": f"the minimum training period ended on {item.due}: takeover review",
        "pilot_missing": f"moved into the training apartment on {item.due} without a housing "
                         "pilot: assign one",
        "plan_missing": f"no individual plan yet: it was due on {item.due}",
        "support_interrupted": f"the support is interrupted and not resumed within three "
                               f"months: report it to the inspectorate (quarter {item.quarter}, "
                               f"limit {item.due})",
        "lease_renewal": f"the time-limited lease ends soon: renew it (reminder on {item.due})",
        "inspection": f"a technical inspection of the apartment was due on {item.due}",
        "coordinator_meeting": f"a coordinator meeting was due on {item.due}",
    }
    if item.kind.startswith("escalation:"):
        base = item.kind.split(":", 1)[1]
        return f"Escalated: case {case}: {what.get(base, base)}, unanswered since {item.due}."
    if item.kind.startswith("sub_goal:"):
        return f"Case {case}: sub-goal {item.kind.split(':', 1)[1]} was to be followed up on {item.due}."
    if item.kind.startswith("stalled:"):
        stage = item.kind.split(":", 1)[1]
        return f"Case {case} has been in stage {stage} too long (since before {item.due})."
    return f"Case {case}: {what.get(item.kind, item.kind)}."


def refused(message: str) -> ApplicationError:
    return ApplicationError(message, type="StepRefused", non_retryable=True)


@workflow.defn
class CaseWorkflow:
    @workflow.init
    def __init__(self, start: CaseStart) -> None:
        carried = start.carried or CarriedState()
        self.case = start.case
        self.policy = start.policy
        self.history_limit = start.history_limit
        self.snapshot: CaseSnapshot | None = carried.snapshot
        self.applied: list[str] = list(carried.applied)
        self.applied_set = set(self.applied)
        self.reminded: dict[str, date] = dict(carried.reminded)
        self.unanswered: dict[str, date] = dict(carried.unanswered)
        self.last_step_at: datetime | None = carried.last_step_at
        self.changed = False
        self.lock = asyncio.Lock()
        # Stall rules, escalation and reminder delivery came with issue #4; cases started
        # before run the old timers until they continue as new (see the README).
        self.reminders_v2 = False
        # The case file's due items (pilot, plan, ...) came with "case-file-v1".
        self.case_file = False
        # Interrupted support, leases, rent instalments, ... came with "case-file-v2".
        self.case_file_v2 = False
        # Visits and follow-ups by the programme's rules, inspections and coordinator meetings
        # came with "case-file-v3"; runs started before keep the global rules.
        self.case_file_v3 = False

    # --- time -----------------------------------------------------------------------------

    def today(self) -> date:
        return local_date(workflow.now(), self.policy)

    def due(self) -> list[DueItem]:
        return due_items(self.snapshot, self.policy, self.reminded, self.today(),
                         stalls_and_escalations=self.reminders_v2, unanswered=self.unanswered,
                         case_file=self.case_file, case_file_v2=self.case_file_v2,
                         case_file_v3=self.case_file_v3)

    def fire_time(self, item: DueItem) -> datetime:
        """When to raise an item: at its time, or, if already past, once the case is quiet."""
        if item.fires_at > workflow.now() or self.last_step_at is None:
            return item.fires_at
        return max(item.fires_at, self.last_step_at + timedelta(seconds=self.policy.catch_up_delay_seconds))

    @property
    def closed(self) -> bool:
        return self.snapshot is not None and self.snapshot.stage == "closed"

    @workflow.run
    async def run(self, start: CaseStart) -> CaseOutcome:
        self.reminders_v2 = workflow.patched("reminders-v2")
        self.case_file = workflow.patched("case-file-v1")
        self.case_file_v2 = workflow.patched("case-file-v2")
        self.case_file_v3 = workflow.patched("case-file-v3")
        if self.snapshot is None:
            try:
                await workflow.wait_condition(
                    lambda: self.snapshot is not None, timeout=NEVER_OPENED_AFTER
                )
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self.snapshot is None:
                    raise ApplicationError(
                        f"case {self.case} was never opened (no accepted apply)",
                        type="NeverOpened",
                        non_retryable=True,
                    ) from None
        while not self.closed:
            if self.should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    CaseStart(case=self.case, policy=self.policy, carried=self.carried(),
                              history_limit=self.history_limit)
                )
            self.forget_answered()
            items = self.due()
            wake = min((self.fire_time(i) for i in items), default=None)
            self.changed = False
            timeout = None if wake is None else max(wake - workflow.now(), timedelta(seconds=1))
            try:
                await workflow.wait_condition(
                    lambda: self.changed or self.closed or self.should_continue_as_new(),
                    timeout=timeout,
                )
            except TimeoutError:
                await self.raise_due()
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self.snapshot is not None
        return CaseOutcome(
            case=self.case, outcome=self.snapshot.outcome, closed_on=self.snapshot.closed_on
        )

    def forget_answered(self) -> None:
        for kind, due in list(self.unanswered.items()):
            if answered(self.snapshot, self.policy, kind, due, self.today(),
                        by_programme=self.case_file_v3):
                del self.unanswered[kind]

    def should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self.history_limit
        )

    def carried(self) -> CarriedState:
        return CarriedState(
            snapshot=self.snapshot,
            applied=self.applied[-APPLIED_KEPT:],
            reminded=self.reminded,
            unanswered=self.unanswered,
            last_step_at=self.last_step_at,
        )

    async def raise_due(self) -> None:
        if self.reminders_v2:
            await self.raise_and_deliver()
            return
        async with self.lock:
            now = workflow.now()
            for item in self.due():
                if self.fire_time(item) > now:
                    continue
                snapshot = await workflow.execute_local_activity(
                    "note_due",
                    NoteDueInput(
                        case=self.case,
                        kind=item.kind,
                        due=item.due,
                        quarter=item.quarter,
                        command_id=f"{workflow.info().workflow_id}:{item.kind}:{item.due}",
                        workflow_id=workflow.info().workflow_id,
                    ),
                    result_type=CaseSnapshot,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=STEP_RETRY,
                )
                self.reminded[item.kind] = item.due
                self.snapshot = snapshot

    async def raise_and_deliver(self) -> None:
        """Record each item that is due as a note on the case, then deliver a reminder for
        every note that still applied: to the worklist always, by e-mail when configured."""
        deliveries: list[ReminderDelivery] = []
        async with self.lock:
            now = workflow.now()
            for item in self.due():
                if self.fire_time(item) > now:
                    continue
                reminder_id = f"{workflow.info().workflow_id}:{item.kind}:{item.due}"
                outcome = await workflow.execute_local_activity(
                    "note_due_v2",
                    NoteDueInput(
                        case=self.case, kind=item.kind, due=item.due, quarter=item.quarter,
                        command_id=reminder_id, workflow_id=workflow.info().workflow_id,
                        today=self.today(),
                    ),
                    result_type=NoteOutcome,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=STEP_RETRY,
                )
                self.reminded[item.kind] = item.due
                self.snapshot = outcome.snapshot
                if outcome.noted and (item.kind in ESCALATING or item.kind.startswith("stalled:")):
                    self.unanswered.setdefault(item.kind, item.due)
                if outcome.noted:
                    deliveries.append(ReminderDelivery(
                        reminder_id=reminder_id, case=self.case, kind=item.kind, due=item.due,
                        to_actor=responsible(self.snapshot, item.kind),
                        escalation=item.kind.startswith("escalation:"),
                        text=reminder_text(self.case, item),
                    ))
        for delivery in deliveries:
            try:
                await workflow.execute_activity(
                    "deliver_reminder", delivery, result_type=str,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=20,
                                             maximum_interval=timedelta(minutes=10)),
                )
            except ActivityError as exc:  # the worklist still shows it; do not stop the case
                workflow.logger.warning("reminder not delivered by e-mail: %s", exc.cause)

    # --- steps ----------------------------------------------------------------------------

    @workflow.update
    async def step(self, request: StepRequest) -> LineResult:
        step = request.step
        if step.id in self.applied_set:
            return LineResult(accepted=True, command_id=step.id or "", duplicate=True,
                              stage=self.snapshot.stage if self.snapshot else None)
        outcome = await self.apply([step], batch_id=None, recorded_by=request.recorded_by,
                                   request=request.request, sent_as=request.sent_as)
        return outcome.results[0]

    @step.validator
    def validate_step(self, request: StepRequest) -> None:
        step = request.step
        if step.id in self.applied_set:
            return
        self.check(step)

    @workflow.update
    async def steps(self, batch: StepBatch) -> list[LineResult]:
        outcome = await self.apply(batch.steps, batch_id=batch.batch_id,
                                   recorded_by=batch.recorded_by)
        return outcome.results

    @steps.validator
    def validate_steps(self, batch: StepBatch) -> None:
        for step in batch.steps:
            self.check_identity(step)
        if self.snapshot is None and batch.steps[0].type != "apply":
            raise refused(f"case {self.case} does not exist: apply first")

    async def apply(self, steps: list[CaseStep], batch_id: str | None,
                    recorded_by: str | None = None, request: str | None = None,
                    sent_as: str | None = None) -> StepsOutcome:
        async with self.lock:
            try:
                outcome: StepsOutcome = await workflow.execute_local_activity(
                    "apply_steps",
                    ApplyStepsInput(
                        case=self.case, steps=steps, today=self.today(), policy=self.policy,
                        batch_id=batch_id, workflow_id=workflow.info().workflow_id,
                        recorded_by=recorded_by, request=request, sent_as=sent_as,
                    ),
                    result_type=StepsOutcome,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=STEP_RETRY,
                )
            except ActivityError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type == "StepRefused":
                    raise refused(cause.message) from None
                raise
            if outcome.snapshot is not None:
                self.snapshot = outcome.snapshot
            for result in outcome.results:
                if result.accepted and result.command_id not in self.applied_set:
                    self.applied.append(result.command_id)
                    self.applied_set.add(result.command_id)
            if len(self.applied) > 2 * APPLIED_KEPT:
                self.applied = self.applied[-APPLIED_KEPT:]
                self.applied_set = set(self.applied)
            self.last_step_at = workflow.now()
            self.changed = True
            return outcome

    def check_identity(self, step: CaseStep) -> None:
        if step.case != self.case:
            raise refused(f"step for case {step.case} sent to the workflow of case {self.case}")
        missing = missing_fields(step)
        if missing:
            raise refused(f"case {self.case}: {step.type} needs {', '.join(missing)}")

    def check(self, step: CaseStep) -> None:
        """Refuse, before it enters history, a step the stage or the dates rule out."""
        self.check_identity(step)
        snap = self.snapshot
        if snap is None:
            if step.type != "apply":
                raise refused(f"case {self.case} does not exist: apply first")
        elif step.type == "apply":
            raise refused(
                f"case {self.case} already exists ({snap.stage_label}); "
                "a new application needs a new case id"
            )
        try:
            if snap is None:
                check_dates(self.case, step.type, step.on, self.today(), None)
                return
            check_step(self.case, Stage(snap.stage), snap.stage_label, step.type, step.on,
                       self.today(), snap.last_on,
                       destination=step.destination.value if step.type == "exit" else None)
            why = (pilot_refusal(snap.programme, snap.housing_pilot, self.policy.pilot_at_move_in)
                   if step.type == "move_in" else None)
            if why:
                raise refused(f"case {self.case} is {snap.stage_label}: move_in {why}")
        except DomainError as exc:
            raise refused(str(exc)) from None

    # --- queries --------------------------------------------------------------------------

    @workflow.query
    def status(self) -> CaseStatus:
        snap = self.snapshot
        if snap is None:
            return CaseStatus(case=self.case, stage="new", stage_label="not yet opened",
                              allowed=["apply"], exits=[])
        return CaseStatus(
            case=self.case, stage=snap.stage, stage_label=snap.stage_label,
            allowed=snap.allowed, exits=snap.exits, outcome=snap.outcome,
            last_on=snap.last_on, due=self.due(),
        )
