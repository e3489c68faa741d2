"""What the notice service returns: the notice snapshot the workflow keeps.

Pure pydantic (like `domain.views`), so the workflow holds the stage, the steps allowed next
and the moments its timers need without touching an aggregate.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from domain.views import CaseSnapshot, LineResult


class NoticeSnapshot(BaseModel):
    notice: str
    kind: str
    stage: str
    stage_label: str
    allowed: list[str] = Field(default_factory=list)
    outcomes: list[str] = Field(default_factory=list)
    notice_date: date
    last_on: date
    eviction_date: date | None = None
    reached_on: date | None = None
    reach_by: datetime | None = Field(
        None, description="eviction notices: reach the tenant before this moment"
    )
    pilot: str | None = None
    visits: int = 0
    unreached_deadline: datetime | None = Field(
        None, description="set once nobody reached the tenant by this moment"
    )
    outreach_from: datetime | None = None
    outreach_due: datetime | None = None
    escalated: bool = False
    last_outcome: str | None = None
    outcome: str | None = None
    closed_on: date | None = None
    case: str | None = Field(None, description="housing case opened from the notice")

    @property
    def closed(self) -> bool:
        return self.stage == "closed"


class NoticeStepOutcome(BaseModel):
    result: LineResult
    snapshot: NoticeSnapshot | None = None
    case_snapshot: CaseSnapshot | None = Field(
        None, description="the housing case an open_case step opened"
    )
