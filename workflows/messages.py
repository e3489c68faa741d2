"""What crosses the workflow boundary: start arguments, activity inputs, query answers."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from domain.commands import CaseStep, StockStep
from domain.policy import Policy
from domain.views import CaseSnapshot


class DueItem(BaseModel):
    kind: str  # unexecuted_decision | home_visit | follow_up | takeover_eligible
    due: date
    fires_at: datetime
    quarter: int = 0


class CarriedState(BaseModel):
    """What a case workflow hands to its next run when it continues as new."""

    snapshot: CaseSnapshot | None = None
    applied: list[str] = Field(default_factory=list)
    reminded: dict[str, date] = Field(default_factory=dict)
    last_step_at: datetime | None = None


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


class StockRequest(BaseModel):
    step: StockStep
    policy: Policy = Policy()


class StepBatch(BaseModel):
    batch_id: str
    steps: list[CaseStep] = Field(min_length=1, max_length=500)


class ApplyStepsInput(BaseModel):
    case: str
    steps: list[CaseStep]
    today: date
    policy: Policy
    batch_id: str | None = None
    workflow_id: str = ""


class NoteDueInput(BaseModel):
    case: str
    kind: str
    due: date
    quarter: int = 0
    command_id: str
    workflow_id: str = ""


class StockInput(BaseModel):
    step: StockStep
    today: date
