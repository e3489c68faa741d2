"""The one list of steps: what each step is called, what it acts on and who may take it.

Dispatch in the application service, the command line (one command per entry, named by
`cli_name`), the HTTP API and the import format all read this table, so a new step is one
row here, one model in `domain/commands.py` and one method on the aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Target = Literal["case", "stock", "notice"]


@dataclass(frozen=True)
class StepSpec:
    type: str
    target: Target
    summary: str
    # who may take the step, beyond the admin (see domain/access.py)
    roles: tuple[str, ...] = ("caseworker",)

    @property
    def cli_name(self) -> str:
        return self.type.replace("_", "-")


PILOT_STEPS = ("caseworker", "housing_pilot")
LANDLORD_STEPS = ("caseworker", "landlord")

STEPS: tuple[StepSpec, ...] = (
    StepSpec("apply", "case", "Register an application (ansökan) and open the case."),
    StepSpec("start_assessment", "case", "Start the investigation (utredning)."),
    StepSpec("decide", "case", "Decide the application (biståndsbeslut): granted with a "
             "programme, or denied."),
    StepSpec("offer", "case", "Offer a vacant apartment from the stock."),
    StepSpec("landlord_decision", "case", "The landlord approves or refuses the candidate.",
             LANDLORD_STEPS),
    StepSpec("move_in", "case", "The client moves into the training apartment (first night "
             "there), optionally on a lease that ends (lease_end)."),
    StepSpec("record_visit", "case", "A support visit (home_visit, follow_up, inspection, "
             "coordinator_meeting), with the monthly checklist.", PILOT_STEPS),
    StepSpec("course_session", "case", "A housing-course session (boendekurs, 1–4) attended.",
             PILOT_STEPS),
    StepSpec("rent_arrears", "case", "Rent arrears reported (the caseworker must be told at "
             "once)."),
    StepSpec("repayment_plan", "case", "A repayment plan agreed for the outstanding arrears, "
             "optionally with instalments (amount, due date each)."),
    StepSpec("rent_payment", "case", "A payment against the rent arrears (they go down, never "
             "below zero)."),
    StepSpec("complaint", "case", "A disturbance complaint, or a warning (kind warning: anmodan "
             "om rättelse)."),
    StepSpec("refer_takeover", "case", "Refer the client to the landlord for takeover of the "
             "lease (övertagande)."),
    StepSpec("takeover_decision", "case", "The landlord's takeover decision, optionally with the "
             "credit check and references; refused with a coded reason.", LANDLORD_STEPS),
    StepSpec("assign", "case", "Assign (or reassign) the responsible caseworker or the housing "
             "pilot."),
    StepSpec("exit", "case", "Close the case with its exit destination."),
    StepSpec("plan", "case", "The individual plan (individuell plan): the overall goal and "
             "sub-goals, each with who is responsible and a follow-up date."),
    StepSpec("plan_review", "case", "A review of the plan: each sub-goal met, partly or not met, "
             "with a note."),
    StepSpec("temporary_placement", "case", "Temporary accommodation while waiting (hotel, "
             "shelter, camping_cabin, family, other), from, to, cost per night."),
    StepSpec("placement_ended", "case", "A temporary placement ended."),
    StepSpec("support_interrupted", "case", "The support is interrupted (hospital, prison, "
             "treatment, other); not resumed within three months it is reported to the "
             "inspectorate each quarter.", PILOT_STEPS),
    StepSpec("support_resumed", "case", "The interrupted support is resumed.", PILOT_STEPS),
    StepSpec("support_level", "case", "The support level (1-4, the four-level model; names in "
             "the policy's support_levels) from this date.", PILOT_STEPS),
    StepSpec("move_apartment", "case", "Move to another (vacant) apartment of the programme "
             "(omflyttning); the move-in date stays the first one."),
    StepSpec("renew_lease", "case", "A time-limited lease renewed to a new last day (lease_end); "
             "answers the lease_renewal reminder."),
    StepSpec("register_apartment", "stock", "Add an apartment to the stock (lägenhetsbank)."),
    StepSpec("apartment_to_repair", "stock", "A vacant apartment goes under repair (it cannot "
             "be offered until repaired).", LANDLORD_STEPS),
    StepSpec("apartment_repaired", "stock", "An apartment under repair is vacant again.",
             LANDLORD_STEPS),
    StepSpec("return_apartment", "stock", "Return a vacant apartment to its landlord (it leaves "
             "the stock)."),
)
BY_TYPE: dict[str, StepSpec] = {s.type: s for s in STEPS}
CASE_STEP_TYPES = tuple(s.type for s in STEPS if s.target == "case")
STOCK_STEP_TYPES = tuple(s.type for s in STEPS if s.target == "stock")

REQUIRED = ("on", "actor", "id")


def missing_fields(step: Any) -> list[str]:
    """Which of a step's effective date, actor and command id are still unset.

    Interfaces fill in defaults; the aggregate's service and the workflows refuse a step
    that arrives without them (the one check, used everywhere)."""
    return [f for f in REQUIRED if getattr(step, f, None) is None]


def target_of(step: Any) -> str:
    """What a step acts on, for messages: its case, apartment or notice id."""
    return (getattr(step, "case", None) or getattr(step, "notice", None)
            or getattr(step, "apartment", None) or "")
