"""What crosses the eviction-prevention workflow's boundary: start arguments, activity
inputs, query answers (like `workflows.messages` for cases)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from domain.notice_commands import NoticeStep
from domain.notice_views import NoticeSnapshot
from domain.policy import Policy


class NoticeDue(BaseModel):
    kind: str  # reach (the tenant not reached in time) | outreach (no visit within 48 h)
    deadline: datetime
    fires_at: datetime


class NoticeCarried(BaseModel):
    """What a notice workflow hands to its next run when it continues as new."""

    snapshot: NoticeSnapshot | None = None
    applied: list[str] = Field(default_factory=list)
    noted: list[str] = Field(default_factory=list)
    last_step_at: datetime | None = None


class NoticeStart(BaseModel):
    notice: str
    policy: Policy = Policy()
    carried: NoticeCarried | None = None
    history_limit: int = Field(
        2_000, ge=100, description="history events before the workflow continues as new"
    )


class NoticeStepRequest(BaseModel):
    """One notice step; wrapped so the discriminated union survives Temporal's type hints.
    `request`, `sent_by` and `sent_as` are kept in the step's marker, as a case step's
    (`workflows.messages.StepRequest`)."""

    step: NoticeStep
    request: str | None = None
    sent_by: str | None = None
    sent_as: str | None = None


class NoticeStatus(BaseModel):
    notice: str
    kind: str | None = None
    stage: str
    stage_label: str
    allowed: list[str]
    outcomes: list[str] = Field(default_factory=list)
    last_on: date | None = None
    eviction_date: date | None = None
    pilot: str | None = None
    reached_on: date | None = None
    reach_deadline: datetime | None = Field(
        None, description="eviction notices: reach the tenant before this moment"
    )
    outreach_due: datetime | None = Field(None, description="a pilot at the door before this")
    escalated: bool = False
    outcome: str | None = None
    case: str | None = None
    due: list[NoticeDue] = Field(default_factory=list)

    @classmethod
    def of(cls, snap: NoticeSnapshot, due: list[NoticeDue]) -> NoticeStatus:
        """The status of a registered notice: the workflow's query answer, and a closed
        notice's from the event store once its run has ended (nothing is due then)."""
        return cls(
            notice=snap.notice, kind=snap.kind, stage=snap.stage, stage_label=snap.stage_label,
            allowed=snap.allowed, outcomes=snap.outcomes, last_on=snap.last_on,
            eviction_date=snap.eviction_date, pilot=snap.pilot, reached_on=snap.reached_on,
            reach_deadline=snap.reach_by, outreach_due=snap.outreach_due,
            escalated=snap.escalated, outcome=snap.outcome, case=snap.case, due=due,
        )


class NoticeResult(BaseModel):
    notice: str
    outcome: str | None
    closed_on: date | None
    case: str | None = None


class ApplyNoticeStepInput(BaseModel):
    notice: str
    step: NoticeStep
    today: date
    now: datetime
    policy: Policy
    workflow_id: str = ""
    request: str | None = None  # NoticeStepRequest's
    sent_by: str | None = None
    sent_as: str | None = None


class NoteNoticeInput(BaseModel):
    notice: str
    kind: str  # unreached | escalated
    deadline: datetime
    outreach_due: datetime | None = None
    at: datetime
    on: date
    command_id: str
    workflow_id: str = ""
