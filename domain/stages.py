"""The stages of a case and which steps each allows: the transition table as plain data.

Pure (no eventsourcing), so the workflow's update validator refuses a step with the same
words the aggregate would use.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from domain.errors import N_, InvalidDate, StepNotAllowed


class Stage(StrEnum):
    APPLIED = "applied"
    ASSESSMENT = "assessment"
    WAITING = "waiting"
    OFFERED = "offered"
    APPROVED = "approved"
    TRAINING = "training"
    TAKEOVER_REVIEW = "takeover_review"
    TAKEOVER_APPROVED = "takeover_approved"
    CLOSED = "closed"


STAGE_LABELS = {
    Stage.APPLIED: N_("registered as an application"),
    Stage.ASSESSMENT: N_("under assessment"),
    Stage.WAITING: N_("waiting for an apartment"),
    Stage.OFFERED: N_("offered an apartment, awaiting the landlord's approval"),
    Stage.APPROVED: N_("approved by the landlord, awaiting move-in"),
    Stage.TRAINING: N_("in the training phase"),
    Stage.TAKEOVER_REVIEW: N_("referred to the landlord for takeover"),
    Stage.TAKEOVER_APPROVED: N_("approved for takeover of the lease"),
    Stage.CLOSED: N_("closed"),
}

IN_HOME = (Stage.TRAINING, Stage.TAKEOVER_REVIEW, Stage.TAKEOVER_APPROVED)
GRANTED_NOT_MOVED_IN = (Stage.WAITING, Stage.OFFERED, Stage.APPROVED)
ROLES = ("caseworker", "housing_pilot")

# The case file's steps (the issue "The case file the municipalities describe"): the plan is
# made and reviewed from the grant on; the rest follow the tenancy.
CASE_FILE_WAITING = ("plan", "plan_review", "temporary_placement", "placement_ended")
CASE_FILE_IN_HOME = ("plan", "plan_review", "placement_ended", "support_interrupted",
                     "support_resumed", "rent_payment", "support_level", "renew_lease")

ALLOWED: dict[Stage, tuple[str, ...]] = {
    Stage.APPLIED: ("start_assessment", "assign", "exit"),
    Stage.ASSESSMENT: ("decide", "assign", "exit"),
    Stage.WAITING: ("offer", "course_session", "assign", "exit", *CASE_FILE_WAITING),
    Stage.OFFERED: ("landlord_decision", "course_session", "assign", "exit",
                    *CASE_FILE_WAITING),
    Stage.APPROVED: ("move_in", "course_session", "assign", "exit", *CASE_FILE_WAITING),
    Stage.TRAINING: (
        "record_visit", "course_session", "rent_arrears", "repayment_plan", "complaint",
        "refer_takeover", "assign", "exit", *CASE_FILE_IN_HOME, "move_apartment",
    ),
    Stage.TAKEOVER_REVIEW: (
        "takeover_decision", "record_visit", "course_session", "rent_arrears",
        "repayment_plan", "complaint", "assign", "exit", *CASE_FILE_IN_HOME,
    ),
    Stage.TAKEOVER_APPROVED: (
        "record_visit", "course_session", "rent_arrears", "repayment_plan", "complaint",
        "assign", "exit", *CASE_FILE_IN_HOME,
    ),
    Stage.CLOSED: (),
}

LEAVING = ("own_housing", "withdrawn", "deceased", "moved_away")
EXITS: dict[Stage, tuple[str, ...]] = {
    Stage.APPLIED: LEAVING,
    Stage.ASSESSMENT: LEAVING,
    Stage.WAITING: LEAVING,
    Stage.OFFERED: LEAVING,
    Stage.APPROVED: LEAVING,
    Stage.TRAINING: ("terminated", *LEAVING),
    Stage.TAKEOVER_REVIEW: ("terminated", *LEAVING),
    Stage.TAKEOVER_APPROVED: ("first_hand_lease", "terminated", *LEAVING),
    Stage.CLOSED: (),
}

NEEDS = {
    "apply": N_("needs a new case id"),
    "start_assessment": N_("needs a registered application"),
    "decide": N_("needs an assessment"),
    "offer": N_("needs a granted decision and no open offer"),
    "landlord_decision": N_("needs an open offer"),
    "move_in": N_("needs an offer approved by the landlord"),
    "record_visit": N_("needs the client to live in the training apartment"),
    "course_session": N_("needs a granted decision"),
    "rent_arrears": N_("needs a tenancy in the training apartment"),
    "repayment_plan": N_("needs a tenancy in the training apartment"),
    "complaint": N_("needs a tenancy in the training apartment"),
    "refer_takeover": N_("needs the training phase"),
    "takeover_decision": N_("needs a referral for takeover"),
    "assign": N_("needs an open case"),
    "exit": N_("needs an open case"),
    "plan": N_("needs a granted decision"),
    "plan_review": N_("needs a granted decision and a plan"),
    "temporary_placement": N_("needs a granted decision, not yet moved in"),
    "placement_ended": N_("needs a granted decision"),
    "support_interrupted": N_("needs a tenancy in the training apartment"),
    "support_resumed": N_("needs a tenancy in the training apartment"),
    "move_apartment": N_("needs the training phase"),
    "rent_payment": N_("needs a tenancy in the training apartment"),
    "support_level": N_("needs a tenancy in the training apartment"),
    "renew_lease": N_("needs a tenancy in the training apartment"),
}


def exit_refusal(stage: Stage, destination: str) -> str | None:
    """Why an exit to `destination` cannot happen from `stage`, or None when it can."""
    if destination in EXITS[stage]:
        return None
    needs = (
        N_("needs a takeover approved by the landlord")
        if destination == "first_hand_lease"
        else N_("needs a tenancy in the training apartment")
        if destination == "terminated"
        else N_("is not an exit")
    )
    return N_("to {destination} {needs}; exits now: {exits}").format(
        destination=destination, needs=needs, exits=", ".join(EXITS[stage]))


def pilot_refusal(programme: str | None, housing_pilot: str | None, pilot_at_move_in: str) -> str | None:
    """Why a move-in is refused for want of a housing pilot, or None.

    Where the pilot is part of the package (Vallentuna; policy `pilot_at_move_in: refuse`) a
    client does not move into a training apartment alone; with `warn` the move-in goes ahead
    and the missing pilot is due from the move-in day (domain/due.py `pilot_missing`)."""
    if pilot_at_move_in != "refuse" or programme != "training_apartment" or housing_pilot:
        return None
    return N_("needs an assigned housing pilot (policy pilot_at_move_in: refuse); "
              "assign one first (assign --role housing_pilot)")


def check_step(case_id: str, stage: Stage, stage_label: str, command: str, on: date, today: date,
               last_on: date | None, destination: str | None = None) -> None:
    """The one check of a step against where the case stands: the stage allows it (and its
    exit destination), its date is not after today nor before the case's last step.

    The aggregate runs it before every command; the workflow's update validator runs it on
    its snapshot, so a refused step never enters the workflow history, with the same words.
    """
    if command not in ALLOWED[stage]:
        raise StepNotAllowed(refusal(case_id, stage, stage_label, command, NEEDS[command]))
    if destination is not None:
        why = exit_refusal(stage, destination)
        if why is not None:
            raise StepNotAllowed(refusal(case_id, stage, stage_label, "exit", why, False))
    check_dates(case_id, command, on, today, last_on)


def refusal(case_id: str, stage: Stage, stage_label: str, command: str, why: str,
            list_allowed: bool = True) -> str:
    """A step refused where the case stands: the case, its stage, the step and why; with the
    steps the stage allows when another step is what the user needs."""
    if not list_allowed:
        return N_("case {case} is {stage}: {command} {why}").format(
            case=case_id, stage=stage_label, command=command, why=why)
    return N_("case {case} is {stage}: {command} {why}; allowed now: {allowed}").format(
        case=case_id, stage=stage_label, command=command, why=why,
        allowed=", ".join(ALLOWED[stage]) or N_("nothing (the case is closed)"))


def closed_refusal(case_id: str, outcome: str | None) -> str:
    """A step on a case whose workflow has ended with the case."""
    return N_("case {case} is closed ({outcome}): no further steps are allowed").format(
        case=case_id, outcome=outcome)


def check_dates(case_id: str, command: str, on: date, today: date, last_on: date | None) -> None:
    """A step's effective date is neither after today nor before the case's last step."""
    if on > today:
        raise InvalidDate(N_("case {case}: {command} on {on} is after today ({today})").format(
            case=case_id, command=command, on=on, today=today))
    if last_on is not None and on < last_on:
        raise InvalidDate(N_("case {case}: {command} on {on} is before the case's last step on "
                             "{last_on}").format(case=case_id, command=command, on=on,
                                                 last_on=last_on))
