"""The API's answers as OpenAPI sees them: each response is checked against these."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


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
    workflow: str


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


class RevealAnswer(BaseModel):
    case: str
    client: str
    name: str | None
    personal_number: str | None


class ErasureAnswer(BaseModel):
    client: str
    erased: bool


class ImportAnswer(_Open):
    accepted: int


class ProjectionsAnswer(BaseModel):
    projections: list[dict[str, Any]]


class VerifyAnswer(_Open):
    ok: bool
    checked: int
    first_broken: int | None = None
    reason: str | None = None
