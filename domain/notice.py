"""An eviction-prevention notice or an outreach assignment (DOMAIN.md, "eviction prevention").

Like `domain.case.Case`: public methods are the commands; each checks that the step may
follow the notice's stage (`domain.notice_stages`) and that its effective date `on` is
neither in the future (`today` comes in as an argument) nor before the notice's last step,
and only then triggers an event. Every event carries `on`, `actor` and `command_id`.

The notice names the tenant only by the pseudonymous client id: names and personal identity
numbers stay in the identity store.

System notes (`note_unreached`, `note_escalated`) are raised by the workflow's timers; they
carry the deadline they are about as a moment (the 48 hours are clock time), do not move the
notice's last step date, and return False (recording nothing) when they no longer apply.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import N_, DomainError, InvalidDate, StepNotAllowed
from domain.notice_stages import (
    CLOSING,
    NOTICE_ALLOWED,
    NOTICE_NEEDS,
    NOTICE_STAGE_LABELS,
    NoticeKind,
    NoticeOutcome,
    NoticeStage,
    outcome_needs,
    outcomes_allowed,
)

NOTICE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:housing-chain:notice")
CLOSING_OUTCOMES = frozenset(o.value for o in CLOSING)


class Notice(Aggregate):
    """One notice that a tenant risks eviction, or one outreach assignment."""

    @staticmethod
    def create_id(notice_id: str) -> UUID:
        return notice_uuid(notice_id)

    @event("NoticeRegistered")
    def __init__(
        self,
        notice_id: str,
        kind: str,
        source: str,
        client_id: str,
        district: str,
        eviction_date: date | None,
        pilot: str | None,
        reach_by: datetime | None,
        outreach_from: datetime | None,
        outreach_due: datetime | None,
        on: date,
        actor: str,
        command_id: str,
    ) -> None:
        self.notice_id = notice_id
        self.kind = kind
        self.source = source
        self.client_id = client_id
        self.district = district
        self.eviction_date = eviction_date
        self.caseworker = actor
        self.notice_date = on
        self.last_on = on
        self.pilot = pilot
        self.reach_by = reach_by
        self.outreach_from = outreach_from
        self.outreach_due = outreach_due
        self.stage = (
            NoticeStage.OUTREACH_ASSIGNED if pilot
            else NoticeStage.OUTREACH_REQUIRED if kind == NoticeKind.OUTREACH
            else NoticeStage.REACHING
        )
        self.attempts = 0
        self.visits = 0
        self.reached_on: date | None = None
        self.unreached_deadline: datetime | None = None
        self.escalated = False
        self.last_outcome: str | None = None
        self.outcome: str | None = None
        self.closed_on: date | None = None
        self.case_id: str | None = None

    @classmethod
    def register(
        cls,
        notice_id: str,
        kind: str,
        source: str,
        client_id: str,
        district: str,
        eviction_date: date | None = None,
        pilot: str | None = None,
        *,
        on: date,
        actor: str,
        command_id: str,
        today: date,
        at: datetime,
        reach_by: datetime | None,
        outreach_hours: int,
    ) -> Notice:
        """Register a notice dated `on`; `at` is the moment it is registered.

        An eviction notice records `reach_by`, the end of its reach period
        (`domain.notice_deadlines.reach_deadline` of the notice date under the municipality's
        policy), so the deadline a notice was given never changes with a later policy or
        holiday table. An outreach assignment has no reach period: its 48 hours
        (`outreach_hours`) run from `at`, as the effective date has no time of day and the
        pilot cannot be at the door before anyone knows.
        """
        if kind not in {k.value for k in NoticeKind}:
            raise StepNotAllowed(N_("notice {notice}: kind must be eviction or outreach, not {kind}").format(
                notice=notice_id, kind=repr(kind)))
        if on > today:
            raise InvalidDate(N_("notice {notice}: {command} on {on} is after today ({today})").format(
                notice=notice_id, command="register", on=on, today=today))
        if eviction_date is not None and eviction_date < on:
            raise InvalidDate(N_("notice {notice}: the eviction date {eviction_date} is before the "
                                 "notice date {on}").format(notice=notice_id,
                                                            eviction_date=eviction_date, on=on))
        outreach_from = outreach_due = None
        if kind == NoticeKind.EVICTION and reach_by is None:
            raise StepNotAllowed(N_("notice {notice}: an eviction notice needs its reach deadline").format(
                notice=notice_id))
        if kind == NoticeKind.OUTREACH:
            reach_by = None
            outreach_from = at.astimezone(UTC)
            outreach_due = outreach_from + timedelta(hours=outreach_hours)  # clock time
        return cls(
            notice_id=notice_id, kind=kind, source=source, client_id=client_id,
            district=district, eviction_date=eviction_date, pilot=pilot, reach_by=reach_by,
            outreach_from=outreach_from, outreach_due=outreach_due, on=on, actor=actor,
            command_id=command_id,
        )

    # --- queries -------------------------------------------------------------------------

    @property
    def stage_label(self) -> str:
        if self.stage is NoticeStage.CLOSED:
            return N_("closed ({outcome})").format(outcome=self.outcome)
        if self.stage is NoticeStage.OUTREACH_ASSIGNED and self.pilot:
            return N_("assigned to housing pilot {pilot} for outreach").format(pilot=self.pilot)
        return NOTICE_STAGE_LABELS[self.stage]

    def allowed(self) -> list[str]:
        return [s for s in NOTICE_ALLOWED[self.stage] if s != "open_case" or self.case_id is None]

    def allowed_outcomes(self) -> list[str]:
        return list(outcomes_allowed(self.stage, self.last_outcome))

    @property
    def is_open(self) -> bool:
        return self.stage is not NoticeStage.CLOSED

    @property
    def reached(self) -> bool:
        return self.reached_on is not None

    @property
    def outreach_pending(self) -> bool:
        """The 48-hour clock runs and nobody has been at the door or reached the tenant."""
        return (
            self.is_open and self.outreach_due is not None and not self.reached
            and self.visits == 0 and not self.escalated
        )

    # --- guards --------------------------------------------------------------------------

    def check_step(self, command: str, on: date, today: date) -> None:
        allowed = self.allowed()
        if command not in allowed:
            raise self._refuse(command, NOTICE_NEEDS[command])
        if on > today:
            raise InvalidDate(N_("notice {notice}: {command} on {on} is after today ({today})").format(
                notice=self.notice_id, command=command, on=on, today=today))
        if on < self.last_on:
            raise InvalidDate(N_("notice {notice}: {command} on {on} is before the notice's last "
                                 "step on {last_on}").format(notice=self.notice_id, command=command,
                                                             on=on, last_on=self.last_on))

    def _refuse(self, command: str, why: str) -> DomainError:
        return StepNotAllowed(N_("notice {notice} is {stage}: {command} {why}; allowed now: "
                                 "{allowed}").format(
            notice=self.notice_id, stage=self.stage_label, command=command, why=why,
            allowed=", ".join(self.allowed()) or N_("nothing (the notice is closed)")))

    # --- commands ------------------------------------------------------------------------

    def contact_attempt(
        self, reached: bool, channel: str, *, on: date, actor: str, command_id: str, today: date
    ) -> None:
        self.check_step("contact_attempt", on, today)
        self._contact_attempted(
            reached=reached, channel=channel, on=on, actor=actor, command_id=command_id
        )

    def assign_outreach(
        self, pilot: str, *, on: date, actor: str, command_id: str, today: date
    ) -> None:
        self.check_step("assign_outreach", on, today)
        if pilot == self.pilot:
            raise self._refuse("assign_outreach", N_("to {pilot}: {pilot} is already assigned").format(
                pilot=pilot))
        self._outreach_assigned(pilot=pilot, on=on, actor=actor, command_id=command_id)

    def outreach_visit(
        self, reached: bool, note: str, *, on: date, actor: str, command_id: str, today: date
    ) -> None:
        self.check_step("outreach_visit", on, today)
        self._outreach_visited(reached=reached, note=note, on=on, actor=actor, command_id=command_id)

    def record_outcome(
        self, outcome: str, *, on: date, actor: str, command_id: str, today: date
    ) -> None:
        self.check_step("outcome", on, today)
        allowed = self.allowed_outcomes()
        if outcome not in allowed:
            raise StepNotAllowed(N_("notice {notice} is {stage}: outcome {outcome} {why}; outcomes "
                                    "now: {outcomes}").format(
                notice=self.notice_id, stage=self.stage_label, outcome=outcome,
                why=outcome_needs(outcome, self.stage, self.last_outcome),
                outcomes=", ".join(allowed)))
        self._outcome_recorded(outcome=outcome, on=on, actor=actor, command_id=command_id)

    def case_opened(
        self, case_id: str, *, on: date, actor: str, command_id: str, today: date
    ) -> None:
        """A housing case `case_id` was opened from this notice (saved in the same save)."""
        self.check_step("open_case", on, today)
        self._case_opened(case_id=case_id, on=on, actor=actor, command_id=command_id)

    # --- system notes (timers) -----------------------------------------------------------

    def note_unreached(
        self, deadline: datetime, outreach_due: datetime, *, at: datetime, on: date,
        command_id: str,
    ) -> bool:
        """Nobody reached the tenant by `deadline`: outreach is required, due by `outreach_due`
        (the 48-hour clock starts `at`, the moment this is noted)."""
        if (self.kind != NoticeKind.EVICTION or not self.is_open or self.reached
                or self.unreached_deadline is not None or deadline != self.reach_by):
            return False
        self._outreach_required(
            deadline=deadline, outreach_from=at, outreach_due=outreach_due, on=on,
            actor="system", command_id=command_id,
        )
        return True

    def note_escalated(self, deadline: datetime, *, on: date, command_id: str) -> bool:
        """No outreach visit (and no contact) by the outreach `deadline`: escalate."""
        if not self.outreach_pending or deadline != self.outreach_due:
            return False
        self._escalated(deadline=deadline, on=on, actor="system", command_id=command_id)
        return True

    # --- events --------------------------------------------------------------------------

    def _step(self, on: date) -> None:
        self.last_on = on

    def _reach(self, on: date) -> None:
        if self.reached_on is None:
            self.reached_on = on
        self.stage = NoticeStage.IN_CONTACT

    @event("ContactAttempted")
    def _contact_attempted(
        self, reached: bool, channel: str, on: date, actor: str, command_id: str
    ) -> None:
        self.attempts += 1
        if reached:
            self._reach(on)
        self._step(on)

    @event("OutreachAssigned")
    def _outreach_assigned(self, pilot: str, on: date, actor: str, command_id: str) -> None:
        self.pilot = pilot
        self.stage = NoticeStage.OUTREACH_ASSIGNED
        self._step(on)

    @event("OutreachVisited")
    def _outreach_visited(
        self, reached: bool, note: str, on: date, actor: str, command_id: str
    ) -> None:
        self.visits += 1
        if reached:
            self._reach(on)
        self._step(on)

    @event("OutcomeRecorded")
    def _outcome_recorded(self, outcome: str, on: date, actor: str, command_id: str) -> None:
        if outcome in CLOSING_OUTCOMES:
            self.stage = NoticeStage.CLOSED
            self.outcome = outcome
            self.closed_on = on
        else:
            self.last_outcome = outcome
            if outcome == NoticeOutcome.CONTACT_MADE:
                self._reach(on)
        self._step(on)

    @event("HousingCaseOpened")
    def _case_opened(self, case_id: str, on: date, actor: str, command_id: str) -> None:
        self.case_id = case_id
        self._step(on)

    @event("OutreachRequired")
    def _outreach_required(
        self, deadline: datetime, outreach_from: datetime, outreach_due: datetime, on: date,
        actor: str, command_id: str,
    ) -> None:
        self.unreached_deadline = deadline
        self.outreach_from = outreach_from
        self.outreach_due = outreach_due
        if self.stage is NoticeStage.REACHING:
            self.stage = NoticeStage.OUTREACH_REQUIRED

    @event("OutreachEscalated")
    def _escalated(self, deadline: datetime, on: date, actor: str, command_id: str) -> None:
        self.escalated = True


def notice_uuid(notice_id: str) -> UUID:
    return uuid5(NOTICE_NAMESPACE, notice_id)
