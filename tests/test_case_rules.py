"""The case's rules, on the aggregate itself: which step may follow which, and when.

A refused step raises a DomainError that names the case, where it stands and what is
allowed, and triggers no event: the aggregate's version is unchanged and nothing is pending.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.calendar import add_months, unexecuted_deadline
from domain.case import Case
from domain.commands import Destination
from domain.errors import DomainError, InvalidDate, StepNotAllowed
from domain.stages import ALLOWED, EXITS, NEEDS, STAGE_LABELS, Stage

START = date(2025, 1, 1)
TODAY = date(2027, 6, 30)
MOVE_IN = date(2025, 1, 6)
TAKEOVER_MINIMUM = 12
CHECKLIST = {"rent_paid": True, "home_insurance": True, "in_housing_queue": True}


class Driver:
    """Drives one case through its commands; each step dated one day after the last."""

    def __init__(self, case_id: str = "c-17") -> None:
        self.case_id = case_id
        self.day = START
        self.n = 0
        self.case = Case.register(
            case_id, "k-1", "psychiatric_disability", "Norrmalm", 1, 0, "without_housing",
            "self", **self.kw(on=START),
        )
        self.events = list(self.case.collect_events())

    def kw(self, on: date | None = None, actor: str = "cw-anna") -> dict[str, Any]:
        self.n += 1
        if on is None:
            self.day += timedelta(days=1)
            on = self.day
        return {"on": on, "actor": actor, "command_id": f"{self.case_id}:{self.n}",
                "today": TODAY}

    def do(self, command: str, *args: Any, on: date | None = None, actor: str = "cw-anna") -> Any:
        events_before = self.case.version
        getattr(self.case, command)(*args, **self.kw(on=on, actor=actor))
        events = self.case.collect_events()
        assert self.case.version == events_before + len(events)
        self.events += events
        if on is not None:
            self.day = max(self.day, on)
        return events

    def refused(
        self, error: type[DomainError], command: str, *args: Any, on: date | None = None,
    ) -> str:
        """Try a step that must be refused; check that it left no trace."""
        version, stage, last_on = self.case.version, self.case.stage, self.case.last_on
        day = self.day
        with pytest.raises(error) as caught:
            getattr(self.case, command)(*args, **self.kw(on=on))
        self.day = day
        assert self.case.version == version
        assert self.case.pending_events == []
        assert (self.case.stage, self.case.last_on) == (stage, last_on)
        return str(caught.value)


def drive(stage: Stage, case_id: str = "c-17") -> Driver:
    """A case walked to `stage` the ordinary way (closed: withdrawn while waiting)."""
    d = Driver(case_id)
    path: list[tuple[Stage, Callable[[Driver], Any]]] = [
        (Stage.ASSESSMENT, lambda d: d.do("start_assessment")),
        (Stage.WAITING, lambda d: d.do("decide", "granted", "training_apartment", None)),
        (Stage.OFFERED, lambda d: d.do("offer", "apt-1")),
        (Stage.APPROVED, lambda d: d.do("landlord_decision", True, None)),
        (Stage.TRAINING, lambda d: d.do("move_in", "apt-1", on=MOVE_IN)),
        (Stage.TAKEOVER_REVIEW,
         lambda d: d.do("refer_takeover", TAKEOVER_MINIMUM,
                        on=add_months(MOVE_IN, TAKEOVER_MINIMUM))),
        (Stage.TAKEOVER_APPROVED, lambda d: d.do("takeover_decision", True, None)),
    ]
    if stage is Stage.CLOSED:
        path = path[:2] + [(Stage.CLOSED, lambda d: d.do("exit", "withdrawn"))]
    for reached, move in path:
        if d.case.stage is stage:
            break
        move(d)
        assert d.case.stage is reached
    assert d.case.stage is stage
    return d


def allowed_text(stage: Stage) -> str:
    return ", ".join(ALLOWED[stage]) or "nothing (the case is closed)"


# --- the matrix: every command in every stage ----------------------------------------------

# Valid arguments for each command, for a case in a stage that allows it.
CALLS: dict[str, Callable[[Case], tuple[Any, ...]]] = {
    "start_assessment": lambda c: (),
    "decide": lambda c: ("granted", "housing_first", None),
    "offer": lambda c: ("apt-2",),
    "landlord_decision": lambda c: (True, None),
    "move_in": lambda c: (c.apartment or "apt-1",),
    "record_visit": lambda c: ("home_visit", CHECKLIST),
    "course_session": lambda c: (1,),
    "rent_arrears": lambda c: (Decimal("1500.00"),),
    "repayment_plan": lambda c: (),
    "complaint": lambda c: ("noise at night",),
    "refer_takeover": lambda c: (TAKEOVER_MINIMUM,),
    "takeover_decision": lambda c: (True, None),
    "assign": lambda c: ("housing_pilot", "bolots.new"),
    "exit": lambda c: ("own_housing",),
    "plan": lambda c: ("own housing", [{"id": "g1", "goal": "pay the rent", "responsible":
                                         "cw-anna", "follow_up": "2027-01-01"}]),
    "plan_review": lambda c: ([{"sub_goal": "g1", "result": "met", "note": ""}],),
    "temporary_placement": lambda c: ("tp-9", "hotel", c.last_on, None, Decimal("950")),
    "placement_ended": lambda c: ("tp-1", c.last_on + timedelta(days=1)),
    "support_interrupted": lambda c: ("hospital",),
    "support_resumed": lambda c: (),
    "move_apartment": lambda c: ("apt-2",),
    "rent_payment": lambda c: (Decimal("500"),),
    "support_level": lambda c: (2, {1: "a", 2: "b", 3: "c", 4: "d"}),
    "renew_lease": lambda c: (date(2027, 1, 31),),
}
EVENT = {
    "start_assessment": "AssessmentStarted",
    "decide": "Granted",
    "offer": "Offered",
    "landlord_decision": "LandlordApproved",
    "move_in": "MovedIn",
    "record_visit": "VisitRecorded",
    "course_session": "CourseSessionAttended",
    "rent_arrears": "RentArrearsRecorded",
    "repayment_plan": "RepaymentPlanAgreed",
    "complaint": "ComplaintRecorded",
    "refer_takeover": "TakeoverReferred",
    "takeover_decision": "TakeoverApproved",
    "assign": "Assigned",
    "exit": "Exited",
    "plan": "PlanMade",
    "plan_review": "PlanReviewed",
    "temporary_placement": "TemporaryPlacementStarted",
    "placement_ended": "PlacementEnded",
    "support_interrupted": "SupportInterrupted",
    "support_resumed": "SupportResumed",
    "move_apartment": "ApartmentMoved",
    "rent_payment": "RentPaymentRecorded",
    "support_level": "SupportLevelSet",
    "renew_lease": "LeaseRenewed",
}
NEXT = {
    "start_assessment": Stage.ASSESSMENT,
    "decide": Stage.WAITING,
    "offer": Stage.OFFERED,
    "landlord_decision": Stage.APPROVED,
    "move_in": Stage.TRAINING,
    "refer_takeover": Stage.TAKEOVER_REVIEW,
    "takeover_decision": Stage.TAKEOVER_APPROVED,
    "exit": Stage.CLOSED,
}

ALLOWED_STEPS = [(s, c) for s in Stage for c in ALLOWED[s]]
REFUSED_STEPS = [(s, c) for s in Stage for c in CALLS if c not in ALLOWED[s]]


def test_the_matrix_covers_every_case_command():
    assert set(CALLS) == set(NEEDS) - {"apply"}
    assert all(set(ALLOWED[s]) <= set(CALLS) for s in Stage)
    assert ALLOWED[Stage.CLOSED] == () and EXITS[Stage.CLOSED] == ()


@pytest.mark.parametrize(("stage", "command"), ALLOWED_STEPS,
                         ids=[f"{s}-{c}" for s, c in ALLOWED_STEPS])
def test_allowed_step_is_accepted(stage, command):
    d = drive(stage)
    if command in ("repayment_plan", "rent_payment"):
        d.do("rent_arrears", Decimal("800"))
    if command == "plan_review":
        d.do("plan", *CALLS["plan"](d.case))
    if command == "placement_ended":
        if "temporary_placement" not in ALLOWED[stage]:
            pytest.skip("a placement starts while waiting: tests/test_case_file.py ends one "
                        "after the move-in")
        d.do("temporary_placement", "tp-1", "shelter", d.case.last_on, None, None)
    if command == "support_resumed":
        d.do("support_interrupted", "treatment")
    if command == "renew_lease":
        pytest.skip("needs a time-limited lease from the move-in: tests/test_case_file.py "
                    "renews one")
    on = None
    if command == "refer_takeover":
        on = max(d.day, add_months(MOVE_IN, TAKEOVER_MINIMUM))
    events = d.do(command, *CALLS[command](d.case), on=on)
    assert [type(e).__name__ for e in events] == [EVENT[command]]
    assert d.case.stage is NEXT.get(command, stage)
    assert d.case.last_on == events[0].on


@pytest.mark.parametrize(("stage", "command"), REFUSED_STEPS,
                         ids=[f"{s}-{c}" for s, c in REFUSED_STEPS])
def test_step_not_allowed_in_a_stage_is_refused_and_names_what_is_allowed(stage, command):
    d = drive(stage)
    message = d.refused(StepNotAllowed, command, *CALLS[command](d.case))
    label = d.case.stage_label
    assert message == (
        f"case c-17 is {label}: {command} {NEEDS[command]}; allowed now: {allowed_text(stage)}"
    )


EXIT_MATRIX = [(s, dest) for s in Stage if s is not Stage.CLOSED for dest in Destination]


@pytest.mark.parametrize(("stage", "destination"), EXIT_MATRIX,
                         ids=[f"{s}-{dest}" for s, dest in EXIT_MATRIX])
def test_exit_destinations_depend_on_the_stage(stage, destination):
    d = drive(stage)
    if destination.value in EXITS[stage]:
        [event] = d.do("exit", destination.value)
        assert type(event).__name__ == "Exited"
        assert d.case.stage is Stage.CLOSED
        assert d.case.outcome == destination.value
        assert d.case.closed_on == event.on
        assert d.case.stage_label == f"closed ({destination.value})"
    else:
        message = d.refused(StepNotAllowed, "exit", destination.value)
        assert message.startswith(f"case c-17 is {STAGE_LABELS[stage]}: exit to {destination}")
        assert message.endswith(f"exits now: {', '.join(EXITS[stage])}")


# --- application and assessment --------------------------------------------------------------


def test_a_new_application_is_registered():
    d = Driver()
    case = d.case
    assert case.stage is Stage.APPLIED
    assert case.stage_label == "registered as an application"
    assert (case.applied_on, case.last_on) == (START, START)
    assert case.household == (1, 0)
    assert case.caseworker == "cw-anna"
    assert case.allowed() == ["start_assessment", "assign", "exit"]
    assert case.is_open


def test_application_dated_after_today_is_refused():
    with pytest.raises(InvalidDate, match=r"case c-9: apply on 2027-07-01 is after today"):
        Case.register("c-9", "k-9", "elderly", "Norr", 1, 0, "at_risk", "self",
                      on=TODAY + timedelta(days=1), actor="cw", command_id="x", today=TODAY)


def test_starting_the_assessment_moves_an_application_to_assessment():
    d = drive(Stage.APPLIED)
    d.do("start_assessment")
    assert d.case.stage is Stage.ASSESSMENT


def test_cannot_decide_before_the_assessment_has_started():
    d = drive(Stage.APPLIED)
    message = d.refused(StepNotAllowed, "decide", "granted", "training_apartment", None)
    assert message == (
        "case c-17 is registered as an application: decide needs an assessment; "
        "allowed now: start_assessment, assign, exit"
    )


def test_an_application_can_be_withdrawn():
    d = drive(Stage.APPLIED)
    d.do("exit", "withdrawn")
    assert (d.case.stage, d.case.outcome) == (Stage.CLOSED, "withdrawn")


# --- the decision ----------------------------------------------------------------------------


def test_grant_puts_the_client_on_the_waiting_list_from_the_decision_date():
    d = drive(Stage.ASSESSMENT)
    [event] = d.do("decide", "granted", "housing_first", None)
    assert d.case.stage is Stage.WAITING
    assert d.case.programme == "housing_first"
    assert d.case.decision_date == event.on


def test_denial_closes_the_case():
    d = drive(Stage.ASSESSMENT)
    [event] = d.do("decide", "denied", None, "not within the target group")
    assert type(event).__name__ == "Denied"
    assert event.reason == "not within the target group"
    assert d.case.stage is Stage.CLOSED
    assert d.case.outcome == "denied"
    assert d.case.decision_date == d.case.closed_on == event.on
    assert d.case.stage_label == "closed (denied)"
    assert not d.case.is_open


def without_allowed(message: str) -> str:
    """The refusal without its closing 'allowed now: ...' list (checked elsewhere)."""
    assert "; allowed now: " in message
    return message.split("; allowed now: ")[0]


def test_grant_needs_a_programme():
    d = drive(Stage.ASSESSMENT)
    message = d.refused(StepNotAllowed, "decide", "granted", None, None)
    assert without_allowed(message) == "case c-17 is under assessment: decide needs a programme when granted"


def test_denial_needs_a_reason():
    d = drive(Stage.ASSESSMENT)
    message = d.refused(StepNotAllowed, "decide", "denied", None, "")
    assert without_allowed(message) == "case c-17 is under assessment: decide needs a reason when denied"


def test_denial_takes_no_programme():
    d = drive(Stage.ASSESSMENT)
    message = d.refused(StepNotAllowed, "decide", "denied", "housing_first", "no need")
    assert without_allowed(message) == "case c-17 is under assessment: decide takes no programme when denied"


def test_decision_needs_granted_or_denied():
    d = drive(Stage.ASSESSMENT)
    message = d.refused(StepNotAllowed, "decide", "postponed", None, None)
    assert "decide needs outcome granted or denied, not 'postponed'" in message


def test_a_case_cannot_be_decided_twice():
    d = drive(Stage.WAITING)
    message = d.refused(StepNotAllowed, "decide", "denied", None, "changed our mind")
    assert message == (
        "case c-17 is waiting for an apartment: decide needs an assessment; "
        "allowed now: offer, course_session, assign, exit"
        ", plan, plan_review, temporary_placement, placement_ended"
    )


# --- waiting, offer, landlord approval, move-in --------------------------------------------


def test_offer_reserves_an_apartment_for_the_case():
    d = drive(Stage.WAITING)
    [event] = d.do("offer", "apt-7")
    assert event.apartment == "apt-7"
    assert (d.case.stage, d.case.apartment) == (Stage.OFFERED, "apt-7")


def test_cannot_make_a_second_offer_while_one_is_open():
    d = drive(Stage.OFFERED)
    message = d.refused(StepNotAllowed, "offer", "apt-2")
    assert message == (
        "case c-17 is offered an apartment, awaiting the landlord's approval: offer needs a "
        "granted decision and no open offer; allowed now: landlord_decision, course_session, assign, exit"
        ", plan, plan_review, temporary_placement, placement_ended"
    )


def test_cannot_offer_before_a_decision():
    d = drive(Stage.ASSESSMENT)
    message = d.refused(StepNotAllowed, "offer", "apt-2")
    assert "offer needs a granted decision and no open offer" in message
    assert message.endswith("allowed now: decide, assign, exit")


def test_cannot_move_in_before_landlord_approves():
    d = drive(Stage.WAITING)
    message = d.refused(StepNotAllowed, "move_in", "apt-1")
    assert message == (
        "case c-17 is waiting for an apartment: move_in needs an offer approved by the "
        "landlord; allowed now: offer, course_session, assign, exit"
        ", plan, plan_review, temporary_placement, placement_ended"
    )


def test_cannot_move_in_while_the_landlord_has_not_decided():
    d = drive(Stage.OFFERED)
    message = d.refused(StepNotAllowed, "move_in", "apt-1")
    assert message == (
        "case c-17 is offered an apartment, awaiting the landlord's approval: move_in needs an "
        "offer approved by the landlord; allowed now: landlord_decision, course_session, assign, exit"
        ", plan, plan_review, temporary_placement, placement_ended"
    )


def test_landlord_decision_needs_an_open_offer():
    d = drive(Stage.WAITING)
    message = d.refused(StepNotAllowed, "landlord_decision", True, None)
    assert "landlord_decision needs an open offer" in message


def test_landlord_approval_lets_the_client_move_in():
    d = drive(Stage.OFFERED)
    d.do("landlord_decision", True, None)
    assert d.case.stage is Stage.APPROVED
    assert d.case.allowed()[:4] == ["move_in", "course_session", "assign", "exit"]


def test_landlord_refusal_puts_the_client_back_on_the_waiting_list():
    d = drive(Stage.OFFERED)
    [event] = d.do("landlord_decision", False, "earlier disturbances")
    assert type(event).__name__ == "LandlordRefused"
    assert (event.apartment, event.reason) == ("apt-1", "earlier disturbances")
    assert (d.case.stage, d.case.apartment) == (Stage.WAITING, None)
    d.do("offer", "apt-2")
    assert d.case.apartment == "apt-2"


def test_move_in_starts_the_training_phase_on_the_move_in_date():
    d = drive(Stage.APPROVED)
    [event] = d.do("move_in", "apt-1")
    assert event.apartment == "apt-1"
    assert d.case.stage is Stage.TRAINING
    assert d.case.move_in_date == event.on


def test_move_in_needs_the_apartment_that_was_offered():
    d = drive(Stage.APPROVED)
    message = d.refused(StepNotAllowed, "move_in", "apt-2")
    assert without_allowed(message) == (
        "case c-17 is approved by the landlord, awaiting move-in: move_in needs the apartment "
        "offered (apt-1), not apt-2"
    )


# --- the housing course ------------------------------------------------------------------


@pytest.mark.parametrize("stage", [s for s in Stage if "course_session" in ALLOWED[s]])
def test_housing_course_sessions_are_recorded_from_the_grant_until_the_case_closes(stage):
    d = drive(stage)
    for session in (1, 2, 3, 4):
        d.do("course_session", session)
    assert d.case.course_sessions == {1, 2, 3, 4}
    assert d.case.stage is stage


def test_course_session_needs_a_granted_decision():
    d = drive(Stage.ASSESSMENT)
    message = d.refused(StepNotAllowed, "course_session", 1)
    assert "course_session needs a granted decision" in message


def test_course_session_cannot_be_recorded_twice():
    d = drive(Stage.WAITING)
    d.do("course_session", 2)
    message = d.refused(StepNotAllowed, "course_session", 2)
    assert without_allowed(message) == (
        "case c-17 is waiting for an apartment: course_session session 2 is already recorded"
    )


def test_course_sessions_recorded_while_waiting_count_after_move_in():
    d = drive(Stage.WAITING)
    d.do("course_session", 1)
    d.do("offer", "apt-1")
    d.do("landlord_decision", True, None)
    d.do("move_in", "apt-1")
    message = d.refused(StepNotAllowed, "course_session", 1)
    assert "session 1 is already recorded" in message
    d.do("course_session", 2)
    assert d.case.course_sessions == {1, 2}


# --- the training phase --------------------------------------------------------------------


def test_home_visit_records_the_visit_and_the_checklist_but_assigns_no_pilot():
    d = drive(Stage.TRAINING)
    [event] = d.do("record_visit", "home_visit", CHECKLIST, actor="pilot-bo")
    assert event.checklist == CHECKLIST
    assert d.case.last_home_visit == d.case.last_checklist == event.on
    assert d.case.housing_pilot is None  # the pilot is assigned, not inferred from visits


def test_follow_up_and_inspection_are_recorded_apart_from_home_visits():
    d = drive(Stage.TRAINING)
    [follow_up] = d.do("record_visit", "follow_up", None)
    [inspection] = d.do("record_visit", "inspection", None)
    assert d.case.last_follow_up == follow_up.on
    assert d.case.last_inspection == inspection.on
    assert d.case.last_home_visit is None


def test_visits_need_the_client_to_live_in_the_training_apartment():
    d = drive(Stage.APPROVED)
    message = d.refused(StepNotAllowed, "record_visit", "home_visit", None)
    assert "record_visit needs the client to live in the training apartment" in message


def test_rent_arrears_accumulate_and_need_a_repayment_plan():
    d = drive(Stage.TRAINING)
    d.do("rent_arrears", Decimal("1200.50"))
    d.do("rent_arrears", Decimal("300"))
    assert d.case.arrears == Decimal("1500.50")
    assert d.case.arrears_without_plan
    [plan] = d.do("repayment_plan")
    assert plan.amount == Decimal("1500.50")
    assert not d.case.arrears_without_plan


@pytest.mark.parametrize("amount", [Decimal(0), Decimal("-10")])
def test_rent_arrears_need_an_amount_above_zero(amount):
    d = drive(Stage.TRAINING)
    message = d.refused(StepNotAllowed, "rent_arrears", amount)
    assert without_allowed(message) == (
        "case c-17 is in the training phase: rent_arrears needs an amount above zero"
    )


def test_rent_arrears_need_a_tenancy():
    d = drive(Stage.WAITING)
    message = d.refused(StepNotAllowed, "rent_arrears", Decimal("100"))
    assert "rent_arrears needs a tenancy in the training apartment" in message


def test_repayment_plan_needs_arrears_without_a_plan():
    d = drive(Stage.TRAINING)
    message = d.refused(StepNotAllowed, "repayment_plan")
    assert without_allowed(message) == (
        "case c-17 is in the training phase: repayment_plan needs rent arrears without a plan"
    )
    d.do("rent_arrears", Decimal("100"))
    d.do("repayment_plan")
    assert "needs rent arrears without a plan" in d.refused(StepNotAllowed, "repayment_plan")


def test_complaints_are_counted():
    d = drive(Stage.TRAINING)
    [event] = d.do("complaint", "loud music")
    d.do("complaint", "")
    assert event.note == "loud music"
    assert d.case.complaints == 2
    assert d.case.stage is Stage.TRAINING


def test_termination_ends_the_training_phase():
    d = drive(Stage.TRAINING)
    [event] = d.do("exit", "terminated")
    assert (event.destination, event.apartment) == ("terminated", "apt-1")
    assert (d.case.stage, d.case.outcome) == (Stage.CLOSED, "terminated")


def test_termination_needs_a_tenancy():
    d = drive(Stage.WAITING)
    message = d.refused(StepNotAllowed, "exit", "terminated")
    assert message == (
        "case c-17 is waiting for an apartment: exit to terminated needs a tenancy in the "
        "training apartment; exits now: own_housing, withdrawn, deceased, moved_away"
    )


# --- takeover ------------------------------------------------------------------------------


def test_takeover_referral_after_the_minimum_training_period():
    d = drive(Stage.TRAINING)
    earliest = add_months(MOVE_IN, TAKEOVER_MINIMUM)
    d.do("refer_takeover", TAKEOVER_MINIMUM, on=earliest)
    assert d.case.stage is Stage.TAKEOVER_REVIEW


def test_takeover_referral_needs_the_minimum_training_period():
    d = drive(Stage.TRAINING)
    earliest = add_months(MOVE_IN, TAKEOVER_MINIMUM)
    message = d.refused(
        StepNotAllowed, "refer_takeover", TAKEOVER_MINIMUM, on=earliest - timedelta(days=1)
    )
    assert without_allowed(message) == (
        "case c-17 is in the training phase: refer_takeover needs 12 months in the training "
        "apartment (from 2026-01-06)"
    )


def test_takeover_minimum_counts_from_the_move_in_date_with_month_end_clamping():
    d = drive(Stage.APPROVED)
    d.do("move_in", "apt-1", on=date(2025, 1, 31))
    message = d.refused(StepNotAllowed, "refer_takeover", 1, on=date(2025, 2, 27))
    assert "needs 1 months in the training apartment (from 2025-02-28)" in message
    d.do("refer_takeover", 1, on=date(2025, 2, 28))


def test_takeover_referral_refused_while_arrears_have_no_repayment_plan():
    d = drive(Stage.TRAINING)
    d.do("rent_arrears", Decimal("2400"))
    on = add_months(MOVE_IN, TAKEOVER_MINIMUM)
    message = d.refused(StepNotAllowed, "refer_takeover", TAKEOVER_MINIMUM, on=on)
    assert without_allowed(message) == (
        "case c-17 is in the training phase: refer_takeover needs good references: rent "
        "arrears have no repayment plan"
    )


def test_takeover_referral_allowed_once_a_repayment_plan_is_agreed():
    d = drive(Stage.TRAINING)
    d.do("rent_arrears", Decimal("2400"))
    d.do("repayment_plan")
    d.do("refer_takeover", TAKEOVER_MINIMUM, on=add_months(MOVE_IN, TAKEOVER_MINIMUM))
    assert d.case.stage is Stage.TAKEOVER_REVIEW


def test_takeover_referral_needs_the_training_phase():
    d = drive(Stage.APPROVED)
    message = d.refused(StepNotAllowed, "refer_takeover", 0)
    assert "refer_takeover needs the training phase" in message


def test_a_case_cannot_be_referred_for_takeover_twice():
    d = drive(Stage.TAKEOVER_REVIEW)
    message = d.refused(StepNotAllowed, "refer_takeover", TAKEOVER_MINIMUM)
    assert message.startswith("case c-17 is referred to the landlord for takeover: refer_takeover")


def test_takeover_decision_needs_a_referral():
    d = drive(Stage.TRAINING)
    message = d.refused(StepNotAllowed, "takeover_decision", True, None)
    assert "takeover_decision needs a referral for takeover" in message


def test_takeover_refusal_returns_the_client_to_the_training_phase():
    d = drive(Stage.TAKEOVER_REVIEW)
    [event] = d.do("takeover_decision", False, "credit check")
    assert type(event).__name__ == "TakeoverRefused"
    assert event.reason == "credit check"
    assert d.case.stage is Stage.TRAINING
    d.do("refer_takeover", TAKEOVER_MINIMUM)
    assert d.case.stage is Stage.TAKEOVER_REVIEW


def test_support_continues_during_the_takeover_review():
    d = drive(Stage.TAKEOVER_REVIEW)
    d.do("record_visit", "home_visit", None)
    d.do("complaint", "noise")
    d.do("rent_arrears", Decimal("10"))
    d.do("repayment_plan")
    assert d.case.stage is Stage.TAKEOVER_REVIEW


def test_first_hand_lease_needs_an_approved_takeover():
    for stage in (Stage.TRAINING, Stage.TAKEOVER_REVIEW):
        d = drive(stage)
        message = d.refused(StepNotAllowed, "exit", "first_hand_lease")
        assert message == (
            f"case c-17 is {STAGE_LABELS[stage]}: exit to first_hand_lease needs a takeover "
            "approved by the landlord; exits now: terminated, own_housing, withdrawn, deceased, "
            "moved_away"
        )


def test_first_hand_lease_closes_the_case_as_a_success():
    d = drive(Stage.TAKEOVER_APPROVED)
    [event] = d.do("exit", "first_hand_lease")
    assert (event.destination, event.apartment) == ("first_hand_lease", "apt-1")
    assert d.case.stage is Stage.CLOSED
    assert d.case.stage_label == "closed (first_hand_lease)"


def test_exit_names_the_apartment_only_when_the_case_holds_one():
    waiting = drive(Stage.WAITING, "c-1")
    [event] = waiting.do("exit", "own_housing")
    assert event.apartment is None
    offered = drive(Stage.OFFERED, "c-2")
    [event] = offered.do("exit", "own_housing")
    assert event.apartment == "apt-1"


# --- closed cases --------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(CALLS))
def test_closed_case_accepts_nothing(command):
    d = drive(Stage.CLOSED)
    message = d.refused(StepNotAllowed, command, *CALLS[command](d.case))
    assert message == (
        f"case c-17 is closed (withdrawn): {command} {NEEDS[command]}; "
        "allowed now: nothing (the case is closed)"
    )
    assert d.case.allowed() == [] and d.case.allowed_exits() == []


def test_a_denied_case_accepts_nothing():
    d = drive(Stage.ASSESSMENT)
    d.do("decide", "denied", None, "no need")
    message = d.refused(StepNotAllowed, "exit", "withdrawn")
    assert message == (
        "case c-17 is closed (denied): exit needs an open case; "
        "allowed now: nothing (the case is closed)"
    )


# --- dates -----------------------------------------------------------------------------------


def test_step_dated_after_today_is_refused():
    d = drive(Stage.ASSESSMENT)
    message = d.refused(
        InvalidDate, "decide", "granted", "housing_first", None, on=TODAY + timedelta(days=1)
    )
    assert message == "case c-17: decide on 2027-07-01 is after today (2027-06-30)"


def test_step_dated_today_is_accepted():
    d = drive(Stage.ASSESSMENT)
    d.do("decide", "granted", "housing_first", None, on=TODAY)
    assert d.case.last_on == TODAY


def test_step_dated_before_last_step_is_refused():
    d = drive(Stage.WAITING)
    last = d.case.last_on
    message = d.refused(InvalidDate, "offer", "apt-1", on=last - timedelta(days=1))
    assert message == (
        f"case c-17: offer on {last - timedelta(days=1)} is before the case's last step on {last}"
    )


def test_step_on_the_same_day_as_the_last_step_is_accepted():
    d = drive(Stage.WAITING)
    d.do("offer", "apt-1", on=d.case.last_on)
    d.do("landlord_decision", True, None, on=d.case.last_on)
    assert d.case.stage is Stage.APPROVED


def test_a_step_not_allowed_is_refused_for_its_stage_before_its_date():
    d = drive(Stage.WAITING)
    message = d.refused(StepNotAllowed, "move_in", "apt-1", on=TODAY + timedelta(days=30))
    assert "move_in needs an offer approved by the landlord" in message


def test_a_late_recorded_step_keeps_its_effective_date():
    d = drive(Stage.APPROVED)
    late = d.case.last_on + timedelta(days=3)
    d.do("move_in", "apt-1", on=late)
    d.do("record_visit", "home_visit", None, on=late + timedelta(days=90))
    assert d.case.move_in_date == late


# --- system notes --------------------------------------------------------------------------


def test_system_notes_do_not_move_the_last_step_date():
    d = drive(Stage.TRAINING)
    last_on = d.case.last_on
    assert d.case.note_overdue("home_visit", last_on + timedelta(days=7), command_id="n-1")
    assert d.case.note_overdue("follow_up", add_months(last_on, 3), command_id="n-2")
    assert d.case.note_takeover_eligible(add_months(MOVE_IN, 12), command_id="n-3")
    assert len(d.case.collect_events()) == 3
    assert d.case.last_on == last_on
    # a step recorded late, dated before the notes, is still accepted
    d.do("record_visit", "home_visit", None, on=last_on + timedelta(days=1))


def test_unexecuted_decision_note_does_not_block_a_late_recorded_offer():
    d = drive(Stage.WAITING)
    decided = d.case.decision_date
    assert d.case.note_unexecuted(1, command_id="ivo-1")
    [note] = d.case.collect_events()
    assert d.case.last_on == decided
    assert note.on == note.deadline == unexecuted_deadline(decided, 1)
    d.do("offer", "apt-1", on=decided + timedelta(days=10))
    assert d.case.stage is Stage.OFFERED


def test_system_notes_are_by_the_system_and_carry_the_date_they_are_about():
    d = drive(Stage.TRAINING)
    due = d.case.last_on + timedelta(days=7)
    d.case.note_overdue("home_visit", due, command_id="n-1")
    [event] = d.case.collect_events()
    assert type(event).__name__ == "VisitOverdueNoted"
    assert (event.on, event.due, event.kind, event.actor, event.command_id) == (
        due, due, "home_visit", "system", "n-1"
    )


def test_unexecuted_decision_is_noted_once_per_quarter_in_order():
    d = drive(Stage.WAITING)
    assert not d.case.note_unexecuted(2, command_id="q2-early")
    assert d.case.note_unexecuted(1, command_id="q1")
    assert not d.case.note_unexecuted(1, command_id="q1-again")
    assert d.case.note_unexecuted(2, command_id="q2")
    events = d.case.collect_events()
    assert [e.quarter for e in events] == [1, 2]
    assert d.case.unexecuted_noted == 2


@pytest.mark.parametrize("stage", [Stage.ASSESSMENT, Stage.TRAINING, Stage.CLOSED])
def test_unexecuted_decision_is_not_noted_outside_the_wait(stage):
    d = drive(stage)
    assert not d.case.note_unexecuted(1, command_id="q1")
    assert d.case.pending_events == []


@pytest.mark.parametrize("stage", [Stage.OFFERED, Stage.APPROVED])
def test_unexecuted_decision_is_noted_while_offered_or_approved(stage):
    d = drive(stage)
    assert d.case.note_unexecuted(1, command_id="q1")


def test_overdue_visit_is_noted_once_per_due_date():
    d = drive(Stage.TRAINING)
    due = d.case.last_on + timedelta(days=7)
    assert d.case.note_overdue("home_visit", due, command_id="a")
    assert not d.case.note_overdue("home_visit", due, command_id="b")
    assert d.case.note_overdue("home_visit", due + timedelta(days=7), command_id="c")
    assert len(d.case.collect_events()) == 2


def test_overdue_visit_is_not_noted_when_a_visit_was_made_on_or_after_the_due_date():
    d = drive(Stage.TRAINING)
    visit = d.case.last_on + timedelta(days=7)
    d.do("record_visit", "home_visit", None, on=visit)
    assert not d.case.note_overdue("home_visit", visit, command_id="a")
    assert not d.case.note_overdue("home_visit", visit - timedelta(days=1), command_id="b")
    assert d.case.note_overdue("home_visit", visit + timedelta(days=1), command_id="c")


def test_overdue_visits_are_not_noted_before_move_in():
    d = drive(Stage.APPROVED)
    assert not d.case.note_overdue("home_visit", TODAY, command_id="a")


def test_takeover_eligibility_is_noted_once_and_only_in_training():
    d = drive(Stage.TRAINING)
    eligible = add_months(MOVE_IN, 12)
    assert d.case.note_takeover_eligible(eligible, command_id="e-1")
    assert not d.case.note_takeover_eligible(eligible, command_id="e-2")
    assert d.case.takeover_eligible_on == eligible
    review = drive(Stage.TAKEOVER_REVIEW, "c-2")
    assert not review.case.note_takeover_eligible(eligible, command_id="e-3")


# --- every event carries on, actor and command id ---------------------------------------------


def test_every_event_carries_its_effective_date_actor_and_command_id():
    d = Driver("c-18")
    steps: list[tuple[str, tuple[Any, ...], str]] = [
        ("start_assessment", (), "cw-eva"),
        ("decide", ("granted", "training_apartment", None), "cw-eva"),
        ("course_session", (1,), "pilot-bo"),
        ("offer", ("apt-1",), "cw-eva"),
        ("landlord_decision", (True, None), "landlord-sbf"),
        ("move_in", ("apt-1",), "cw-eva"),
        ("record_visit", ("home_visit", CHECKLIST), "pilot-bo"),
        ("rent_arrears", (Decimal("100"),), "cw-eva"),
        ("repayment_plan", (), "cw-eva"),
        ("complaint", ("noise",), "landlord-sbf"),
    ]
    for command, args, actor in steps:
        d.do(command, *args, actor=actor)
    d.do("refer_takeover", 12, on=add_months(d.case.move_in_date, 12), actor="cw-eva")
    d.do("takeover_decision", True, None, actor="landlord-sbf")
    d.do("exit", "first_hand_lease", actor="cw-eva")
    events = d.events
    assert len(events) == 1 + len(steps) + 3
    assert (events[0].on, events[0].actor, events[0].command_id) == (START, "cw-anna", "c-18:1")
    for e in events:
        assert isinstance(e.on, date)
        assert e.actor and e.command_id
    assert [e.actor for e in events[1:len(steps) + 1]] == [actor for _, _, actor in steps]
    ids = [e.command_id for e in events]
    assert len(set(ids)) == len(ids)
    ons = [e.on for e in events]
    assert ons == sorted(ons)


def test_assigning_a_housing_pilot_routes_the_case_to_them_and_moves_no_stage():
    d = drive(Stage.TRAINING)
    d.do("assign", "housing_pilot", "bolots.ahmed")
    assert d.case.housing_pilot == "bolots.ahmed" and d.case.stage is Stage.TRAINING
    message = d.refused(StepNotAllowed, "assign", "housing_pilot", "bolots.ahmed")
    assert "changes nothing: bolots.ahmed is already the housing_pilot" in message


def test_the_caseworker_who_registers_the_application_is_responsible_until_reassigned():
    d = drive(Stage.WAITING)
    assert d.case.caseworker == d.case.caseworker  # the registering actor
    registering = d.case.caseworker
    d.do("assign", "caseworker", "handlaggare.ek")
    assert (registering, d.case.caseworker) != ("handlaggare.ek", "handlaggare.ek")
    assert d.case.caseworker == "handlaggare.ek"


def test_a_stage_open_too_long_is_noted_once_per_stage_entry():
    d = drive(Stage.ASSESSMENT)
    since = d.case.stage_since
    assert d.case.note_stalled("assessment", since, since, command_id="s1")
    assert not d.case.note_stalled("assessment", since, since, command_id="s2")
    assert not d.case.note_stalled("waiting", since, since, command_id="s3")
