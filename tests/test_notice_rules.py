"""The eviction-prevention notice's rules on the aggregate, its two deadlines, and the notice
service on a real SQLite store (idempotency, opening a housing case atomically).

A refused step raises a DomainError that names the notice, where it stands and what is
allowed, and triggers no event: the aggregate's version is unchanged and nothing is pending.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from application.notice_store import (
    execute_notice_step,
    get_notice,
    note_escalated,
    note_unreached,
    notice_history,
    notice_snapshot,
    open_case_from_notice,
)
from application.store import ProcessedCommand
from domain.case import case_uuid
from domain.errors import DomainError, InvalidDate, StepNotAllowed
from domain.notice import Notice, notice_uuid
from domain.notice_commands import case_apply_id, notice_step_adapter
from domain.notice_deadlines import last_reach_day, outreach_deadline, reach_deadline
from domain.notice_stages import (
    NOTICE_ALLOWED,
    NOTICE_NEEDS,
    NoticeStage,
    outcomes_allowed,
)
from domain.policy import Policy
from tests.builders import POLICY, new_chain

START = date(2026, 3, 2)
TODAY = date(2026, 12, 31)
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
STOCKHOLM = ZoneInfo("Europe/Stockholm")
COMMANDS = ("contact_attempt", "assign_outreach", "outreach_visit", "outcome", "open_case")


class Driver:
    """Drives one notice through its commands; each step dated one day after the last."""

    def __init__(self, notice_id: str = "n-1", kind: str = "eviction", pilot: str | None = None):
        self.notice_id = notice_id
        self.day = START
        self.n = 0
        self.notice = Notice.register(
            notice_id, kind, "landlord", "k-7f3a", "Farsta", START + timedelta(days=60), pilot,
            **self.kw(on=START), at=AT, outreach_hours=48,
            reach_by=reach_deadline(START, POLICY) if kind == "eviction" else None,
        )
        self.events = list(self.notice.collect_events())

    def kw(self, on: date | None = None, actor: str = "cw-anna") -> dict[str, Any]:
        self.n += 1
        if on is None:
            self.day += timedelta(days=1)
            on = self.day
        return {"on": on, "actor": actor, "command_id": f"{self.notice_id}:{self.n}",
                "today": TODAY}

    def do(self, command: str, *args: Any, on: date | None = None) -> list[Any]:
        version = self.notice.version
        getattr(self.notice, command)(*args, **self.kw(on=on))
        events = self.notice.collect_events()
        assert self.notice.version == version + len(events)
        self.events += events
        return events

    def refused(self, error: type[DomainError], command: str, *args: Any,
                on: date | None = None) -> str:
        """Try a step that must be refused; check that it left no trace."""
        version, stage, last_on, day = (self.notice.version, self.notice.stage,
                                        self.notice.last_on, self.day)
        with pytest.raises(error) as caught:
            getattr(self.notice, command)(*args, **self.kw(on=on))
        self.day = day
        assert self.notice.version == version
        assert self.notice.pending_events == []
        assert (self.notice.stage, self.notice.last_on) == (stage, last_on)
        return str(caught.value)

    def unreached(self) -> bool:
        deadline = reach_deadline(START, POLICY)
        noted = self.notice.note_unreached(
            deadline, outreach_deadline(deadline, POLICY), at=deadline,
            on=deadline.astimezone(STOCKHOLM).date(), command_id=f"{self.notice_id}:unreached",
        )
        self.events += self.notice.collect_events()
        return noted

    def escalate(self, deadline: datetime | None = None) -> bool:
        due = deadline or self.notice.outreach_due
        assert due is not None
        noted = self.notice.note_escalated(due, on=due.date(),
                                           command_id=f"{self.notice_id}:escalated")
        self.events += self.notice.collect_events()
        return noted


# The ordinary way to each open stage (and CLOSED: the eviction averted).
ROUTES: dict[NoticeStage, list[tuple[str, tuple[Any, ...]]]] = {
    NoticeStage.REACHING: [],
    NoticeStage.OUTREACH_REQUIRED: [("unreached", ())],
    NoticeStage.OUTREACH_ASSIGNED: [("unreached", ()), ("assign_outreach", ("bolots.ahmed",))],
    NoticeStage.IN_CONTACT: [("contact_attempt", (True, "phone"))],
    NoticeStage.CLOSED: [("record_outcome", ("eviction_averted",))],
}


def drive(stage: NoticeStage) -> Driver:
    d = Driver()
    for command, args in ROUTES[stage]:
        if command == "unreached":
            assert d.unreached()
        else:
            d.do(command, *args)
    assert d.notice.stage is stage
    return d


ARGS = {
    "contact_attempt": (False, "phone"),
    "assign_outreach": ("bolots.berg",),
    "outreach_visit": (False, ""),
    "outcome": ("eviction_executed",),
    "open_case": ("c-from-n-1",),
}
METHOD = {"outcome": "record_outcome", "open_case": "case_opened"}


# --- registration ------------------------------------------------------------------------


def test_an_eviction_notice_starts_by_reaching_the_tenant():
    d = Driver()
    [registered] = d.events
    assert type(registered).__name__ == "NoticeRegistered"
    assert (registered.kind, registered.source, registered.client_id) == (
        "eviction", "landlord", "k-7f3a")
    assert (registered.on, registered.actor, registered.command_id) == (START, "cw-anna", "n-1:1")
    assert d.notice.stage is NoticeStage.REACHING
    assert d.notice.outreach_due is None
    assert registered.reach_by == d.notice.reach_by == datetime(2026, 3, 4, tzinfo=STOCKHOLM)
    assert d.notice.allowed() == ["contact_attempt", "assign_outreach", "outcome", "open_case"]
    assert d.notice.allowed_outcomes() == ["contact_made", "eviction_averted", "eviction_executed"]


def test_an_outreach_assignment_starts_with_the_48_hour_clock_from_registration():
    d = Driver(kind="outreach")
    assert d.notice.stage is NoticeStage.OUTREACH_REQUIRED
    assert d.notice.outreach_from == AT
    assert d.notice.outreach_due == AT + timedelta(hours=48)
    assert d.notice.reach_by is None
    assert Driver(kind="outreach", pilot="bolots.ahmed").notice.stage is NoticeStage.OUTREACH_ASSIGNED


def test_register_refuses_a_future_date_an_eviction_date_before_the_notice_and_an_unknown_kind():
    base = {"notice_id": "n-9", "source": "landlord", "client_id": "k-1", "district": "Farsta",
            "actor": "cw", "command_id": "x", "today": TODAY, "at": AT, "outreach_hours": 48,
            "reach_by": reach_deadline(START, POLICY)}
    with pytest.raises(InvalidDate, match="notice n-9: register on 2027-01-01 is after today"):
        Notice.register(kind="eviction", on=date(2027, 1, 1), **base)
    with pytest.raises(InvalidDate, match="eviction date 2026-02-01 is before the notice date"):
        Notice.register(kind="eviction", eviction_date=date(2026, 2, 1), on=START, **base)
    with pytest.raises(StepNotAllowed, match="kind must be eviction or outreach"):
        Notice.register(kind="eviction_notice", on=START, **base)


def test_the_step_models_carry_only_the_pseudonymous_client_id():
    line = {"type": "register", "notice": "n-1", "client": "k-1", "district": "Farsta",
            "on": "2026-03-02", "actor": "cw", "id": "x"}
    assert notice_step_adapter.validate_python(line).kind == "eviction"
    with pytest.raises(ValueError, match="name"):
        notice_step_adapter.validate_python({**line, "name": "Astrid Lindqvist"})
    with pytest.raises(ValueError, match="client"):
        notice_step_adapter.validate_python({**line, "client": "Astrid Lindqvist"})


# --- the transition table ------------------------------------------------------------------


@pytest.mark.parametrize("stage", list(NoticeStage))
@pytest.mark.parametrize("command", COMMANDS)
def test_each_step_is_allowed_exactly_where_the_stage_table_says(stage, command):
    d = drive(stage)
    method = METHOD.get(command, command)
    if command in NOTICE_ALLOWED[stage]:
        d.do(method, *ARGS[command])
        assert d.events[-1].command_id == f"n-1:{d.n}"
    else:
        message = d.refused(StepNotAllowed, method, *ARGS[command])
        assert message.startswith(f"notice n-1 is {d.notice.stage_label}: {command} ")
        assert NOTICE_NEEDS[command] in message
        assert message.endswith("allowed now: " + (", ".join(NOTICE_ALLOWED[stage])
                                                    or "nothing (the notice is closed)"))


def test_a_refusal_names_the_notice_its_stage_and_what_is_allowed():
    d = drive(NoticeStage.OUTREACH_REQUIRED)
    assert d.refused(StepNotAllowed, "outreach_visit", False, "") == (
        "notice n-1 is awaiting outreach: no housing pilot assigned: outreach_visit needs an "
        "outreach assignment to a housing pilot; allowed now: contact_attempt, "
        "assign_outreach, outcome, open_case"
    )


def test_a_successful_contact_attempt_or_visit_puts_the_notice_in_contact():
    d = Driver()
    d.do("contact_attempt", False, "phone")
    d.do("contact_attempt", False, "letter")
    assert d.notice.stage is NoticeStage.REACHING and d.notice.attempts == 2
    d.do("contact_attempt", True, "sms")
    assert d.notice.stage is NoticeStage.IN_CONTACT and d.notice.reached_on == d.day

    v = drive(NoticeStage.OUTREACH_ASSIGNED)
    v.do("outreach_visit", False, "no answer at the door")
    assert v.notice.stage is NoticeStage.OUTREACH_ASSIGNED and v.notice.visits == 1
    v.do("outreach_visit", True, "")
    assert v.notice.stage is NoticeStage.IN_CONTACT


def test_outreach_can_be_reassigned_but_not_to_the_same_pilot():
    d = drive(NoticeStage.OUTREACH_ASSIGNED)
    assert "bolots.ahmed is already assigned" in d.refused(
        StepNotAllowed, "assign_outreach", "bolots.ahmed")
    d.do("assign_outreach", "bolots.berg")
    assert d.notice.pilot == "bolots.berg"
    assert d.notice.stage_label == "assigned to housing pilot bolots.berg for outreach"


# --- outcomes ----------------------------------------------------------------------------


def test_progress_outcomes_need_contact_and_only_move_forward():
    d = Driver()
    message = d.refused(StepNotAllowed, "record_outcome", "meeting_booked")
    assert message == (
        "notice n-1 is awaiting contact with the tenant: outcome meeting_booked needs the "
        "tenant reached (a successful contact attempt or visit, or contact_made); outcomes "
        "now: contact_made, eviction_averted, eviction_executed"
    )
    d.do("record_outcome", "contact_made")
    assert d.notice.stage is NoticeStage.IN_CONTACT and d.notice.reached_on == d.day
    d.do("record_outcome", "support_granted")  # a rung may be skipped
    assert "may not follow support_granted" in d.refused(
        StepNotAllowed, "record_outcome", "meeting_booked")
    assert "may not follow support_granted" in d.refused(
        StepNotAllowed, "record_outcome", "support_granted")
    assert d.notice.allowed_outcomes() == ["eviction_averted", "eviction_executed"]
    d.do("record_outcome", "eviction_averted")
    assert (d.notice.stage, d.notice.outcome, d.notice.closed_on) == (
        NoticeStage.CLOSED, "eviction_averted", d.day)
    assert d.notice.stage_label == "closed (eviction_averted)"


@pytest.mark.parametrize("stage", [s for s in NoticeStage if s is not NoticeStage.CLOSED])
@pytest.mark.parametrize("outcome", ["eviction_averted", "eviction_executed"])
def test_the_eviction_averted_or_executed_closes_the_notice_from_any_open_stage(stage, outcome):
    d = drive(stage)
    d.do("record_outcome", outcome)
    assert d.notice.stage is NoticeStage.CLOSED and d.notice.outcome == outcome
    assert d.notice.allowed() == [] and d.notice.allowed_outcomes() == []
    assert "nothing (the notice is closed)" in d.refused(StepNotAllowed, "contact_attempt",
                                                         True, "phone")


def test_outcomes_allowed_is_the_same_table_for_the_validator():
    assert outcomes_allowed("reaching", None) == (
        "contact_made", "eviction_averted", "eviction_executed")
    assert outcomes_allowed("in_contact", "contact_made") == (
        "meeting_booked", "support_granted", "eviction_averted", "eviction_executed")
    assert outcomes_allowed("in_contact", "meeting_booked") == (
        "support_granted", "eviction_averted", "eviction_executed")
    assert outcomes_allowed("closed", "contact_made") == ()


# --- dates -------------------------------------------------------------------------------


def test_a_step_dated_in_the_future_or_before_the_last_step_is_refused():
    d = Driver()
    d.do("contact_attempt", False, "phone", on=START + timedelta(days=5))
    assert d.refused(InvalidDate, "contact_attempt", True, "phone",
                     on=START + timedelta(days=4)) == (
        "notice n-1: contact_attempt on 2026-03-06 is before the notice's last step on "
        "2026-03-07"
    )
    assert "is after today (2026-12-31)" in d.refused(
        InvalidDate, "contact_attempt", True, "phone", on=TODAY + timedelta(days=1))


def test_system_notes_do_not_move_the_last_step_date():
    d = Driver()
    assert d.unreached()
    assert d.notice.last_on == START
    d.do("contact_attempt", True, "phone", on=START)  # recorded late, dated the notice day
    assert d.notice.stage is NoticeStage.IN_CONTACT


# --- the reach and outreach notes ----------------------------------------------------------


def test_not_reached_in_time_requires_outreach_once():
    d = Driver()
    assert d.unreached()
    [required] = d.events[1:]
    assert type(required).__name__ == "OutreachRequired"
    assert required.actor == "system"
    deadline = reach_deadline(START, POLICY)
    assert (required.deadline, required.outreach_from, required.outreach_due) == (
        deadline, deadline, deadline + timedelta(hours=48))
    assert d.notice.stage is NoticeStage.OUTREACH_REQUIRED
    assert not d.unreached()
    assert len(d.events) == 2


def test_outreach_is_required_only_at_the_notice_own_reach_deadline():
    d = Driver()
    assert d.notice.reach_by is not None
    earlier = d.notice.reach_by - timedelta(days=1)
    assert not d.notice.note_unreached(earlier, outreach_deadline(earlier, POLICY), at=earlier,
                                       on=earlier.date(), command_id="n-1:early")
    assert d.notice.pending_events == []


def test_outreach_is_not_required_once_the_tenant_is_reached_or_for_an_outreach_assignment():
    d = drive(NoticeStage.IN_CONTACT)
    assert not d.unreached()
    assert not Driver(kind="outreach").unreached()
    closed = drive(NoticeStage.CLOSED)
    assert not closed.unreached()


def test_a_pilot_sent_early_stays_assigned_when_the_reach_deadline_passes():
    d = Driver()
    d.do("assign_outreach", "bolots.ahmed")
    assert d.unreached()
    assert d.notice.stage is NoticeStage.OUTREACH_ASSIGNED
    assert d.notice.outreach_pending


def test_escalation_when_nobody_visited_within_48_hours_once():
    d = drive(NoticeStage.OUTREACH_ASSIGNED)
    assert not d.escalate(d.notice.outreach_due - timedelta(hours=1))  # not its deadline
    assert d.escalate()
    assert type(d.events[-1]).__name__ == "OutreachEscalated"
    assert d.events[-1].deadline == d.notice.outreach_due
    assert d.notice.escalated and d.notice.stage is NoticeStage.OUTREACH_ASSIGNED
    assert not d.escalate()


def test_no_escalation_after_a_visit_or_a_contact_or_the_notice_closed():
    visited = drive(NoticeStage.OUTREACH_ASSIGNED)
    visited.do("outreach_visit", False, "")
    assert not visited.escalate()
    phoned = drive(NoticeStage.OUTREACH_REQUIRED)
    phoned.do("contact_attempt", True, "phone")
    assert not phoned.escalate()
    averted = drive(NoticeStage.OUTREACH_REQUIRED)
    averted.do("record_outcome", "eviction_averted")
    assert not averted.escalate()
    assert not Driver().escalate(AT)  # no outreach clock yet


def test_an_outreach_assignment_escalates_without_a_visit():
    d = Driver(kind="outreach")
    assert d.escalate()
    assert d.notice.escalated


def test_a_housing_case_can_be_opened_from_a_notice_once():
    d = drive(NoticeStage.IN_CONTACT)
    d.do("case_opened", "c-9")
    assert d.notice.case_id == "c-9"
    assert "open_case" not in d.notice.allowed()
    assert "no housing case opened from it yet" in d.refused(StepNotAllowed, "case_opened", "c-10")


# --- the deadlines -------------------------------------------------------------------------


def local(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=STOCKHOLM)


@pytest.mark.parametrize(("notice_day", "last_day", "why"), [
    (date(2026, 11, 24), date(2026, 11, 25), "Tuesday: the next day"),
    (date(2026, 11, 27), date(2026, 11, 30), "an ordinary Friday: Monday"),
    (date(2025, 1, 3), date(2025, 1, 7), "Friday before Epiphany Monday: Tuesday"),
    (date(2028, 4, 28), date(2028, 5, 2), "Friday before May Day Monday: Tuesday"),
    (date(2026, 4, 2), date(2026, 4, 7), "Maundy Thursday: Tuesday after Easter Monday"),
    (date(2026, 4, 3), date(2026, 4, 7), "Good Friday: Tuesday"),
    (date(2026, 11, 28), date(2026, 11, 30), "Saturday: Monday"),
    (date(2028, 12, 22), date(2028, 12, 27), "Friday before Christmas Monday: Wednesday"),
])
def test_the_reach_deadline_is_the_end_of_the_next_swedish_working_day(notice_day, last_day, why):
    assert last_reach_day(notice_day, POLICY) == last_day, why
    assert reach_deadline(notice_day, POLICY) == local(last_day + timedelta(days=1)), why


def test_the_reach_deadline_follows_the_policy_country_and_working_days():
    norway = Policy(country="NO", time_zone="Europe/Oslo")
    # Skjærtorsdag is a public holiday in Norway, not in Sweden.
    assert last_reach_day(date(2026, 4, 1), norway) == date(2026, 4, 7)
    assert last_reach_day(date(2026, 4, 1), POLICY) == date(2026, 4, 2)
    same_day = Policy(reach_within_working_days=0)
    assert last_reach_day(date(2026, 11, 24), same_day) == date(2026, 11, 24)
    assert last_reach_day(date(2026, 11, 28), same_day) == date(2026, 11, 30)
    assert last_reach_day(date(2026, 11, 27), Policy(reach_within_working_days=3)) == date(
        2026, 12, 2)
    # midnight in the municipality's zone: 23:00 UTC in winter, 22:00 in summer
    assert reach_deadline(date(2026, 11, 24), POLICY).astimezone(UTC).hour == 23
    assert reach_deadline(date(2026, 6, 2), POLICY).astimezone(UTC).hour == 22


def test_the_48_hours_are_clock_time_across_a_daylight_saving_change():
    started = local(date(2026, 3, 28), 12)  # summer time begins on Sunday 29 March
    due = outreach_deadline(started, POLICY)
    assert due - started == timedelta(hours=48)
    assert due.astimezone(STOCKHOLM).hour == 13
    # (adding hours to the local time would give 12:00 on Sunday, 23 real hours later)
    day_later = outreach_deadline(started, Policy(outreach_hours=24))
    assert day_later.astimezone(STOCKHOLM) == local(date(2026, 3, 29), 13)


# --- the service: idempotent steps, the housing case opened atomically ----------------------


@pytest.fixture
def app(tmp_path):
    a = new_chain(tmp_path / "events.sqlite")
    yield a
    a.close()


def line(type_: str, n: int, **fields: Any) -> Any:
    return notice_step_adapter.validate_python({
        "type": type_, "notice": "n-1", "on": START.isoformat(), "actor": "cw-anna",
        "id": f"cmd-{n}", **fields})


def run(app, step) -> Any:
    return execute_notice_step(app, step, today=TODAY, policy=POLICY, now=AT)


def stored(app) -> int:
    return app.recorder.max_notification_id() or 0


def register(app) -> None:
    run(app, line("register", 0, client="k-7f3a", district="Farsta"))


def test_the_same_notice_command_twice_gives_one_event_and_the_first_result(app):
    register(app)
    first = run(app, line("contact_attempt", 1, reached=True))
    count = stored(app)
    again = run(app, line("contact_attempt", 1, reached=True))
    assert first.accepted and first.events == ["ContactAttempted"] and first.stage == "in_contact"
    assert again == first.model_copy(update={"duplicate": True})
    assert stored(app) == count
    assert [r["event"] for r in notice_history(app, "n-1")] == [
        "NoticeRegistered", "ContactAttempted"]


def test_a_refused_notice_step_stores_nothing(app):
    register(app)
    count = stored(app)
    with pytest.raises(StepNotAllowed, match="outreach_visit needs an outreach assignment"):
        run(app, line("outreach_visit", 1, reached=False))
    with pytest.raises(DomainError, match="notice n-2 does not exist: register it first"):
        run(app, line("contact_attempt", 2, reached=True).model_copy(update={"notice": "n-2"}))
    with pytest.raises(DomainError, match="notice n-1 already exists"):
        run(app, line("register", 3, client="k-1", district="Farsta"))
    assert stored(app) == count
    assert app.processed("cmd-1", notice_uuid("n-1")) is None


def test_open_case_saves_the_application_and_the_notice_together(app):
    register(app)
    result = open_case_from_notice(
        app, line("open_case", 1, case="c-77", target_group="families_with_children",
                  household={"adults": 1, "children": 2}),
        today=TODAY, policy=POLICY)
    assert result.events == ["Applied", "HousingCaseOpened"]
    case = app.get_case("c-77")
    assert (case.client_id, case.district, case.household, case.referral, case.applied_on) == (
        "k-7f3a", "Farsta", (1, 2), "other_unit", START)
    assert [r["event"] for r in app.history("c-77")] == ["Applied"]
    assert app.history("c-77")[0]["command_id"] == case_apply_id("cmd-1")
    assert get_notice(app, "n-1").case_id == "c-77"
    # both markers, so the case workflow's own `apply` with that id is answered from the store
    assert app.processed(case_apply_id("cmd-1"), case_uuid("c-77")).stage == "applied"
    assert app.processed("cmd-1", notice_uuid("n-1")).accepted
    # one save: the notice event, the case event and both markers under consecutive ids
    notifications = app.recorder.select_notifications(start=1, limit=100)
    topics = [n.topic.split(":")[-1] for n in notifications[-4:]]
    assert sorted(topics) == sorted(["Notice.HousingCaseOpened", "Case.Applied",
                                     "ProcessedCommand.Processed", "ProcessedCommand.Processed"])


def test_open_case_for_an_existing_case_id_records_nothing(app):
    from tests.builders import Lines, client

    register(app)
    app.execute(Lines()("apply", on=START, case="c-77", client=client("k-other")),
                today=TODAY, policy=POLICY)
    count = stored(app)
    with pytest.raises(DomainError, match="case c-77 already exists"):
        run(app, line("open_case", 1, case="c-77", target_group="other"))
    assert stored(app) == count
    assert get_notice(app, "n-1").case_id is None
    assert app.processed(case_apply_id("cmd-1"), case_uuid("c-77")) is None


def test_the_system_notes_are_idempotent_by_command_id(app):
    register(app)
    deadline = reach_deadline(START, POLICY)
    due = outreach_deadline(deadline, POLICY)
    args = {"at": deadline, "on": deadline.date(), "command_id": "notice-n-1:reach"}
    assert note_unreached(app, "n-1", deadline, due, **args)
    count = stored(app)
    assert note_unreached(app, "n-1", deadline, due, **args)  # the first answer again
    assert stored(app) == count
    assert note_escalated(app, "n-1", due, on=due.date(), command_id="notice-n-1:outreach")
    snap = notice_snapshot(app, "n-1")
    assert snap.reach_by == deadline  # computed from the notice date and policy at registration
    assert (snap.unreached_deadline, snap.outreach_due, snap.escalated) == (deadline, due, True)
    assert [r["event"] for r in notice_history(app, "n-1")] == [
        "NoticeRegistered", "OutreachRequired", "OutreachEscalated"]
    marker = app.repository.get(ProcessedCommand.create_id("notice-n-1:reach", notice_uuid("n-1")))
    assert marker.result["events"] == ["OutreachRequired"]
