"""The client's case: the housing chain's state machine (DOMAIN.md, "The client's path").

Public methods are the commands: each checks that the step may follow the current stage and
that its effective date `on` is neither in the future (`today` comes in as an argument) nor
before the case's last step, and only then triggers an event. Every event carries `on`,
`actor` and `command_id`. System notes (deadlines, overdue visits) carry the date they are
about and do not move the case's last step date, so a late-recorded step is never refused
because the system noticed a deadline in between.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.calendar import add_months, unexecuted_deadline
from domain.errors import N_, DomainError, StepNotAllowed
from domain.stages import (
    ALLOWED,
    EXITS,
    GRANTED_NOT_MOVED_IN,
    IN_HOME,
    ROLES,
    STAGE_LABELS,
    Stage,
    check_dates,
    check_step,
    pilot_refusal,
    refusal,
)

CASE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:housing-chain:case")


class Case(Aggregate):
    """One client's path through the housing chain."""

    @staticmethod
    def create_id(case_id: str) -> UUID:
        return case_uuid(case_id)

    @event("Applied")
    def __init__(
        self,
        case_id: str,
        client_id: str,
        target_group: str,
        district: str,
        adults: int,
        children: int,
        housing_situation: str,
        referral: str,
        on: date,
        actor: str,
        command_id: str,
        # optional pseudonymous facts about the client (the homelessness count); defaults,
        # so an `Applied` recorded before they existed loads as "not given"
        sex: str | None = None,
        birth_year: int | None = None,
    ) -> None:
        self.case_id = case_id
        self.client_id = client_id
        self.sex = sex
        self.birth_year = birth_year
        self.target_group = target_group
        self.district = district
        self.household = (adults, children)
        self.housing_situation = housing_situation
        self.referral = referral
        self.caseworker = actor
        self.stage = Stage.APPLIED
        self.stage_since = on
        self.applied_on = on
        self.last_on = on
        self.decision_date: date | None = None
        self.programme: str | None = None
        self.outcome: str | None = None
        self.closed_on: date | None = None
        self.apartment: str | None = None
        self.move_in_date: date | None = None
        self.last_home_visit: date | None = None
        self.last_follow_up: date | None = None
        self.last_inspection: date | None = None
        self.housing_pilot: str | None = None
        self.course_sessions: set[int] = set()
        self.arrears = Decimal(0)
        self.arrears_without_plan = False
        self.complaints = 0
        self.unexecuted_noted = 0
        self.takeover_eligible_on: date | None = None
        self.overdue_noted: set[str] = set()
        self.stall_noted: set[str] = set()
        self.escalated: set[str] = set()
        self.last_checklist: date | None = None
        # the case file (pilot, plan, placements, ...); set here, so a case applied before it
        # existed gets it too (its stored `Applied` event runs this body again)
        self.case_file_noted: set[str] = set()
        self.plan_on: date | None = None
        self.follow_ups: dict[str, date] = {}  # open sub-goals of the plan: their follow-up
        self.sub_goal_owners: dict[str, str] = {}  # the plan's sub-goals: who is responsible
        self.placements: dict[str, date] = {}  # temporary placements not ended: their start
        self.placement_ends: dict[str, date | None] = {}  # and their planned end, if any
        self.placement_ids: set[str] = set()
        self.interrupted_on: date | None = None  # support interrupted, not yet resumed
        self.interruption_kind: str | None = None
        self.interruption_noted = 0  # quarters of it noted (reported like an unexecuted decision)
        self.instalments: list[dict[str, str]] = []  # the repayment plan's: amount, due (ISO)
        self.paid_since_plan = Decimal(0)
        self.level: int | None = None  # the support level (four-level model)
        self.lease_end: date | None = None  # a time-limited lease: its last day
        self.lease_renewed_on: date | None = None  # its latest renewal
        self.warnings: list[date] = []  # warnings (anmodan om rättelse): their dates
        self.last_coordinator_meeting: date | None = None  # Housing First's weekly meeting

    @classmethod
    def register(
        cls,
        case_id: str,
        client_id: str,
        target_group: str,
        district: str,
        adults: int,
        children: int,
        housing_situation: str,
        referral: str,
        *,
        on: date,
        actor: str,
        command_id: str,
        today: date,
        sex: str | None = None,
        birth_year: int | None = None,
    ) -> Case:
        check_dates(case_id, "apply", on, today, None)
        return cls(
            case_id=case_id, client_id=client_id, target_group=target_group, district=district,
            adults=adults, children=children, housing_situation=housing_situation,
            referral=referral, on=on, actor=actor, command_id=command_id, sex=sex,
            birth_year=birth_year,
        )

    # --- queries -------------------------------------------------------------------------

    @property
    def stage_label(self) -> str:
        if self.stage is Stage.CLOSED:
            return f"closed ({self.outcome})"
        return STAGE_LABELS[self.stage]

    def allowed(self) -> list[str]:
        return list(ALLOWED[self.stage])

    def allowed_exits(self) -> list[str]:
        return list(EXITS[self.stage])

    @property
    def is_open(self) -> bool:
        return self.stage is not Stage.CLOSED

    # --- guards --------------------------------------------------------------------------

    def check_step(self, command: str, on: date, today: date) -> None:
        check_step(self.case_id, self.stage, self.stage_label, command, on, today, self.last_on)

    def _refuse(self, command: str, why: str, list_allowed: bool = True,
                **values: Any) -> DomainError:
        """`why`: an English template (N_), filled in with `values`; the whole refusal is
        `domain.stages.refusal`'s, as the stage check words it."""
        return StepNotAllowed(refusal(self.case_id, self.stage, self.stage_label, command,
                                      why.format(**values), list_allowed))

    # --- commands ------------------------------------------------------------------------

    def start_assessment(self, *, on: date, actor: str, command_id: str, today: date) -> None:
        self.check_step("start_assessment", on, today)
        self._assessment_started(on=on, actor=actor, command_id=command_id)

    def decide(
        self,
        outcome: str,
        programme: str | None,
        reason: str | None,
        *,
        on: date,
        actor: str,
        command_id: str,
        today: date,
        reason_code: str | None = None,
        reason_codes: list[str] | None = None,
    ) -> None:
        """A denial needs a coded reason (one of `reason_codes`, the policy's for denials) or
        a free-text one; given only the text (lines from before the codes), it is coded
        `other`."""
        self.check_step("decide", on, today)
        if outcome == "granted":
            if not programme:
                raise self._refuse("decide", N_("needs a programme when granted"))
            self._granted(programme=programme, on=on, actor=actor, command_id=command_id,
                          reason=reason or None)
        elif outcome == "denied":
            if programme:
                raise self._refuse("decide", N_("takes no programme when denied"))
            if not reason and not reason_code:
                raise self._refuse("decide", N_("needs a reason when denied"))
            code = self._reason_code("decide", reason_code, reason_codes)
            self._denied(reason=reason or "", on=on, actor=actor, command_id=command_id,
                         reason_code=code)
        else:
            raise self._refuse("decide", N_("needs outcome granted or denied, not {outcome}"),
                               outcome=repr(outcome))

    def offer(self, apartment: str, *, on: date, actor: str, command_id: str, today: date) -> None:
        self.check_step("offer", on, today)
        self._offered(apartment=apartment, on=on, actor=actor, command_id=command_id)

    def landlord_decision(
        self, approved: bool, reason: str | None, *, on: date, actor: str, command_id: str,
        today: date, reason_code: str | None = None, reason_codes: list[str] | None = None,
    ) -> None:
        """A refusal takes a coded reason (one of `reason_codes`, the policy's for landlords;
        `other` when none is given) and an optional note."""
        self.check_step("landlord_decision", on, today)
        if approved:
            self._landlord_approved(on=on, actor=actor, command_id=command_id,
                                    reason=reason or None)
        else:
            code = self._reason_code("landlord_decision", reason_code, reason_codes)
            self._landlord_refused(
                apartment=self.apartment, reason=reason or "", on=on, actor=actor,
                command_id=command_id, reason_code=code,
            )

    def _reason_code(self, command: str, code: str | None, codes: list[str] | None) -> str:
        """The coded reason of a refusal or denial: `other` when not given (a line with only
        the free-text reason); refused when it is not one of the policy's codes."""
        code = code or "other"
        if codes is not None and code not in codes:
            raise self._refuse(command, N_("needs a reason_code of the policy ({codes}), not {code}"),
                               list_allowed=False, codes=", ".join(codes), code=repr(code))
        return code

    def move_in(
        self, apartment: str, *, on: date, actor: str, command_id: str, today: date,
        pilot_at_move_in: str = "warn", lease_end: date | None = None,
    ) -> None:
        self.check_step("move_in", on, today)
        if apartment != self.apartment:
            raise self._refuse("move_in", N_("needs the apartment offered ({offered}), not {apartment}"),
                               offered=self.apartment, apartment=apartment)
        why = pilot_refusal(self.programme, self.housing_pilot, pilot_at_move_in)
        if why:
            raise self._refuse("move_in", why, list_allowed=False)
        if lease_end is not None and lease_end <= on:
            raise self._refuse("move_in", N_("needs a lease that ends after the move-in ({on}), not on "
                                           "{lease_end}"), list_allowed=False, on=on, lease_end=lease_end)
        self._moved_in(apartment=apartment, on=on, actor=actor, command_id=command_id,
                       lease_end=lease_end)
        self._end_placements(on=on, actor=actor, command_id=command_id)

    def _end_placements(self, *, on: date, actor: str, command_id: str) -> None:
        """Temporary accommodation is for the wait: a placement still open when the client
        moves in, or when the case closes, ends on that day (unless its planned end comes
        first), recorded as its own event of the same step."""
        for placement, start in sorted(self.placements.items()):
            planned = self.placement_ends.get(placement)
            if planned is None or planned > on:
                self._placement_ended(placement=placement, end=max(on, start), on=on,
                                      actor=actor, command_id=command_id)

    def record_visit(
        self, kind: str, checklist: dict[str, bool] | None, *, on: date, actor: str,
        command_id: str, today: date,
    ) -> None:
        self.check_step("record_visit", on, today)
        self._visit_recorded(
            kind=kind, checklist=checklist, on=on, actor=actor, command_id=command_id
        )

    def course_session(
        self, session: int, *, on: date, actor: str, command_id: str, today: date
    ) -> None:
        self.check_step("course_session", on, today)
        if session in self.course_sessions:
            raise self._refuse("course_session", N_("session {session} is already recorded"),
                               session=session)
        self._course_session_attended(session=session, on=on, actor=actor, command_id=command_id)

    def rent_arrears(
        self, amount: Decimal, *, on: date, actor: str, command_id: str, today: date
    ) -> None:
        self.check_step("rent_arrears", on, today)
        if amount <= 0:
            raise self._refuse("rent_arrears", N_("needs an amount above zero"))
        self._rent_arrears_recorded(amount=amount, on=on, actor=actor, command_id=command_id,
                                    balance=self.arrears + amount)

    def repayment_plan(self, *, on: date, actor: str, command_id: str, today: date,
                       instalments: list[dict[str, str]] | None = None) -> None:
        """`instalments`: amount (SEK, text) and due (ISO date, not before the plan) each; they
        add up to no more than the arrears."""
        self.check_step("repayment_plan", on, today)
        if not self.arrears_without_plan:
            raise self._refuse("repayment_plan", N_("needs rent arrears without a plan"))
        instalments = sorted(instalments or [], key=lambda i: i["due"])
        if any(date.fromisoformat(i["due"]) < on for i in instalments):
            raise self._refuse("repayment_plan", N_("needs instalments due on or after the plan ({on})"),
                               list_allowed=False, on=on)
        total = sum((Decimal(i["amount"]) for i in instalments), Decimal(0))
        if total > self.arrears:
            raise self._refuse("repayment_plan", N_("needs instalments of no more than the arrears "
                                                  "({arrears} SEK), not {total}"),
                               list_allowed=False, arrears=self.arrears, total=total)
        self._repayment_plan_agreed(amount=self.arrears, on=on, actor=actor, command_id=command_id,
                                    instalments=instalments or None)

    def rent_payment(self, amount: Decimal, *, on: date, actor: str, command_id: str,
                     today: date) -> None:
        """A payment against the arrears; the balance after it never goes below zero."""
        self.check_step("rent_payment", on, today)
        if amount <= 0:
            raise self._refuse("rent_payment", N_("needs an amount above zero"), list_allowed=False)
        if self.arrears <= 0:
            raise self._refuse("rent_payment", N_("needs rent arrears to pay"), list_allowed=False)
        self._rent_payment_recorded(amount=amount, balance=max(Decimal(0), self.arrears - amount),
                                    on=on, actor=actor, command_id=command_id)

    def complaint(self, note: str, *, on: date, actor: str, command_id: str, today: date,
                  kind: str = "complaint") -> None:
        """A disturbance complaint, or a warning (`kind` warning: anmodan om rättelse)."""
        self.check_step("complaint", on, today)
        self._complaint_recorded(note=note, on=on, actor=actor, command_id=command_id, kind=kind)

    def refer_takeover(
        self, minimum_months: int, *, on: date, actor: str, command_id: str, today: date,
        warnings_within_months: int | None = None,
    ) -> None:
        """After the minimum period, with good references; with `warnings_within_months`
        (policy `refuse_referral_with_warnings_within_months`) not while a warning lies within
        that many months."""
        self.check_step("refer_takeover", on, today)
        assert self.move_in_date is not None
        earliest = add_months(self.move_in_date, minimum_months)
        if on < earliest:
            raise self._refuse("refer_takeover", N_("needs {months} months in the training apartment "
                                                  "(from {earliest})"),
                               months=minimum_months, earliest=earliest)
        if self.arrears_without_plan:
            raise self._refuse("refer_takeover", N_("needs good references: rent arrears have no "
                                                  "repayment plan"))
        if warnings_within_months is not None:
            recent = [w for w in self.warnings if on < add_months(w, warnings_within_months)]
            if recent:
                raise self._refuse(
                    "refer_takeover", N_("needs no warning (anmodan om rättelse) within {months} "
                                         "months: one on {warned} (from {earliest})"),
                    list_allowed=False, months=warnings_within_months, warned=max(recent),
                    earliest=add_months(max(recent), warnings_within_months))
        self._takeover_referred(on=on, actor=actor, command_id=command_id)

    def takeover_decision(
        self, approved: bool, reason: str | None, *, on: date, actor: str, command_id: str,
        today: date, reason_code: str | None = None, reason_codes: list[str] | None = None,
        credit_check: dict[str, bool] | None = None, references: dict[str, Any] | None = None,
    ) -> None:
        """The landlord's decision, optionally with its credit check (`passed`) and the
        references (`rent_paid_on_time`, `complaints_last_12_months`); a refusal takes a coded
        reason (one of `reason_codes`, the policy's for takeovers; `other` when none)."""
        self.check_step("takeover_decision", on, today)
        if approved:
            self._takeover_approved(on=on, actor=actor, command_id=command_id,
                                    credit_check=credit_check, references=references,
                                    reason=reason or None)
        else:
            code = self._reason_code("takeover_decision", reason_code, reason_codes)
            self._takeover_refused(reason=reason or "", on=on, actor=actor, command_id=command_id,
                                   reason_code=code, credit_check=credit_check,
                                   references=references)

    def assign(
        self, role: str, to: str, *, on: date, actor: str, command_id: str, today: date
    ) -> None:
        """Make `to` the responsible caseworker or the housing pilot from `on`."""
        self.check_step("assign", on, today)
        if role not in ROLES:
            raise self._refuse("assign", N_("needs a role ({roles}), not {role}"),
                               roles=", ".join(ROLES), role=repr(role))
        current = self.caseworker if role == "caseworker" else self.housing_pilot
        if current == to:
            raise self._refuse("assign", N_("changes nothing: {to} is already the {role}"), to=to,
                               role=role)
        self._assigned(role=role, to=to, on=on, actor=actor, command_id=command_id)

    def exit(self, destination: str, *, on: date, actor: str, command_id: str, today: date) -> None:
        check_step(self.case_id, self.stage, self.stage_label, "exit", on, today, self.last_on,
                   destination=destination)
        self._exited(
            destination=destination, apartment=self.apartment if self.stage in IN_HOME or
            self.stage in GRANTED_NOT_MOVED_IN else None,
            on=on, actor=actor, command_id=command_id,
        )
        self._end_placements(on=on, actor=actor, command_id=command_id)

    def plan(self, goal: str, sub_goals: list[dict[str, str]], *, on: date, actor: str,
             command_id: str, today: date) -> None:
        """The individual plan; a later one replaces the earlier (its sub-goals with it).
        `sub_goals`: id, goal, responsible, follow_up (ISO date, not before the plan)."""
        self.check_step("plan", on, today)
        ids = [g["id"] for g in sub_goals]
        if len(set(ids)) != len(ids):
            raise self._refuse("plan", N_("needs each sub-goal id once"), list_allowed=False)
        early = [g["id"] for g in sub_goals if date.fromisoformat(g["follow_up"]) < on]
        if early:
            raise self._refuse("plan", N_("needs follow-up dates on or after the plan ({on}): {early}"),
                               list_allowed=False, on=on, early=", ".join(early))
        self._plan_made(goal=goal, sub_goals=sub_goals, on=on, actor=actor, command_id=command_id)

    def plan_review(self, reviews: list[dict[str, str | None]], *, on: date, actor: str,
                    command_id: str, today: date) -> None:
        """Each reviewed sub-goal is met, partly or not met; one not met (or partly) with a
        `next_follow_up` stays open until then, any other is closed by the review."""
        self.check_step("plan_review", on, today)
        if self.plan_on is None:
            raise self._refuse("plan_review", N_("needs a plan first"), list_allowed=False)
        unknown = [str(r["sub_goal"]) for r in reviews if r["sub_goal"] not in self.follow_ups]
        if unknown:
            raise self._refuse("plan_review", N_("needs an open sub-goal of the plan, not {unknown}; "
                                               "open: {open}"), list_allowed=False,
                               unknown=", ".join(unknown), open=", ".join(self.follow_ups) or "none")
        for r in reviews:
            nxt = r.get("next_follow_up")
            if nxt and (r["result"] == "met" or date.fromisoformat(nxt) <= on):
                raise self._refuse("plan_review", N_("sub-goal {sub_goal}: a next follow-up needs a "
                                                   "sub-goal not met and a date after the review"),
                                   list_allowed=False, sub_goal=r["sub_goal"])
        self._plan_reviewed(reviews=reviews, on=on, actor=actor, command_id=command_id)

    def temporary_placement(
        self, placement: str, kind: str, start: date, end: date | None,
        cost_per_night: Decimal | None, *, on: date, actor: str, command_id: str, today: date,
    ) -> None:
        """Temporary accommodation while waiting; with `end` it ends then, else when ended."""
        self.check_step("temporary_placement", on, today)
        if placement in self.placement_ids:
            raise self._refuse("temporary_placement", N_("needs a new placement id, not {placement}"),
                               list_allowed=False, placement=placement)
        if end is not None and end < start:
            raise self._refuse("temporary_placement", N_("ends ({end}) before it starts ({start})"),
                               list_allowed=False, end=end, start=start)
        if start < self.applied_on:
            raise self._refuse("temporary_placement", N_("starts ({start}) before the application "
                                                       "({applied_on})"),
                               list_allowed=False, start=start, applied_on=self.applied_on)
        if start > today:
            raise self._refuse("temporary_placement", N_("starts ({start}) after today ({today}): "
                                                       "record it when it has begun"),
                               list_allowed=False, start=start, today=today)
        self._placement_started(placement=placement, kind=kind, start=start, end=end,
                                cost_per_night=cost_per_night, on=on, actor=actor,
                                command_id=command_id)

    def placement_ended(self, placement: str, end: date, *, on: date, actor: str,
                        command_id: str, today: date) -> None:
        self.check_step("placement_ended", on, today)
        if placement not in self.placements:
            raise self._refuse("placement_ended", N_("needs an open placement, not {placement}; open: "
                                                   "{open}"), list_allowed=False,
                               placement=placement, open=", ".join(self.placements) or "none")
        if end < self.placements[placement]:
            raise self._refuse("placement_ended", N_("ends ({end}) before it started ({start})"),
                               list_allowed=False, end=end, start=self.placements[placement])
        self._placement_ended(placement=placement, end=end, on=on, actor=actor,
                              command_id=command_id)

    def support_interrupted(self, kind: str, *, on: date, actor: str, command_id: str,
                            today: date) -> None:
        """The support is interrupted (hospital, prison, treatment, other) from `on`."""
        self.check_step("support_interrupted", on, today)
        if self.interrupted_on is not None:
            raise self._refuse("support_interrupted", N_("needs support that is not interrupted; "
                                                       "interrupted since {since} ({kind})"),
                               list_allowed=False, since=self.interrupted_on,
                               kind=self.interruption_kind)
        self._support_interrupted(kind=kind, on=on, actor=actor, command_id=command_id)

    def support_level(self, level: int, levels: dict[int, str], *, on: date, actor: str,
                          command_id: str, today: date) -> None:
        """The support level from `on` (the four-level model); `levels`: the policy's names."""
        self.check_step("support_level", on, today)
        if level not in levels:
            raise self._refuse("support_level", N_("needs a level of the policy's support_levels "
                                                 "({levels}), not {level}"), list_allowed=False,
                               levels=", ".join(map(str, sorted(levels))), level=level)
        if level == self.level:
            raise self._refuse("support_level", N_("changes nothing: the level is already {level}"),
                               list_allowed=False, level=level)
        self._support_level_set(level=level, name=levels[level], previous=self.level,
                                on=on, actor=actor, command_id=command_id)

    def move_apartment(self, apartment: str, *, on: date, actor: str, command_id: str,
                       today: date) -> None:
        """A move to another apartment of the programme (omflyttning). The move-in date stays
        the first night in the first apartment (the HMIS definition)."""
        self.check_step("move_apartment", on, today)
        if apartment == self.apartment:
            raise self._refuse("move_apartment", N_("needs another apartment than {apartment}, where the "
                                                  "client lives"), list_allowed=False, apartment=apartment)
        self._apartment_moved(from_apartment=self.apartment, apartment=apartment, on=on,
                              actor=actor, command_id=command_id)

    def renew_lease(self, lease_end: date, *, on: date, actor: str, command_id: str,
                    today: date) -> None:
        """A time-limited lease renewed to a new last day (answers `lease_renewal`)."""
        self.check_step("renew_lease", on, today)
        if self.lease_end is None:
            raise self._refuse("renew_lease", N_("needs a time-limited lease (move_in with a lease_end)"),
                               list_allowed=False)
        if lease_end <= self.lease_end or lease_end <= on:
            raise self._refuse("renew_lease", N_("needs a last day after the current one ({current}) "
                                               "and after the renewal, not {lease_end}"),
                               list_allowed=False, current=self.lease_end, lease_end=lease_end)
        self._lease_renewed(previous=self.lease_end, lease_end=lease_end, on=on, actor=actor,
                            command_id=command_id)

    def support_resumed(self, *, on: date, actor: str, command_id: str, today: date) -> None:
        self.check_step("support_resumed", on, today)
        if self.interrupted_on is None:
            raise self._refuse("support_resumed", N_("needs interrupted support"), list_allowed=False)
        self._support_resumed(interrupted_on=self.interrupted_on, on=on, actor=actor,
                              command_id=command_id)

    # --- system notes (timers) -----------------------------------------------------------

    def note_unexecuted(self, quarter: int, *, command_id: str) -> bool:
        """Record that the decision passed its `quarter`-th three-month limit unexecuted.

        Returns False (and records nothing) when it no longer applies or was noted already.
        """
        if self.stage not in GRANTED_NOT_MOVED_IN or self.decision_date is None:
            return False
        if quarter != self.unexecuted_noted + 1:
            return False
        deadline = unexecuted_deadline(self.decision_date, quarter)
        self._unexecuted_noted(
            quarter=quarter, deadline=deadline, on=deadline, actor="system", command_id=command_id
        )
        return True

    def note_overdue(self, kind: str, due: date, *, command_id: str) -> bool:
        """Record that a support visit or follow-up due on `due` was not made."""
        if self.stage not in IN_HOME or f"{kind}:{due}" in self.overdue_noted:
            return False
        latest = {"home_visit": self.last_home_visit, "inspection": self.last_inspection,
                  "coordinator_meeting": getattr(self, "last_coordinator_meeting", None),
                  }.get(kind, self.last_follow_up)
        if latest is not None and latest >= due:
            return False
        self._overdue_noted(kind=kind, due=due, on=due, actor="system", command_id=command_id)
        return True

    def note_stalled(self, stage: str, since: date, due: date, *, command_id: str) -> bool:
        """Record that the stage entered on `since` is still open after the policy's days."""
        if self.stage != stage or self.stage_since != since or f"{stage}:{since}" in self.stall_noted:
            return False
        self._stall_noted(stage=stage, since=since, on=due, actor="system", command_id=command_id)
        return True

    def note_escalated(self, kind: str, due: date, on: date, *, command_id: str) -> bool:
        """Record that the reminder about `kind` due on `due` went unanswered and escalated."""
        if not self.is_open or f"{kind}:{due}" in self.escalated:
            return False
        self._escalated(kind=kind, due=due, on=on, actor="system", command_id=command_id)
        return True

    def note_takeover_eligible(self, eligible_on: date, *, command_id: str) -> bool:
        if self.stage is not Stage.TRAINING or self.takeover_eligible_on is not None:
            return False
        self._takeover_eligible(on=eligible_on, actor="system", command_id=command_id)
        return True

    def note_case_file_due(self, kind: str, due: date, *, command_id: str) -> bool:
        """Record that a case-file item (domain/due.py `case_file_due`) fell due unanswered;
        False when it no longer applies (answered by a step since) or was noted already."""
        if not self.is_open or f"{kind}:{due}" in self.case_file_noted:
            return False
        if not self._case_file_still_due(kind, due):
            return False
        self._case_file_due_noted(kind=kind, due=due, on=due, actor="system", command_id=command_id)
        return True

    def _case_file_still_due(self, kind: str, due: date) -> bool:
        if kind == "pilot_missing":
            return self.stage in IN_HOME and self.housing_pilot is None
        if kind == "plan_missing":
            return self.stage in IN_HOME and self.plan_on is None
        if kind.startswith("sub_goal:"):
            return self.follow_ups.get(kind.split(":", 1)[1]) == due
        if kind == "lease_renewal":
            renewed = getattr(self, "lease_renewed_on", None)
            return (self.stage in IN_HOME and self.lease_end is not None and due < self.lease_end
                    and (renewed is None or due >= renewed))
        if kind == "support_interrupted":
            return (self.interrupted_on is not None
                    and due == unexecuted_deadline(self.interrupted_on, self.interruption_noted + 1))
        return True

    # --- events --------------------------------------------------------------------------

    def _step(self, on: date) -> None:
        self.last_on = on

    def _enter(self, stage: Stage, on: date) -> None:
        if stage is not self.stage:
            self.stage = stage
            self.stage_since = on

    @event("AssessmentStarted")
    def _assessment_started(self, on: date, actor: str, command_id: str) -> None:
        self._enter(Stage.ASSESSMENT, on)
        self._step(on)

    @event("Granted")
    def _granted(self, programme: str, on: date, actor: str, command_id: str,
                 reason: str | None = None) -> None:  # a note, when given (sealed)
        self._enter(Stage.WAITING, on)
        self.programme = programme
        self.decision_date = on
        self._step(on)

    @event("Denied")
    def _denied(self, reason: str, on: date, actor: str, command_id: str,
                reason_code: str | None = None) -> None:  # absent from older events
        self._enter(Stage.CLOSED, on)
        self.outcome = "denied"
        self.decision_date = on
        self.closed_on = on
        self._step(on)

    @event("Offered")
    def _offered(self, apartment: str, on: date, actor: str, command_id: str) -> None:
        self._enter(Stage.OFFERED, on)
        self.apartment = apartment
        self._step(on)

    @event("LandlordApproved")
    def _landlord_approved(self, on: date, actor: str, command_id: str,
                           reason: str | None = None) -> None:
        self._enter(Stage.APPROVED, on)
        self._step(on)

    @event("LandlordRefused")
    def _landlord_refused(
        self, apartment: str | None, reason: str, on: date, actor: str, command_id: str,
        reason_code: str | None = None,  # absent from older events
    ) -> None:
        self._enter(Stage.WAITING, on)
        self.apartment = None
        self._step(on)

    @event("MovedIn")
    def _moved_in(self, apartment: str, on: date, actor: str, command_id: str,
                  lease_end: date | None = None) -> None:  # absent from older events
        self._enter(Stage.TRAINING, on)
        self.move_in_date = on
        self.lease_end = lease_end
        self._step(on)

    @event("VisitRecorded")
    def _visit_recorded(
        self, kind: str, checklist: dict[str, bool] | None, on: date, actor: str, command_id: str
    ) -> None:
        if checklist is not None:
            self.last_checklist = on
        if kind == "home_visit":
            self.last_home_visit = on
        elif kind == "follow_up":
            self.last_follow_up = on
        elif kind == "coordinator_meeting":
            self.last_coordinator_meeting = on
        else:
            self.last_inspection = on
        self._step(on)

    @event("CourseSessionAttended")
    def _course_session_attended(self, session: int, on: date, actor: str, command_id: str) -> None:
        self.course_sessions.add(session)
        self._step(on)

    @event("RentArrearsRecorded")
    def _rent_arrears_recorded(
        self, amount: Decimal, on: date, actor: str, command_id: str,
        balance: Decimal | None = None,  # the arrears after it (absent from older events)
    ) -> None:
        self.arrears += amount
        self.arrears_without_plan = True
        self._step(on)

    @event("RepaymentPlanAgreed")
    def _repayment_plan_agreed(
        self, amount: Decimal, on: date, actor: str, command_id: str,
        instalments: list[dict[str, str]] | None = None,
    ) -> None:
        self.arrears_without_plan = False
        self.instalments = list(instalments or [])
        self.paid_since_plan = Decimal(0)
        self._step(on)

    @event("RentPaymentRecorded")
    def _rent_payment_recorded(self, amount: Decimal, balance: Decimal, on: date, actor: str,
                               command_id: str) -> None:
        self.paid_since_plan += self.arrears - balance
        self.arrears = balance
        if balance == 0:
            self.arrears_without_plan = False
        self._step(on)

    @event("ComplaintRecorded")
    def _complaint_recorded(self, note: str, on: date, actor: str, command_id: str,
                            kind: str = "complaint") -> None:  # older events: complaints
        self.complaints += 1
        if kind == "warning":
            self.warnings.append(on)
        self._step(on)

    @event("TakeoverReferred")
    def _takeover_referred(self, on: date, actor: str, command_id: str) -> None:
        self._enter(Stage.TAKEOVER_REVIEW, on)
        self._step(on)

    @event("TakeoverApproved")
    def _takeover_approved(self, on: date, actor: str, command_id: str,
                           credit_check: dict[str, bool] | None = None,
                           references: dict[str, Any] | None = None,
                           reason: str | None = None) -> None:
        self._enter(Stage.TAKEOVER_APPROVED, on)
        self._step(on)

    @event("TakeoverRefused")
    def _takeover_refused(self, reason: str, on: date, actor: str, command_id: str,
                          reason_code: str | None = None,  # absent from older events
                          credit_check: dict[str, bool] | None = None,
                          references: dict[str, Any] | None = None) -> None:
        self._enter(Stage.TRAINING, on)
        self._step(on)

    @event("Exited")
    def _exited(
        self, destination: str, apartment: str | None, on: date, actor: str, command_id: str
    ) -> None:
        self._enter(Stage.CLOSED, on)
        self.outcome = destination
        self.closed_on = on
        self._step(on)

    @event("Assigned")
    def _assigned(self, role: str, to: str, on: date, actor: str, command_id: str) -> None:
        if role == "caseworker":
            self.caseworker = to
        else:
            self.housing_pilot = to
        self._step(on)

    @event("StageStalledNoted")
    def _stall_noted(self, stage: str, since: date, on: date, actor: str, command_id: str) -> None:
        self.stall_noted.add(f"{stage}:{since}")

    @event("ReminderEscalatedNoted")
    def _escalated(self, kind: str, due: date, on: date, actor: str, command_id: str) -> None:
        self.escalated.add(f"{kind}:{due}")

    @event("UnexecutedDecisionNoted")
    def _unexecuted_noted(
        self, quarter: int, deadline: date, on: date, actor: str, command_id: str
    ) -> None:
        self.unexecuted_noted = quarter

    @event("VisitOverdueNoted")
    def _overdue_noted(self, kind: str, due: date, on: date, actor: str, command_id: str) -> None:
        self.overdue_noted.add(f"{kind}:{due}")

    @event("PlanMade")
    def _plan_made(self, goal: str, sub_goals: list[dict[str, str]], on: date, actor: str,
                   command_id: str) -> None:
        self.plan_on = on
        self.follow_ups = {g["id"]: date.fromisoformat(g["follow_up"]) for g in sub_goals}
        self.sub_goal_owners = {g["id"]: g["responsible"] for g in sub_goals
                                if g.get("responsible")}
        self._step(on)

    @event("PlanReviewed")
    def _plan_reviewed(self, reviews: list[dict[str, str | None]], on: date, actor: str,
                       command_id: str) -> None:
        for r in reviews:
            nxt = r.get("next_follow_up")
            if nxt:
                self.follow_ups[str(r["sub_goal"])] = date.fromisoformat(nxt)
            else:
                self.follow_ups.pop(str(r["sub_goal"]), None)
        self._step(on)

    @event("TemporaryPlacementStarted")
    def _placement_started(self, placement: str, kind: str, start: date, end: date | None,
                           cost_per_night: Decimal | None, on: date, actor: str,
                           command_id: str) -> None:
        self.placement_ids.add(placement)
        self.placements[placement] = start  # until a placement_ended (a planned end is kept)
        self.placement_ends[placement] = end
        self._step(on)

    @event("PlacementEnded")
    def _placement_ended(self, placement: str, end: date, on: date, actor: str,
                         command_id: str) -> None:
        self.placements.pop(placement, None)
        self._step(on)

    @event("SupportLevelSet")
    def _support_level_set(self, level: int, name: str, previous: int | None, on: date,
                           actor: str, command_id: str) -> None:
        self.level = level
        self._step(on)

    @event("ApartmentMoved")
    def _apartment_moved(self, from_apartment: str | None, apartment: str, on: date, actor: str,
                         command_id: str) -> None:
        self.apartment = apartment  # move_in_date unchanged
        self._step(on)

    @event("LeaseRenewed")
    def _lease_renewed(self, previous: date | None, lease_end: date, on: date, actor: str,
                       command_id: str) -> None:
        self.lease_end = lease_end
        self.lease_renewed_on = on
        self._step(on)

    @event("SupportInterrupted")
    def _support_interrupted(self, kind: str, on: date, actor: str, command_id: str) -> None:
        self.interrupted_on = on
        self.interruption_kind = kind
        self.interruption_noted = 0
        self._step(on)

    @event("SupportResumed")
    def _support_resumed(self, interrupted_on: date, on: date, actor: str,
                         command_id: str) -> None:
        self.interrupted_on = None
        self.interruption_kind = None
        self._step(on)

    @event("CaseFileDueNoted")
    def _case_file_due_noted(self, kind: str, due: date, on: date, actor: str,
                             command_id: str) -> None:
        self.case_file_noted.add(f"{kind}:{due}")
        if kind == "support_interrupted":
            self.interruption_noted += 1

    @event("TakeoverEligibilityNoted")
    def _takeover_eligible(self, on: date, actor: str, command_id: str) -> None:
        self.takeover_eligible_on = on


def case_uuid(case_id: str) -> UUID:
    return uuid5(CASE_NAMESPACE, case_id)
