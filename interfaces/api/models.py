"""The API's answers as OpenAPI sees them: each response is checked against these."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """RFC 9457 problem details; `detail` is the domain's own message."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class DueItemView(_Open):
    kind: str
    due: str
    fires_at: str
    quarter: int = 0


class Household(BaseModel):
    adults: int
    children: int


class SupportLevelView(BaseModel):
    level: int
    name: str | None


class SubGoalView(BaseModel):
    id: str
    follow_up: str | None


class PlanView(BaseModel):
    made_on: str | None
    open_sub_goals: list[SubGoalView]


class InterruptionView(BaseModel):
    since: str | None
    kind: str | None


class PlacementView(BaseModel):
    id: str
    start: str | None
    planned_end: str | None


class CaseFileView(BaseModel):
    """The case file's current facts; its typed texts are in the (sealed) history."""

    support_level: SupportLevelView | None
    plan: PlanView | None
    lease_end: str | None
    interrupted: InterruptionView | None
    open_placements: list[PlacementView]
    arrears: str
    repayment_plan: list[dict[str, Any]] | None
    warnings: list[str | None]


class CaseView(BaseModel):
    case: str
    client: str
    stage: str
    stage_label: str
    outcome: str | None
    district: str
    target_group: str
    household: Household
    housing_situation: str
    referral: str
    programme: str | None
    apartment: str | None
    caseworker: str | None
    housing_pilot: str | None
    applied_on: str
    decision_date: str | None
    move_in_date: str | None
    last_on: str | None
    allowed: list[str]
    exits: list[str]
    due: list[DueItemView]
    workflow: Annotated[str, Field(description=(
        "the case's workflow: running (it keeps the timers), closed (the case is closed; "
        "nothing is due), missing (not running: the timers are stopped; `repair` restarts it) "
        "or unavailable"))]
    case_file: CaseFileView


class HistoryAnswer(BaseModel):
    case: str
    rows: list[dict[str, Any]]


class AccessLogAnswer(BaseModel):
    case: str | None
    rows: list[dict[str, Any]]


class ReportAnswer(_Open):
    rows: list[dict[str, Any]] = []


class WorklistAnswer(BaseModel):
    actor: str | None
    as_of: str
    until: str
    overdue: int
    due: int
    rows: list[dict[str, Any]]
    kinds: list[str] = []  # the kinds of item in the whole list (`kind` narrows the rows)
    # another person's list or everyone's, read by a supervisor: the cases of these units and
    # those assigned to the reader only
    cases_of: dict[str, Any] | None = None


class RevealAnswer(BaseModel):
    case: str
    client: str
    name: str | None
    personal_number: str | None


class ErasureAnswer(BaseModel):
    client: str
    erased: bool = Field(description="whether this request erased anything")
    erased_at: str | None = Field(description="when the client's identity was first erased; "
                                  "null when nothing was ever recorded of the client")


class ImportAnswer(_Open):
    accepted: int


class ProjectionsAnswer(BaseModel):
    projections: list[dict[str, Any]]


class VerifyAnswer(_Open):
    ok: bool
    checked: int
    first_broken: int | None = None
    reason: str | None = None
    head_hash: str | None = None
    head_seq: int | None = None
    anchors_checked: int = 0
    warnings: list[str] = []
