"""A municipality's policy: the periods the law and local practice set.

The defaults are the periods in DOMAIN.md (the seeds' municipalities); each municipality
sets its own in a JSON file (`HOUSING_CHAIN_POLICY_FILE`). Pure pydantic, so workflow code
can use it to compute timers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The visit rules every programme has, named as the policy's global settings (which stay the
# rules of workflows started before "case-file-v3").
VISIT_RULES = ("weekly_visits_months", "weekly_visit_days", "monthly_visit_months",
               "follow_up_months")
# The coded reasons (DOMAIN.md, the seeds: a landlord may refuse a tenant it had problems with;
# the takeover needs a credit check and references, rent paid on time, no complaints; a denial
# when the need is met otherwise). Each list ends with `other`, the code of a line that gives
# only the free-text `reason` (lines written before the codes).
DEFAULT_REASON_CODES: dict[str, list[str]] = {
    "landlord": ["rent_history", "references", "household_size", "disturbance", "other"],
    "takeover": ["arrears", "complaints", "references", "credit_check", "other"],
    "denial": ["not_homeless", "other_support_suffices", "own_means", "other"],
}


# the values of domain.commands.Programme (tests/test_calendar.py keeps the two equal)
PROGRAMMES = ("training_apartment", "housing_first", "municipal_contract")


class ProgrammeRules(BaseModel):
    """The follow-up rules of one programme (training apartment, Housing First, municipal
    contract): support visits weekly at first, then at the monthly interval; a follow-up
    meeting; optionally a technical inspection of the apartment and a coordinator meeting for
    the whole tenancy (Housing First: weekly, and an inspection every three months)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekly_visits_months: int = Field(3, ge=0, le=24, description="weekly visits after move-in")
    weekly_visit_days: int = Field(7, ge=1, le=31)
    monthly_visit_months: int = Field(1, ge=1, le=6, description="visit interval afterwards")
    follow_up_months: int = Field(3, ge=1, le=12)
    inspection_months: int | None = Field(
        None, ge=1, le=24, description="a technical inspection every this many months; null: none")
    coordinator_meeting_days: int | None = Field(
        None, ge=1, le=92, description="a coordinator meeting every this many days for the whole "
        "tenancy; null: none")


# What the programmes add to the global visit rules by default (Housing First, DOMAIN.md).
PROGRAMME_EXTRAS: dict[str, dict[str, int | None]] = {
    "training_apartment": {},
    "housing_first": {"coordinator_meeting_days": 7, "inspection_months": 3},
    "municipal_contract": {},
}


