"""What crosses the workflow boundary: start arguments, activity inputs, query answers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from domain.commands import CaseStep, StockStep
from domain.policy import Policy
from domain.views import CaseSnapshot, DueItem


class CarriedState(BaseModel):
    """What a case workflow hands to its next run when it continues as new."""

    snapshot: CaseSnapshot | None = None
    applied: list[str] = Field(default_factory=list)
    reminded: dict[str, date] = Field(default_factory=dict)
    unanswered: dict[str, date] = Field(default_factory=dict)
    last_step_at: datetime | None = None


class NoteOutcome(BaseModel):
    noted: bool
    snapshot: CaseSnapshot


class CaseStart(BaseModel):
    case: str
    policy: Policy = Policy()
    carried: CarriedState | None = None
    history_limit: int = Field(
        2_000, ge=100, description="history events before the workflow continues as new"
    )


class CaseStatus(BaseModel):
    case: str
    stage: str
    stage_label: str
    allowed: list[str]
    exits: list[str]
    outcome: str | None = None
    last_on: date | None = None
    due: list[DueItem] = Field(default_factory=list)


class CaseOutcome(BaseModel):
    case: str
    outcome: str | None
    closed_on: date | None


class StepRequest(BaseModel):
    """One step; wrapped so the discriminated union survives Temporal's type hints."""

    step: CaseStep
    recorded_by: str | None = None  # the signed-in person, when not the step's actor
    request: str | None = None  # a keyed digest of the request, kept in the step's marker
    # this request's own id, kept in the marker too: of two requests at once under one key,
    # Temporal gives both the first's answer, and only the marker tells which was first
    sent_as: str | None = None


class StockRequest(BaseModel):
    step: StockStep
    policy: Policy = Policy()
    recorded_by: str | None = None  # who sent it, kept in its marker with the request's digest
    request: str | None = None
    sent_as: str | None = None  # as StepRequest.sent_as


class StepBatch(BaseModel):
    batch_id: str
    steps: list[CaseStep] = Field(min_length=1, max_length=500)
    recorded_by: str | None = None


class ApplyStepsInput(BaseModel):
    case: str
    steps: list[CaseStep]
    today: date
    policy: Policy
    batch_id: str | None = None
    workflow_id: str = ""
    recorded_by: str | None = None
    request: str | None = None  # of the one step (not a batch): StepRequest.request
    sent_as: str | None = None  # likewise StepRequest.sent_as


class NoteDueInput(BaseModel):
    case: str
    kind: str
    due: date
    quarter: int = 0
    command_id: str
    workflow_id: str = ""
    today: date | None = None


class StockInput(BaseModel):
    step: StockStep
    today: date
    recorded_by: str | None = None
    request: str | None = None
    sent_as: str | None = None


class ReminderDelivery(BaseModel):
    """One reminder to deliver (activity `deliver_reminder`): the worklist always, e-mail when
    SMTP is configured. `reminder_id` is deterministic, so a retried or replayed delivery is
    recognised by the outbox and sends nothing twice. No personal data: cases carry only
    pseudonymous ids, and `text` is a short message about the step that is due."""

    reminder_id: str = Field(min_length=1, max_length=300)
    case: str
    kind: str  # unexecuted_decision | home_visit | follow_up | takeover_eligible | ...
    due: date
    to_actor: str  # whose reminder it is (an escalation still names them; mail goes up)
    escalation: bool = False
    text: str = Field(max_length=2_000)

    @staticmethod
    def make_id(case: str, kind: str, due: date, escalation: bool = False) -> str:
        """`case-c1:home_visit:2026-05-01`, or `…:escalation` for the supervisor's copy."""
        return f"case-{case}:{kind}:{due.isoformat()}" + (":escalation" if escalation else "")


class ScheduledReport(BaseModel):
    """Input of ScheduledReportWorkflow (the `report-*` schedules start it)."""

    kind: Literal["ivo", "monthly", "yearly"]
    time_zone: str = "Europe/Stockholm"  # the municipality's, from the policy
    period: str | None = Field(
        None, description="a fixed period (2026Q3, 2026-10, 2026) instead of the one just ended"
    )


class WriteReportInput(BaseModel):
    """Input of the `write_report` activity: which report, for which period."""

    kind: Literal["ivo", "monthly", "yearly"]
    period: str


class RetentionRun(BaseModel):
    """Input of IdentityRetentionWorkflow (the `identity-retention` schedule starts it)."""

    time_zone: str = "Europe/Stockholm"  # the municipality's, from the policy
    as_of: date | None = Field(
        None, description="erase as on this day instead of the schedule's (tests, a re-run)"
    )


class RetentionInput(BaseModel):
    """Input of the `erase_expired_identities` activity: the day the retention is counted from."""

    today: date


class RetentionResult(BaseModel):
    """What a retention run erased: pseudonymous client ids only, never names."""

    today: date
    cutoff: date
    erased: list[str] = Field(default_factory=list)
