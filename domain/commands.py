"""The command language: one pydantic model per step, as the import format spells it.

These models travel through Temporal (update arguments) and into the application service,
so they carry no personal data: the `apply` step names only the pseudonymous client id.
A client's name and personal identity number come in on `ApplyLine` (the import and CLI
form), which the client side splits off into the identity store before anything is sent.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from domain.personal_number import InvalidPersonalNumber, find_personal_number, parse_personal_number
from domain.text import clean_text, is_sealed


def _clean(field: str, *, multiline: bool = False) -> BeforeValidator:
    """Text hygiene before the length and pattern checks, so they see the NFC form and a
    hidden character is refused by name rather than as a pattern mismatch."""
    return BeforeValidator(lambda v: clean_text(v, field, multiline=multiline) if isinstance(v, str) else v)


def _pseudonymous(field: str, hint: str = ": use a pseudonymous id") -> AfterValidator:
    """Refuses an identifier that carries a personal identity number. Clock-free (any century
    that fits counts), because these models are re-validated inside Temporal workflows."""

    def check(value: str) -> str:
        found = find_personal_number(value)
        if found:
            raise ValueError(f"{field} must not contain {found}{hint}")
        return value

    return AfterValidator(check)


def _identity_number(value: str) -> str:
    """The checked, normalized number (12 digits Swedish, 11 Norwegian).

    The only clock read in the command models: a 10-digit Swedish form takes its century from
    today's date. Safe here alone, because a client's identity is split off on the client side
    (ApplyLine.without_identity) and never reaches a Temporal workflow; keep it that way.
    """
    try:
        return parse_personal_number(value, today=date.today()).normalized
    except InvalidPersonalNumber as exc:
        raise ValueError(str(exc)) from None


_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
Id = Annotated[str, _ID, _clean("id"), _pseudonymous("id")]
CaseId = Annotated[str, _ID, _clean("case id"), _pseudonymous("case id")]
ApartmentId = Annotated[str, _ID, _clean("apartment id"), _pseudonymous("apartment id")]
ClientId = Annotated[str, _ID, _clean("client id"), _pseudonymous("client id")]
CommandId = Annotated[
    str, Field(min_length=1, max_length=200), _clean("command id"), _pseudonymous("command id")
]
Actor = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[^\s].*$"), _clean("actor"),
    _pseudonymous("actor", ": name staff by their user id"),
]
District = Annotated[
    str, Field(min_length=1, max_length=64), _clean("district"), _pseudonymous("district", "")
]
Landlord = Annotated[
    str, Field(min_length=1, max_length=100), _clean("landlord"), _pseudonymous("landlord", "")
]
TEXT_MAX_CHARS = 500
TYPED = {"typed": True}  # the validation context of what a person typed (the front door)


def _free_text(value: object, info: ValidationInfo) -> object:
    """Typed text: clean and at most 500 characters. Behind the front door (in Temporal and
    the activities) the same field holds the text sealed with the client's key instead; a
    person cannot hand in a sealed text, since the front door validates with `TYPED`."""
    if not isinstance(value, str):
        return value  # the str schema refuses it
    if is_sealed(value) and not (info.context or {}).get("typed"):
        return value
    value = clean_text(value, "text", multiline=True)
    if len(value) > TEXT_MAX_CHARS:
        raise PydanticCustomError("string_too_long",
                                  "String should have at most {max_length} characters",
                                  {"max_length": TEXT_MAX_CHARS})
    return value


Text = Annotated[str, BeforeValidator(_free_text),
                 WithJsonSchema({"type": "string", "maxLength": TEXT_MAX_CHARS})]
# a coded reason: one of the policy's `reason_codes` for its kind (checked by the case, since
# each municipality keeps its own list)
ReasonCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
Name = Annotated[str, Field(min_length=1, max_length=200), _clean("name")]
IdentityNumber = Annotated[
    str, Field(pattern=r"^(\d{6}|\d{8})[-+]?\d{4}$|^\d{11}$"), AfterValidator(_identity_number)
]


class Programme(StrEnum):
    TRAINING_APARTMENT = "training_apartment"
    HOUSING_FIRST = "housing_first"
    MUNICIPAL_CONTRACT = "municipal_contract"


class Destination(StrEnum):
    FIRST_HAND_LEASE = "first_hand_lease"
    OWN_HOUSING = "own_housing"
    TERMINATED = "terminated"
    WITHDRAWN = "withdrawn"
    DECEASED = "deceased"
    MOVED_AWAY = "moved_away"


PERMANENT_DESTINATIONS = frozenset({Destination.FIRST_HAND_LEASE, Destination.OWN_HOUSING})


class TargetGroup(StrEnum):
    SUBSTANCE_ABUSE = "substance_abuse"
    PSYCHIATRIC_DISABILITY = "psychiatric_disability"
    CO_MORBIDITY = "co_morbidity"
    FAMILIES_WITH_CHILDREN = "families_with_children"
    YOUNG_ADULTS = "young_adults"
    ELDERLY = "elderly"
    NEWLY_ARRIVED = "newly_arrived"
    EXPOSED_TO_VIOLENCE = "exposed_to_violence"
    FUNCTIONAL_IMPAIRMENT = "functional_impairment"
    OTHER = "other"


class Referral(StrEnum):
    SELF = "self"
    HEALTHCARE = "healthcare"
    OTHER_UNIT = "other_unit"
    OTHER = "other"


class HousingSituation(StrEnum):
    WITHOUT_HOUSING = "without_housing"
    AT_RISK = "at_risk"
    UNSUITABLE = "unsuitable"
    # in an institution or supported housing (treatment, prison, care) with no home to go to:
    # Socialstyrelsen's situation 2 in the homelessness count
    INSTITUTION = "institution"


class Sex(StrEnum):
    """As the homelessness count asks it; given by the caseworker, never derived from the
    personal identity number (that would copy identity data into the case)."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class VisitKind(StrEnum):
    HOME_VISIT = "home_visit"
    FOLLOW_UP = "follow_up"
    INSPECTION = "inspection"
    COORDINATOR_MEETING = "coordinator_meeting"  # Housing First: weekly, the whole tenancy


