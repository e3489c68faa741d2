"""EvictionPreventionWorkflow: one notice that a tenant risks eviction, or one outreach
assignment (uppsök), from registration to its outcome. Id `notice-<notice id>`.

Steps arrive as the Update `step` (the first, `register`, with update-with-start). The
validator refuses, before anything enters the workflow history, a step the notice's stage
does not allow, an outcome that may not follow the last one, and a step dated in the future
or before the notice's last step; an accepted step runs the `apply_notice_step` local
activity, whose snapshot is all the workflow keeps.

Two timers, both recorded on the notice by the system actor (`note_notice_due`):

* reach (kind `eviction` only): if nobody has reached the tenant by the end of the policy's
  working day after the notice date, the notice records `OutreachRequired`, and the
  outreach clock starts at that moment. The deadline (`domain.notice_deadlines.
  reach_deadline`, Swedish or Norwegian holidays) is computed by the service when the notice
  is registered and comes to the workflow in the snapshot (`reach_by`): the `holidays`
  tables are neither called inside the sandbox (their lazy imports are refused there) nor
  allowed to change a running notice's timer when the package is upgraded;
* outreach: if no housing pilot has visited (and nobody reached the tenant) within
  `outreach_hours` (48, clock time) of outreach becoming required, the notice records
  `OutreachEscalated`. A visit — or contact made — before then cancels it.

Kind `outreach` has no reach phase: the assignment itself is the outreach, so its 48 hours
run from registration. A notice opened as a housing case starts the case's `CaseWorkflow`
as an abandoned child (its snapshot carried in), so the case goes on after the notice closes.
The workflow ends when the notice is closed (eviction averted or executed).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from domain.due import local_date
    from domain.notice_commands import NoticeStep, case_apply_id
    from domain.notice_deadlines import outreach_deadline
    from domain.notice_stages import NOTICE_NEEDS, outcome_needs
    from domain.notice_views import NoticeSnapshot, NoticeStepOutcome
    from domain.steps import missing_fields
    from domain.views import CaseSnapshot, LineResult
    from workflows.eviction_messages import (
        ApplyNoticeStepInput,
        NoteNoticeInput,
        NoticeCarried,
        NoticeDue,
        NoticeResult,
        NoticeStart,
        NoticeStatus,
        NoticeStepRequest,
    )
    from workflows.messages import CarriedState, CaseStart, ReminderDelivery

STEP_TIMEOUT = timedelta(seconds=30)
STEP_RETRY = RetryPolicy(maximum_attempts=10, non_retryable_error_types=["StepRefused"])
NEVER_OPENED_AFTER = timedelta(minutes=10)
APPLIED_KEPT = 500


def refused(message: str) -> ApplicationError:
    return ApplicationError(message, type="StepRefused", non_retryable=True)


def notice_workflow_id(notice: str) -> str:
    return f"notice-{notice}"


@workflow.defn
class EvictionPreventionWorkflow:
    @workflow.init
    def __init__(self, start: NoticeStart) -> None:
        carried = start.carried or NoticeCarried()
        self.notice = start.notice
        self.policy = start.policy
        self.history_limit = start.history_limit
        self.snapshot: NoticeSnapshot | None = carried.snapshot
        self.applied: list[str] = list(carried.applied)
        self.applied_set = set(self.applied)
        self.noted: set[str] = set(carried.noted)
        self.last_step_at: datetime | None = carried.last_step_at
        self.changed = False
        self.lock = asyncio.Lock()

    # --- time -----------------------------------------------------------------------------

    def today(self) -> date:
        return local_date(workflow.now(), self.policy)

    def due(self) -> list[NoticeDue]:
        """What the timers wait for: the reach deadline, then the outreach deadline."""
        snap = self.snapshot
        if snap is None or snap.closed or snap.reached_on is not None:
            return []
        items: list[NoticeDue] = []
        if snap.reach_by is not None and snap.unreached_deadline is None:
            items.append(NoticeDue(kind="reach", deadline=snap.reach_by, fires_at=snap.reach_by))
        if snap.outreach_due is not None and snap.visits == 0 and not snap.escalated:
            items.append(NoticeDue(kind="outreach", deadline=snap.outreach_due,
                                   fires_at=snap.outreach_due))
        return [i for i in items if self.command_id(i) not in self.noted]

    def fire_time(self, item: NoticeDue) -> datetime:
        """When to raise an item: at its time, or, if already past (a notice recorded late),
        once the notice has been quiet for `catch_up_delay_seconds`."""
        if item.fires_at > workflow.now() or self.last_step_at is None:
            return item.fires_at
        delay = timedelta(seconds=self.policy.catch_up_delay_seconds)
        return max(item.fires_at, self.last_step_at + delay)

    def command_id(self, item: NoticeDue) -> str:
        return f"{notice_workflow_id(self.notice)}:{item.kind}:{item.deadline.isoformat()}"

    @property
    def closed(self) -> bool:
        return self.snapshot is not None and self.snapshot.closed

    @workflow.run
    async def run(self, start: NoticeStart) -> NoticeResult:
        if self.snapshot is None:
            try:
                await workflow.wait_condition(
                    lambda: self.snapshot is not None, timeout=NEVER_OPENED_AFTER
                )
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self.snapshot is None:
                    raise ApplicationError(
                        f"notice {self.notice} was never registered (no accepted register)",
                        type="NeverOpened",
                        non_retryable=True,
                    ) from None
        while not self.closed:
            if self.should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    NoticeStart(notice=self.notice, policy=self.policy, carried=self.carried(),
                                history_limit=self.history_limit)
                )
            wake = min((self.fire_time(i) for i in self.due()), default=None)
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
        return NoticeResult(notice=self.notice, outcome=self.snapshot.outcome,
                            closed_on=self.snapshot.closed_on, case=self.snapshot.case)

    def should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self.history_limit
        )

    def carried(self) -> NoticeCarried:
        return NoticeCarried(snapshot=self.snapshot, applied=self.applied[-APPLIED_KEPT:],
                             noted=sorted(self.noted), last_step_at=self.last_step_at)

    async def raise_due(self) -> None:
        delivery = await self.raise_one()
        if delivery is not None and workflow.patched("notice-delivery-v1"):
            try:
                await workflow.execute_activity(
                    "deliver_reminder", delivery, result_type=str,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=20,
                                             maximum_interval=timedelta(minutes=10)),
                )
            except ActivityError as exc:  # recorded on the notice either way
                workflow.logger.warning("escalation not delivered by e-mail: %s", exc.cause)

    async def raise_one(self) -> ReminderDelivery | None:
        """Record the first item that is due; the escalation of a missed 48-hour outreach is
        also delivered (to the supervisor by e-mail when configured)."""
        async with self.lock:
            now = workflow.now()
            for item in self.due():
                if self.fire_time(item) > now:
                    continue
                command_id = self.command_id(item)
                snapshot = await workflow.execute_local_activity(
                    "note_notice_due",
                    NoteNoticeInput(
                        notice=self.notice,
                        kind="unreached" if item.kind == "reach" else "escalated",
                        deadline=item.deadline,
                        outreach_due=(outreach_deadline(now, self.policy)
                                      if item.kind == "reach" else None),
                        at=now,
                        on=local_date(item.deadline, self.policy),
                        command_id=command_id,
                        workflow_id=workflow.info().workflow_id,
                    ),
                    result_type=NoticeSnapshot,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=STEP_RETRY,
                )
                self.noted.add(command_id)
                escalated_now = snapshot.escalated and not (self.snapshot and self.snapshot.escalated)
                self.snapshot = snapshot
                if item.kind != "reach" and escalated_now:
                    return ReminderDelivery(
                        reminder_id=command_id, case=self.notice, kind="outreach_missed",
                        due=local_date(item.deadline, self.policy),
                        to_actor=snapshot.pilot or "unassigned", escalation=True,
                        text=(f"Notice {self.notice}: no outreach visit within "
                              f"{self.policy.outreach_hours} hours (by {item.deadline})."),
                    )
                return None  # the next item (the outreach clock just started) is recomputed
        return None

    # --- steps ----------------------------------------------------------------------------

    @workflow.update
    async def step(self, request: NoticeStepRequest) -> LineResult:
        step = request.step
        if step.id in self.applied_set:
            return LineResult(accepted=True, command_id=step.id or "", duplicate=True,
                              stage=self.snapshot.stage if self.snapshot else None)
        async with self.lock:
            try:
                outcome: NoticeStepOutcome = await workflow.execute_local_activity(
                    "apply_notice_step",
                    ApplyNoticeStepInput(
                        notice=self.notice, step=step, today=self.today(), now=workflow.now(),
                        policy=self.policy, workflow_id=workflow.info().workflow_id,
                        request=request.request, sent_by=request.sent_by,
                        sent_as=request.sent_as,
                    ),
                    result_type=NoticeStepOutcome,
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
            if outcome.case_snapshot is not None and step.type == "open_case":
                await self.start_case(outcome.case_snapshot, case_apply_id(step.id or ""))
            result = outcome.result
            if result.accepted and result.command_id not in self.applied_set:
                self.applied.append(result.command_id)
                self.applied_set.add(result.command_id)
            if len(self.applied) > 2 * APPLIED_KEPT:
                self.applied = self.applied[-APPLIED_KEPT:]
                self.applied_set = set(self.applied)
            self.last_step_at = workflow.now()
            self.changed = True
            return result

    async def start_case(self, case: CaseSnapshot, apply_id: str) -> None:
        """Start the opened case's own workflow, with its snapshot: it outlives the notice."""
        try:
            await workflow.start_child_workflow(
                "CaseWorkflow",
                CaseStart(
                    case=case.case, policy=self.policy,
                    carried=CarriedState(snapshot=case, applied=[apply_id],
                                         last_step_at=workflow.now()),
                ),
                id=f"case-{case.case}",
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        except WorkflowAlreadyStartedError:
            # Only when the step is answered again from the store (a re-sent command whose
            # first run started the case): the case's workflow is already there.
            workflow.logger.info("case workflow already started", extra={"case": case.case})

    @step.validator
    def validate_step(self, request: NoticeStepRequest) -> None:
        step = request.step
        if step.id in self.applied_set:
            return
        self.check(step)

    def check(self, step: NoticeStep) -> None:
        """Refuse, before it enters history, a step the stage or the dates rule out."""
        if step.notice != self.notice:
            raise refused(
                f"step for notice {step.notice} sent to the workflow of notice {self.notice}"
            )
        missing = missing_fields(step)
        if missing:
            raise refused(f"notice {self.notice}: {step.type} needs {', '.join(missing)}")
        snap = self.snapshot
        if snap is None:
            if step.type != "register":
                raise refused(f"notice {self.notice} does not exist: register it first")
        elif step.type == "register":
            raise refused(
                f"notice {self.notice} already exists ({snap.stage_label}); "
                "a new notice needs a new notice id"
            )
        elif step.type not in snap.allowed:
            allowed = ", ".join(snap.allowed) or "nothing (the notice is closed)"
            raise refused(
                f"notice {self.notice} is {snap.stage_label}: {step.type} "
                f"{NOTICE_NEEDS[step.type]}; allowed now: {allowed}"
            )
        elif step.type == "outcome" and step.outcome.value not in snap.outcomes:
            raise refused(
                f"notice {self.notice} is {snap.stage_label}: outcome {step.outcome.value} "
                f"{outcome_needs(step.outcome.value, snap.stage, snap.last_outcome)}; "
                f"outcomes now: {', '.join(snap.outcomes)}"
            )
        elif step.type == "assign_outreach" and step.pilot == snap.pilot:
            raise refused(
                f"notice {self.notice} is {snap.stage_label}: assign_outreach to {step.pilot}: "
                f"{step.pilot} is already assigned; allowed now: {', '.join(snap.allowed)}"
            )
        assert step.on is not None
        today = self.today()
        if step.on > today:
            raise refused(f"notice {self.notice}: {step.type} on {step.on} is after today ({today})")
        if snap is not None and step.on < snap.last_on:
            raise refused(
                f"notice {self.notice}: {step.type} on {step.on} is before the notice's last "
                f"step on {snap.last_on}"
            )
        if step.type == "register" and step.eviction_date and step.eviction_date < step.on:
            raise refused(
                f"notice {self.notice}: the eviction date {step.eviction_date} is before the "
                f"notice date {step.on}"
            )

    # --- queries --------------------------------------------------------------------------

    @workflow.query
    def status(self) -> NoticeStatus:
        snap = self.snapshot
        if snap is None:
            return NoticeStatus(notice=self.notice, stage="new", stage_label="not yet registered",
                                allowed=["register"])
        return NoticeStatus.of(snap, self.due())
