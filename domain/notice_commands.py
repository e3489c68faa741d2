"""The notice command language: one pydantic model per eviction-prevention step.

Like `domain.commands`: the models travel through Temporal (update arguments) and into the
application service, so they carry no personal data — the tenant is named only by the
pseudonymous client id. `on`, `actor` and `id` (the command id) come from `_Line`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from domain.commands import (
    Actor,
    ClientId,
    Day,
    District,
    Household,
    HousingSituation,
    Id,
    Referral,
    TargetGroup,
    Text,
    _Line,
)
from domain.notice_stages import ContactChannel, NoticeKind, NoticeOutcome, NoticeSource


class _NoticeLine(_Line):
    notice: Id


class RegisterNotice(_NoticeLine):
    """A notice that a tenant risks eviction, or an outreach assignment (kind `outreach`)."""

    type: Literal["register"] = "register"
    kind: NoticeKind = NoticeKind.EVICTION
    source: NoticeSource = NoticeSource.LANDLORD
    client: ClientId = Field(description="pseudonymous client id (no names here)")
    district: District
    eviction_date: Day | None = Field(None, description="the eviction date, if known")
    pilot: Actor | None = Field(None, description="housing pilot assigned at once (optional)")


class ContactAttempt(_NoticeLine):
    type: Literal["contact_attempt"] = "contact_attempt"
    reached: bool
    channel: ContactChannel = ContactChannel.PHONE


class AssignOutreach(_NoticeLine):
    type: Literal["assign_outreach"] = "assign_outreach"
    pilot: Actor


class OutreachVisit(_NoticeLine):
    type: Literal["outreach_visit"] = "outreach_visit"
    reached: bool
    note: Text = ""


class RecordOutcome(_NoticeLine):
    type: Literal["outcome"] = "outcome"
    outcome: NoticeOutcome


class OpenCase(_NoticeLine):
    """Open a housing case (its `apply`) from the notice: the tenant has lost, or is about
    to lose, the home. The client id comes from the notice; the district defaults to it."""

    type: Literal["open_case"] = "open_case"
    case: Id
    target_group: TargetGroup
    district: District | None = None
    household: Household = Household()
    housing_situation: HousingSituation = HousingSituation.WITHOUT_HOUSING
    referral: Referral = Referral.OTHER_UNIT


NoticeStep = Annotated[
    RegisterNotice | ContactAttempt | AssignOutreach | OutreachVisit | RecordOutcome | OpenCase,
    Field(discriminator="type"),
]
notice_step_adapter: TypeAdapter[NoticeStep] = TypeAdapter(NoticeStep)

# the free text of a notice's steps (sealed at the front door, as a case's: commands.FREE_TEXT)
NOTICE_FREE_TEXT: dict[str, tuple[str, ...]] = {"outreach_visit": ("note",)}

NOTICE_COMMANDS: tuple[str, ...] = (
    "register",
    "contact_attempt",
    "assign_outreach",
    "outreach_visit",
    "outcome",
    "open_case",
)


def case_apply_id(command_id: str) -> str:
    """The command id of the `apply` an `open_case` step creates (its own marker)."""
    return f"{command_id}:apply"