def _not_a_truth_value(value: object) -> object:
    if isinstance(value, bool):  # pydantic would take true for 1
        raise PydanticCustomError("int_type", "Input should be a whole number, not true or false")
    return value


# a count or a number on a scale: `true` is a typing error, not 1
Count = Annotated[int, BeforeValidator(_not_a_truth_value)]


def _in_the_calendar(value: date, info: ValidationInfo) -> date:
    """A date typed before 1900 or after 2999 is a typing error, and would overflow the sums
    of the calendar (a period's bounds, a deadline) in the reports and the timers. At the
    front door (`TYPED`) only: a recorded workflow history may hold such a date (an import's
    `9999-12-31` for "no end"), and it must still validate there when it replays."""
    if (info.context or {}).get("typed") and not date(1900, 1, 1) <= value <= date(2999, 12, 31):
        raise PydanticCustomError("date_range",
                                  "Input should be a date from 1900-01-01 to 2999-12-31")
    return value


Day = Annotated[date, AfterValidator(_in_the_calendar)]


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: Day | None = Field(None, description="effective date; default today")
    actor: Actor | None = Field(None, description="who did it; default the CLI's --as")
    id: CommandId | None = Field(
        None, description="command id; default derived from file name, line number and text"
    )


class _CaseLine(_Line):
    case: CaseId