class Policy(BaseModel):
    # Running workflows carry the policy they started with: a field removed in a later
    # version must not break them (tests/test_replay.py), so unknown keys are ignored here
    # and refused only where a person writes them, in `load`.
    model_config = ConfigDict(extra="ignore", frozen=True)

    municipality: str = "default"
    time_zone: str = "Europe/Stockholm"
    weekly_visits_months: int = Field(3, ge=0, le=24, description="weekly visits after move-in")
    weekly_visit_days: int = Field(7, ge=1, le=31)
    monthly_visit_months: int = Field(1, ge=1, le=6, description="visit interval afterwards")
    follow_up_months: int = Field(3, ge=1, le=12)
    takeover_minimum_months: dict[str, int] = Field(
        default_factory=lambda: {
            "training_apartment": 12,
            "housing_first": 24,
            "municipal_contract": 12,
        }
    )
    country: str = Field("SE", pattern="^(SE|NO)$", description="public holidays: SE or NO")
    decision_warning_days: int = Field(
        30, ge=0, le=90, description="warn this many days before the three-month limit"
    )
    escalate_after_days: int = Field(
        7, ge=1, le=90, description="a reminder still unanswered after this escalates"
    )
    stall_days: dict[str, int | None] = Field(
        default_factory=lambda: {"assessment": 30, "offered": 14, "takeover_review": 30},
        description="a stage open longer than this is stalled; null switches the rule off",
    )
    reach_within_working_days: int = Field(
        1, ge=0, le=10, description="eviction notice: reach the person within this"
    )
    outreach_hours: int = Field(48, ge=1, le=240, description="a pilot at the door within")
    inactive_after_days: int = Field(
        90, ge=1, le=730,
        description="by-name list: a case with no contact this many days is inactive",
    )
    pilot_at_move_in: Literal["refuse", "warn"] = Field(
        "warn",
        description=(
            "a move-in into a training apartment without an assigned housing pilot: refused, "
            "or accepted with the missing pilot due from the move-in day (Vallentuna: the "
            "pilot is part of the package)"
        ),
    )
    plan_within_days: int = Field(
        30, ge=1, le=365, description="an individual plan is due this many days after move-in"
    )
    identity_retention_years: int = Field(
        5, ge=1, le=100,
        description=(
            "gallring: a client's identity is erased this many years after the last entry of "
            "their last case, once all their cases are closed"
        ),
    )
    support_levels: dict[int, str] = Field(
        default_factory=lambda: {1: "intensive follow-up", 2: "regular follow-up",
                                 3: "light follow-up", 4: "independent living"},
        description="the support levels of the four-level model (Kongsvinger): level -> name",
    )
    reason_codes: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_REASON_CODES.items()},
        description="the coded reasons per kind (landlord, takeover, denial); a line without a "
        "reason_code is coded `other`",
    )
    refuse_referral_with_warnings_within_months: int | None = Field(
        None, ge=1, le=60,
        description="refer_takeover is refused while a warning (anmodan om rättelse) lies "
        "within this many months; null: off",
    )
    programmes: dict[str, ProgrammeRules] = Field(
        default_factory=dict,
        description="follow-up rules per programme; a programme not given gets the global "
        "visit settings (and Housing First its weekly coordinator meeting and inspection every "
        "three months)",
    )
    lease_warning_days: int = Field(
        60, ge=1, le=365, description="a time-limited lease is due for renewal this many days "
        "before its end",
    )
    catch_up_delay_seconds: int = Field(
        120,
        ge=0,
        description=(
            "a deadline already past when a step arrives (an import of older cases) is "
            "raised only after the case has been quiet this long, so the rest of the "
            "import can arrive first"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _programme_defaults(cls, data: object) -> object:
        """Each programme's rules: the global visit settings, what the programme adds by
        default, then what the municipality sets for it (so a policy that only changes the
        global settings changes every programme's, as before)."""
        if not isinstance(data, dict):
            return data
        given = data.get("programmes") or {}
        base = {k: data[k] for k in VISIT_RULES if k in data}
        programmes: dict[str, object] = {}
        for name in {**PROGRAMME_EXTRAS, **given}:
            own = given.get(name, {})
            if isinstance(own, ProgrammeRules):
                programmes[name] = own
                continue
            programmes[name] = {**base, **PROGRAMME_EXTRAS.get(name, {}), **own}
        return {**data, "programmes": programmes}

    def global_rules(self) -> ProgrammeRules:
        """The global visit settings as rules (workflows started before "case-file-v3")."""
        return ProgrammeRules(**{k: getattr(self, k) for k in VISIT_RULES})

    def rules(self, programme: str | None) -> ProgrammeRules:
        """The follow-up rules of a programme; the global ones for a programme not listed."""
        return self.programmes.get(programme or "") or self.global_rules()

    def reason_codes_for(self, kind: str) -> list[str]:
        return self.reason_codes.get(kind) or DEFAULT_REASON_CODES.get(kind, ["other"])

    def takeover_minimum(self, programme: str) -> int:
        return self.takeover_minimum_months.get(programme, 12)

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        if not path:
            return cls()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"policy file {path}: {exc}") from exc
        unknown = sorted(set(data) - set(cls.model_fields)) if isinstance(data, dict) else []
        if unknown:
            raise ValueError(f"policy file {path}: unknown setting(s) {', '.join(unknown)}")
        for setting in ("programmes", "takeover_minimum_months"):
            given = data.get(setting)
            strange = sorted(set(given) - set(PROGRAMMES)) if isinstance(given, dict) else []
            if strange:
                raise ValueError(f"policy file {path}: {setting}: unknown programme(s) "
                                 f"{', '.join(strange)}; the programmes are "
                                 f"{', '.join(PROGRAMMES)}")
        return cls.model_validate(data)
