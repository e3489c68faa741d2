"""What the application service returns: per-line results and the case snapshot.

Pure pydantic, so the workflow can hold a snapshot (ids, the stage and the dates its timers
need) without touching an aggregate.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class CaseSnapshot(BaseModel):
    case: str
    stage: str
    stage_label: str
    allowed: list[str] = Field(default_factory=list)
    exits: list[str] = Field(default_factory=list)
    last_on: date | None = None
    programme: str | None = None
    decision_date: date | None = None
    move_in_date: date | None = None
    stage_since: date | None = None
    caseworker: str | None = None
    housing_pilot: str | None = None
    last_checklist: date | None = None
    last_home_visit: date | None = None
    last_follow_up: date | None = None
    unexecuted_noted: int = 0
    takeover_eligible_on: date | None = None
    outcome: str | None = None
    closed_on: date | None = None
    # the case file (absent from snapshots recorded before it: the defaults)
    plan_on: date | None = None
    follow_ups: dict[str, date] = Field(default_factory=dict)
    sub_goal_owners: dict[str, str] = Field(default_factory=dict)  # sub-goal -> responsible
    interrupted_on: date | None = None  # support interrupted, not resumed
    interruption_noted: int = 0
    lease_end: date | None = None  # a time-limited lease's last day
    # the programme's own follow-ups (from "case-file-v3"): inspection, coordinator meeting
    last_inspection: date | None = None
    last_coordinator_meeting: date | None = None


class LineResult(BaseModel):
    accepted: bool
    command_id: str
    reason: str | None = None
    duplicate: bool = False
    stage: str | None = None
    events: list[str] = Field(default_factory=list)
    # who recorded the step when it is not its actor (the admin importing older records)
    recorded_by: str | None = None


class StepsOutcome(BaseModel):
    results: list[LineResult]
    snapshot: CaseSnapshot | None = None


class DueItem(BaseModel):
    kind: str  # unexecuted_decision | home_visit | follow_up | takeover_eligible
    due: date
    fires_at: datetime
    quarter: int = 0