class Household(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    adults: Count = Field(1, ge=1, le=20)
    children: Count = Field(0, ge=0, le=30)


class Client(BaseModel):
    """The client as a case knows it: pseudonymous."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: ClientId
    target_group: TargetGroup
    district: District
    household: Household = Household()
    housing_situation: HousingSituation = HousingSituation.WITHOUT_HOUSING
    # optional pseudonymous facts for the homelessness count; None (not given) by default, so
    # older lines and recorded workflow histories still validate
    sex: Sex | None = Field(None, description="female, male, other or unknown; not derived "
                            "from the personal identity number")
    birth_year: Annotated[int, Field(ge=1900, le=2100),
                          BeforeValidator(_not_a_truth_value)] | None = Field(
        None, description="year of birth only")


class ClientWithIdentity(Client):
    """The client as an import line or the CLI may give it: with personal data."""

    name: Name | None = None
    personal_number: IdentityNumber | None = Field(
        None, description="Swedish personnummer or Norwegian fødselsnummer"
    )


class Apply(_CaseLine):
    type: Literal["apply"] = "apply"
    client: Client
    referral: Referral = Referral.SELF


class ApplyLine(Apply):
    client: ClientWithIdentity  # type: ignore[assignment]

    def without_identity(self) -> Apply:
        data = self.model_dump(exclude={"client": {"name", "personal_number"}})
        return Apply.model_validate(data)


class StartAssessment(_CaseLine):
    type: Literal["start_assessment"] = "start_assessment"


def _programme_when_granted(value: Programme | None, info: ValidationInfo) -> Programme | None:
    """A grant without a programme is a malformed line, refused naming the field, at the
    front door (`TYPED`) only: behind it, a recorded workflow history may hold such a step
    (the case refused it), and it must still validate there."""
    typed = (info.context or {}).get("typed")
    if value is None and typed and info.data.get("outcome") == "granted":
        raise PydanticCustomError("missing", "Field required when granted: one of {programmes}",
                                  {"programmes": ", ".join(Programme)})
    return value


class Decide(_CaseLine):
    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"outcome": {"const": "granted"}}},
        "then": {"required": ["programme"], "properties": {"programme": {"type": "string"}}}})

    type: Literal["decide"] = "decide"
    outcome: Literal["granted", "denied"]
    programme: Annotated[Programme | None, AfterValidator(_programme_when_granted)] = Field(
        None, validate_default=True, description="needed when granted")
    reason_code: ReasonCode | None = Field(
        None, description="when denied: one of the policy's reason_codes.denial (default "
        "not_homeless, other_support_suffices, own_means, other); `other` when not given")
    reason: Text | None = Field(None, description="free-text note; when denied, a reason_code "
                                "or this is needed")


class Offer(_CaseLine):
    type: Literal["offer"] = "offer"
    apartment: ApartmentId


class LandlordDecision(_CaseLine):
    type: Literal["landlord_decision"] = "landlord_decision"
    approved: bool
    reason_code: ReasonCode | None = Field(
        None, description="when refused: one of the policy's reason_codes.landlord (default "
        "rent_history, references, household_size, disturbance, other); `other` when not given")
    reason: Text | None = Field(None, description="optional free-text note")


class MoveIn(_CaseLine):
    type: Literal["move_in"] = "move_in"
    apartment: ApartmentId
    lease_end: Day | None = Field(
        None, description="a time-limited lease: its last day (due for renewal before it)"
    )


class Checklist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rent_paid: bool
    home_insurance: bool
    in_housing_queue: bool


class RecordVisit(_CaseLine):
    type: Literal["record_visit"] = "record_visit"
    kind: VisitKind = VisitKind.HOME_VISIT
    checklist: Checklist | None = None


class CourseSession(_CaseLine):
    type: Literal["course_session"] = "course_session"
    session: Count = Field(ge=1, le=4)


class RentArrears(_CaseLine):
    type: Literal["rent_arrears"] = "rent_arrears"
    amount: Decimal = Field(gt=0, le=Decimal("10000000"), max_digits=12, decimal_places=2)


class Instalment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    amount: Decimal = Field(gt=0, le=Decimal("10000000"), max_digits=12, decimal_places=2)
    due: Day


class RepaymentPlan(_CaseLine):
    type: Literal["repayment_plan"] = "repayment_plan"
    instalments: list[Instalment] = Field(
        default_factory=list, max_length=120,
        description="optional: amount (SEK) and due date each; a missed one is on the worklist",
    )


class RentPayment(_CaseLine):
    """A payment against the rent arrears."""

    type: Literal["rent_payment"] = "rent_payment"
    amount: Decimal = Field(gt=0, le=Decimal("10000000"), max_digits=12, decimal_places=2)


class ComplaintKind(StrEnum):
    WARNING = "warning"  # anmodan om rättelse: the landlord's formal demand to correct
    COMPLAINT = "complaint"  # a disturbance complaint


class Complaint(_CaseLine):
    type: Literal["complaint"] = "complaint"
    kind: ComplaintKind = Field(ComplaintKind.COMPLAINT, description="warning (anmodan om "
                                "rättelse) or complaint (the default)")
    note: Text = ""


class SubGoal(BaseModel):
    """One sub-goal of the individual plan: what, who is responsible, when it is followed up."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Id
    goal: Text
    responsible: Actor
    follow_up: Day


class Plan(_CaseLine):
    """The individual plan (individuell plan / målplan); a later plan replaces the earlier."""

    type: Literal["plan"] = "plan"
    goal: Text = Field("own housing", description="the overall goal")
    sub_goals: list[SubGoal] = Field(default_factory=list, max_length=20)


class SubGoalReview(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sub_goal: Id
    result: Literal["met", "partly", "not_met"]
    note: Text = ""
    next_follow_up: Day | None = Field(
        None, description="partly or not met: when it is followed up again (else it is closed)"
    )


class PlanReview(_CaseLine):
    type: Literal["plan_review"] = "plan_review"
    reviews: list[SubGoalReview] = Field(min_length=1, max_length=20)


class PlacementKind(StrEnum):
    HOTEL = "hotel"
    SHELTER = "shelter"
    CAMPING_CABIN = "camping_cabin"
    FAMILY = "family"
    OTHER = "other"


class TemporaryPlacement(_CaseLine):
    """Temporary accommodation while waiting (`start`/`end`: the issue's from and to)."""

    type: Literal["temporary_placement"] = "temporary_placement"
    placement: Id
    kind: PlacementKind
    start: Day | None = Field(None, description="the first night; default the step's date")
    end: Day | None = Field(None, description="the planned last morning; open until ended")
    cost_per_night: Decimal | None = Field(
        None, ge=0, le=Decimal("100000"), max_digits=8, decimal_places=2, description="SEK"
    )


class PlacementEnded(_CaseLine):
    type: Literal["placement_ended"] = "placement_ended"
    placement: Id
    end: Day | None = Field(None, description="the morning the placement ended; default `on`")


class InterruptionKind(StrEnum):
    HOSPITAL = "hospital"
    PRISON = "prison"
    TREATMENT = "treatment"
    OTHER = "other"


class SupportInterrupted(_CaseLine):
    """The support is interrupted (a stay in hospital, prison or treatment, other)."""

    type: Literal["support_interrupted"] = "support_interrupted"
    kind: InterruptionKind


class SupportResumed(_CaseLine):
    type: Literal["support_resumed"] = "support_resumed"


class SupportLevel(_CaseLine):
    """The support level of the four-level model (Kongsvinger), from `on`."""

    type: Literal["support_level"] = "support_level"
    level: Count = Field(ge=1, le=4, description="1-4; the policy's support_levels name them")


class MoveApartment(_CaseLine):
    """A move between apartments of the programme (omflyttning): to a vacant apartment of the
    stock; the old one is vacated, the new one occupied, in one save."""

    type: Literal["move_apartment"] = "move_apartment"
    apartment: ApartmentId = Field(description="the vacant apartment moved to")


class ReferTakeover(_CaseLine):
    type: Literal["refer_takeover"] = "refer_takeover"


class CreditCheck(BaseModel):
    """The landlord's credit check (kreditprövning)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    passed: bool


class References(BaseModel):
    """The references from the training period: rent paid on time, complaints."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rent_paid_on_time: bool
    complaints_last_12_months: Count = Field(ge=0, le=1000)


class TakeoverDecision(_CaseLine):
    type: Literal["takeover_decision"] = "takeover_decision"
    approved: bool
    reason_code: ReasonCode | None = Field(
        None, description="when refused: one of the policy's reason_codes.takeover (default "
        "arrears, complaints, references, credit_check, other); `other` when not given")
    reason: Text | None = Field(None, description="optional free-text note")
    credit_check: CreditCheck | None = Field(None, description="optional: the credit check")
    references: References | None = Field(None, description="optional: the references")


class RenewLease(_CaseLine):
    """A time-limited lease renewed (answers the `lease_renewal` reminder)."""

    type: Literal["renew_lease"] = "renew_lease"
    lease_end: Day = Field(description="the renewed lease's last day, after the current one")


class Assign(_CaseLine):
    type: Literal["assign"] = "assign"
    role: Literal["caseworker", "housing_pilot"]
    to: Actor


class Exit(_CaseLine):
    type: Literal["exit"] = "exit"
    destination: Destination


class RegisterApartment(_Line):
    type: Literal["register_apartment"] = "register_apartment"
    apartment: ApartmentId
    landlord: Landlord
    rooms: Count = Field(ge=1, le=12)
    accessible: bool = Field(False, description="adapted for people with functional impairments")
    landlord_type: Literal["municipal_company", "private"] | None = Field(
        None, description="municipal_company (allmännyttan) or private"
    )


class ApartmentToRepair(_Line):
    type: Literal["apartment_to_repair"] = "apartment_to_repair"
    apartment: ApartmentId


class ApartmentRepaired(_Line):
    type: Literal["apartment_repaired"] = "apartment_repaired"
    apartment: ApartmentId


class ReturnApartment(_Line):
    type: Literal["return_apartment"] = "return_apartment"
    apartment: ApartmentId


CaseStep = Annotated[
    Apply
    | StartAssessment
    | Decide
    | Offer
    | LandlordDecision
    | MoveIn
    | RecordVisit
    | CourseSession
    | RentArrears
    | RepaymentPlan
    | Complaint
    | ReferTakeover
    | TakeoverDecision
    | Assign
    | Exit
    | Plan
    | PlanReview
    | TemporaryPlacement
    | PlacementEnded
    | SupportInterrupted
    | SupportResumed
    | MoveApartment
    | RentPayment
    | SupportLevel
    | RenewLease,
    Field(discriminator="type"),
]
StockStep = Annotated[RegisterApartment | ReturnApartment | ApartmentToRepair | ApartmentRepaired,
                      Field(discriminator="type")]

ImportLine = Annotated[
    ApplyLine
    | StartAssessment
    | Decide
    | Offer
    | LandlordDecision
    | MoveIn
    | RecordVisit
    | CourseSession
    | RentArrears
    | RepaymentPlan
    | Complaint
    | ReferTakeover
    | TakeoverDecision
    | Assign
    | Exit
    | Plan
    | PlanReview
    | TemporaryPlacement
    | PlacementEnded
    | SupportInterrupted
    | SupportResumed
    | MoveApartment
    | RentPayment
    | SupportLevel
    | RenewLease
    | RegisterApartment
    | ReturnApartment
    | ApartmentToRepair
    | ApartmentRepaired,
    Field(discriminator="type"),
]
import_line_adapter: TypeAdapter[ImportLine] = TypeAdapter(ImportLine)

# The free text of each step, as paths (`reviews.note`: the note of every review): the front
# door seals these with the client's key before the step goes to Temporal. A test checks
# that every `Text` field of every step is named here.
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "decide": ("reason",),
    "landlord_decision": ("reason",),
    "takeover_decision": ("reason",),
    "complaint": ("note",),
    "plan": ("goal", "sub_goals.goal"),
    "plan_review": ("reviews.note",),
}

CASE_COMMANDS: tuple[str, ...] = (
    "apply",
    "start_assessment",
    "decide",
    "offer",
    "landlord_decision",
    "move_in",
    "record_visit",
    "course_session",
    "rent_arrears",
    "repayment_plan",
    "complaint",
    "refer_takeover",
    "takeover_decision",
    "assign",
    "exit",
    "plan",
    "plan_review",
    "temporary_placement",
    "placement_ended",
    "support_interrupted",
    "support_resumed",
    "move_apartment",
    "rent_payment",
    "support_level",
    "renew_lease",
)
