"""The eviction-prevention workflow on the real time-skipping Temporal server: the reach
deadline in Swedish working days, the 48-hour outreach deadline (met, missed, escalated),
outcomes, a housing case opened from a notice, refusals that leave no trace."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from application.gateway import ChainClient, Refused
from application.notice_gateway import NoticeClient
from application.notice_store import notice_history, notice_snapshot
from application.store import HousingChain
from config.settings import Settings
from domain.commands import import_line_adapter
from domain.notice_commands import notice_step_adapter
from domain.notice_views import NoticeSnapshot
from domain.policy import Policy
from domain.workdays import add_working_days, is_working_day
from tests.builders import unique_id
from worker import build_worker
from workflows.case import CaseWorkflow
from workflows.eviction import EvictionPreventionWorkflow, notice_workflow_id
from workflows.eviction_messages import NoticeStart, NoticeStatus

pytestmark = pytest.mark.slow

ZONE = ZoneInfo(Policy().time_zone)
H48 = timedelta(hours=48)


class Notices:
    """A worker on its own task queue (the real `build_worker`), the store it writes to, and
    a client to send notice steps."""

    def __init__(self, env: WorkflowEnvironment, store: HousingChain, data: Path) -> None:
        self.env = env
        self.store = store
        self.policy = Policy()
        self.settings = Settings(task_queue=f"test-{uuid.uuid4()}", data=data)
        self.client = NoticeClient(env.client, self.settings, self.policy)
        self.chain = ChainClient(env.client, self.settings, self.policy)
        self.n = 0
        self.notices: set[str] = set()
        self.cases: set[str] = set()

    async def close(self) -> None:
        """Terminate this test's workflows: their timers would hold the shared server's clock."""
        ids = [notice_workflow_id(n) for n in self.notices] + [f"case-{c}" for c in self.cases]
        for workflow_id in ids:
            try:
                await self.env.client.get_workflow_handle(workflow_id).terminate("test finished")
            except Exception:  # noqa: BLE001 - already closed
                pass

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def today(self) -> date:
        return (await self.now()).astimezone(ZONE).date()

    async def sleep_until(self, moment: datetime) -> None:
        delta = moment - await self.now()
        assert delta > timedelta(0), f"{moment} is already past"
        await self.env.sleep(delta)

    async def step(self, **fields):
        """Send one notice step dated today unless `on` is given; returns the LineResult."""
        self.n += 1
        fields.setdefault("on", (await self.today()).isoformat())
        fields.setdefault("actor", "handlaggare.lind")
        fields.setdefault("id", unique_id(f"t{self.n}"))
        step = notice_step_adapter.validate_python(fields)
        if step.type == "register":
            self.notices.add(step.notice)
        if step.type == "open_case":
            self.cases.add(step.case)
        return await self.client.send_notice(step)

    async def register(self, notice: str, **fields):
        fields.setdefault("client", f"k-{notice}")
        fields.setdefault("district", "Farsta")
        return await self.step(type="register", notice=notice, **fields)

    async def status(self, notice: str) -> NoticeStatus:
        return await self.client.notice_status(notice)

    def events(self, notice: str) -> list[str]:
        return [row["event"] for row in notice_history(self.store, notice)]

    def details(self, notice: str, event: str) -> list[dict]:
        return [row["details"] for row in notice_history(self.store, notice)
                if row["event"] == event]

    def snapshot(self, notice: str) -> NoticeSnapshot:
        return notice_snapshot(self.store, notice)

    def handle(self, notice: str):
        return self.env.client.get_workflow_handle_for(
            EvictionPreventionWorkflow.run, notice_workflow_id(notice))


@pytest_asyncio.fixture
async def notices(time_skipping: WorkflowEnvironment, store: HousingChain,
                  tmp_path: Path) -> AsyncIterator[Notices]:
    h = Notices(time_skipping, store, tmp_path)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(time_skipping.client, h.settings, store, executor):
            yield h
            await h.close()


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZONE)


async def next_day(h: Notices, wanted: Callable[[date], bool]) -> date:
    day = await h.today() + timedelta(days=1)
    while not wanted(day):
        day += timedelta(days=1)
    return day


async def trace_of_steps(handle) -> list[str]:
    """History events a step leaves: updates, activities, markers, timers (as in
    tests/test_case_workflow.py)."""
    history = await handle.fetch_history()
    kinds = ("UPDATE", "ACTIVITY", "MARKER", "TIMER")
    return [EventType.Name(e.event_type) for e in history.events
            if any(k in EventType.Name(e.event_type) for k in kinds)]


async def unreached(h: Notices, notice: str) -> NoticeSnapshot:
    """A notice registered today whose reach deadline has just passed."""
    await h.register(notice)
    deadline = (await h.status(notice)).reach_deadline
    assert deadline is not None
    await h.sleep_until(deadline + timedelta(seconds=1))
    assert h.events(notice) == ["NoticeRegistered", "OutreachRequired"]
    return h.snapshot(notice)


# --- the reach deadline: one working day, Swedish holidays ----------------------------------


async def test_a_tenant_reached_in_time_needs_no_outreach(notices):
    h = notices
    await h.register("r-1")
    deadline = (await h.status("r-1")).reach_deadline
    await h.step(type="contact_attempt", notice="r-1", reached=False, channel="phone")
    await h.env.sleep(timedelta(hours=2))
    result = await h.step(type="contact_attempt", notice="r-1", reached=True, channel="sms")
    assert result.stage == "in_contact"
    await h.sleep_until(deadline + timedelta(days=5))
    assert h.events("r-1") == ["NoticeRegistered", "ContactAttempted", "ContactAttempted"]
    status = await h.status("r-1")
    assert (status.stage, status.due, status.outreach_due) == ("in_contact", [], None)


async def test_a_friday_notice_must_be_answered_by_the_end_of_monday(notices):
    h = notices
    friday = await next_day(h, lambda d: d.weekday() == 4 and is_working_day(d)
                            and add_working_days(d, 1) == d + timedelta(days=3))
    await h.sleep_until(at(friday, 10))
    await h.register("f-1")
    tuesday = friday + timedelta(days=4)
    status = await h.status("f-1")
    assert status.reach_deadline == at(tuesday)
    assert [(i.kind, i.deadline) for i in status.due] == [("reach", at(tuesday))]

    await h.sleep_until(at(tuesday) - timedelta(minutes=1))  # Monday 23:59
    assert h.events("f-1") == ["NoticeRegistered"]
    await h.env.sleep(timedelta(minutes=2))
    assert h.events("f-1") == ["NoticeRegistered", "OutreachRequired"]
    [required] = h.details("f-1", "OutreachRequired")
    assert required["deadline"] == at(tuesday)
    assert timedelta(0) <= required["outreach_from"] - at(tuesday) < timedelta(seconds=1)
    assert required["outreach_due"] == required["outreach_from"] + H48
    status = await h.status("f-1")
    assert status.stage == "outreach_required"
    assert [(i.kind, i.deadline) for i in status.due] == [("outreach", required["outreach_due"])]


async def test_a_friday_notice_before_a_holiday_monday_is_answered_by_tuesday(notices):
    h = notices
    # the next working Friday whose Monday is a public holiday (2028-04-28, before May Day)
    friday = await next_day(h, lambda d: d.weekday() == 4 and is_working_day(d)
                            and add_working_days(d, 1).weekday() == 1)
    tuesday = friday + timedelta(days=4)
    assert not is_working_day(friday + timedelta(days=3))
    await h.sleep_until(at(friday, 15))
    await h.register("f-2", source="enforcement_authority",
                     eviction_date=(friday + timedelta(days=30)).isoformat())
    assert (await h.status("f-2")).reach_deadline == at(tuesday + timedelta(days=1))

    await h.sleep_until(at(tuesday, 0, 1))  # past the end of an ordinary Monday
    assert h.events("f-2") == ["NoticeRegistered"]
    await h.sleep_until(at(tuesday, 23, 59))
    assert h.events("f-2") == ["NoticeRegistered"]
    await h.env.sleep(timedelta(minutes=2))
    assert h.events("f-2") == ["NoticeRegistered", "OutreachRequired"]
    assert h.details("f-2", "OutreachRequired")[0]["deadline"] == at(tuesday + timedelta(days=1))


async def test_a_notice_recorded_late_requires_outreach_once_the_notice_is_quiet(notices):
    h = notices
    # Friday 3 January 2025, before Epiphany Monday: it had to be answered by Tuesday's end.
    await h.register("late-1", on="2025-01-03")
    assert (await h.status("late-1")).reach_deadline == at(date(2025, 1, 8))
    await h.env.sleep(timedelta(seconds=60))
    assert h.events("late-1") == ["NoticeRegistered"]  # the import may still be arriving
    await h.env.sleep(timedelta(seconds=90))
    assert h.events("late-1") == ["NoticeRegistered", "OutreachRequired"]
    [required] = h.details("late-1", "OutreachRequired")
    assert required["deadline"] == at(date(2025, 1, 8))
    assert required["outreach_from"] > at(date(2025, 1, 8)) + timedelta(days=300)
    assert required["outreach_due"] == required["outreach_from"] + H48


# --- the 48-hour outreach deadline ------------------------------------------------------------


async def test_an_outreach_visit_at_47_hours_meets_the_deadline(notices):
    h = notices
    snap = await unreached(h, "o-1")
    assert snap.outreach_due == snap.outreach_from + H48
    await h.env.sleep(timedelta(hours=1))
    await h.step(type="assign_outreach", notice="o-1", pilot="bolots.ahmed")
    await h.sleep_until(snap.outreach_from + timedelta(hours=47))
    result = await h.step(type="outreach_visit", notice="o-1", reached=False,
                          note="no answer; a note left at the door", actor="bolots.ahmed")
    assert result.stage == "outreach_assigned"
    assert (await h.status("o-1")).due == []
    await h.sleep_until(snap.outreach_due + timedelta(days=3))
    assert "OutreachEscalated" not in h.events("o-1")
    assert not (await h.status("o-1")).escalated


async def test_a_missed_outreach_deadline_escalates_at_48_hours_exactly(notices):
    h = notices
    snap = await unreached(h, "o-2")
    await h.step(type="assign_outreach", notice="o-2", pilot="bolots.ahmed")
    await h.sleep_until(snap.outreach_from + H48 - timedelta(seconds=1))
    assert "OutreachEscalated" not in h.events("o-2")
    await h.env.sleep(timedelta(seconds=2))
    assert h.events("o-2") == [
        "NoticeRegistered", "OutreachRequired", "OutreachAssigned", "OutreachEscalated"]
    [escalated] = h.details("o-2", "OutreachEscalated")
    assert escalated["deadline"] == snap.outreach_from + H48
    status = await h.status("o-2")
    assert (status.escalated, status.stage, status.due) == (True, "outreach_assigned", [])
    # the visit is still recorded afterwards, and nothing is raised twice
    await h.step(type="outreach_visit", notice="o-2", reached=True, actor="bolots.ahmed")
    await h.env.sleep(timedelta(days=10))
    assert h.events("o-2").count("OutreachEscalated") == 1


async def test_contact_made_by_phone_within_48_hours_cancels_the_escalation(notices):
    h = notices
    snap = await unreached(h, "o-3")
    await h.sleep_until(snap.outreach_from + timedelta(hours=20))
    await h.step(type="contact_attempt", notice="o-3", reached=True, channel="phone")
    await h.sleep_until(snap.outreach_due + timedelta(days=1))
    assert h.events("o-3") == ["NoticeRegistered", "OutreachRequired", "ContactAttempted"]


async def test_an_outreach_assignment_starts_with_the_48_hour_clock(notices):
    h = notices
    before = await h.now()
    await h.register("u-1", kind="outreach", source="other", pilot="bolots.ahmed")
    after = await h.now()
    status = await h.status("u-1")
    assert (status.stage, status.reach_deadline, status.pilot) == (
        "outreach_assigned", None, "bolots.ahmed")
    assert before + H48 <= status.outreach_due <= after + H48
    await h.sleep_until(status.outreach_due - timedelta(seconds=1))
    assert h.events("u-1") == ["NoticeRegistered"]
    await h.env.sleep(timedelta(seconds=2))
    assert h.events("u-1") == ["NoticeRegistered", "OutreachEscalated"]


# --- outcomes, the housing case, refusals --------------------------------------------------------


async def test_outcomes_close_the_notice_and_end_the_workflow(notices):
    h = notices
    await h.register("c-1")
    await h.step(type="contact_attempt", notice="c-1", reached=True)
    await h.step(type="outcome", notice="c-1", outcome="meeting_booked")
    await h.step(type="outcome", notice="c-1", outcome="support_granted")
    result = await h.step(type="outcome", notice="c-1", outcome="eviction_averted")
    assert result.stage == "closed"
    outcome = await h.handle("c-1").result()
    assert (outcome.outcome, outcome.closed_on) == ("eviction_averted", await h.today())
    with pytest.raises(Refused, match=r"notice c-1 is closed \(eviction_averted\)"):
        await h.step(type="contact_attempt", notice="c-1", reached=True)

    await h.register("c-2")
    await h.step(type="outcome", notice="c-2", outcome="eviction_executed")
    assert (await h.handle("c-2").result()).outcome == "eviction_executed"
    assert h.events("c-2") == ["NoticeRegistered", "OutcomeRecorded"]


async def test_a_housing_case_is_opened_from_a_notice(notices):
    h = notices
    await h.register("h-1", client="k-7f3a", district="Skärholmen")
    await h.step(type="contact_attempt", notice="h-1", reached=True)
    result = await h.step(type="open_case", notice="h-1", case="hc-1",
                          target_group="families_with_children",
                          household={"adults": 1, "children": 2})
    assert result.events == ["Applied", "HousingCaseOpened"]
    case = h.store.get_case("hc-1")
    assert (case.client_id, case.district, case.household) == ("k-7f3a", "Skärholmen", (1, 2))
    assert [r["event"] for r in h.store.history("hc-1")] == ["Applied"]
    assert h.events("h-1")[-1] == "HousingCaseOpened"
    assert (await h.status("h-1")).case == "hc-1"
    # the case has its own workflow, and goes on the ordinary way
    case_handle = h.env.client.get_workflow_handle_for(CaseWorkflow.run, "case-hc-1")
    assert (await case_handle.query(CaseWorkflow.status)).stage == "applied"
    start = import_line_adapter.validate_python({
        "type": "start_assessment", "case": "hc-1", "on": (await h.today()).isoformat(),
        "actor": "handlaggare.lind", "id": unique_id("sa")})
    assert (await h.chain.send(start)).stage == "assessment"
    with pytest.raises(Refused, match="open_case needs an open notice with no housing case"):
        await h.step(type="open_case", notice="h-1", case="hc-2", target_group="other")
    # closing the notice leaves the case running
    await h.step(type="outcome", notice="h-1", outcome="eviction_executed")
    assert (await h.handle("h-1").result()).case == "hc-1"
    assert (await case_handle.query(CaseWorkflow.status)).stage == "assessment"


async def test_refused_steps_leave_no_trace(notices):
    h = notices
    await h.register("x-1")
    handle = h.handle("x-1")
    before_history = await trace_of_steps(handle)
    before_events = h.events("x-1")
    with pytest.raises(Refused) as refused:
        await h.step(type="outreach_visit", notice="x-1", reached=True)
    assert str(refused.value) == (
        "notice x-1 is awaiting contact with the tenant: outreach_visit needs an outreach "
        "assignment to a housing pilot; allowed now: contact_attempt, assign_outreach, "
        "outcome, open_case"
    )
    with pytest.raises(Refused, match="outcome meeting_booked needs the tenant reached"):
        await h.step(type="outcome", notice="x-1", outcome="meeting_booked")
    today = await h.today()
    with pytest.raises(Refused, match="is after today"):
        await h.step(type="contact_attempt", notice="x-1", reached=True,
                     on=(today + timedelta(days=1)).isoformat())
    with pytest.raises(Refused, match="is before the notice's last step"):
        await h.step(type="contact_attempt", notice="x-1", reached=True,
                     on=(today - timedelta(days=1)).isoformat())
    with pytest.raises(Refused, match="notice x-1 already exists"):
        await h.register("x-1")
    with pytest.raises(Refused, match="notice ghost does not exist: register it first"):
        await h.step(type="contact_attempt", notice="ghost", reached=True)
    assert await trace_of_steps(handle) == before_history
    assert h.events("x-1") == before_events

    await h.step(type="assign_outreach", notice="x-1", pilot="bolots.ahmed")
    before_history = await trace_of_steps(handle)
    with pytest.raises(Refused, match="bolots.ahmed is already assigned"):
        await h.step(type="assign_outreach", notice="x-1", pilot="bolots.ahmed")
    assert await trace_of_steps(handle) == before_history


async def test_the_same_notice_command_twice_gives_one_event(notices):
    h = notices
    await h.register("i-1")
    first = await h.step(type="contact_attempt", notice="i-1", reached=False, id="same-command")
    again = await h.step(type="contact_attempt", notice="i-1", reached=False, id="same-command")
    assert first.accepted
    # Temporal answers the repeated update id with the first result; the service's marker
    # would answer a retried activity the same way
    assert again.model_dump(exclude={"duplicate"}) == first.model_dump(exclude={"duplicate"})
    assert h.events("i-1").count("ContactAttempted") == 1


async def test_a_long_notice_continues_as_new_and_keeps_its_deadline_and_command_ids(notices):
    h = notices
    handle = await h.env.client.start_workflow(
        EvictionPreventionWorkflow.run, NoticeStart(notice="l-1", policy=h.policy,
                                                    history_limit=100),
        id=notice_workflow_id("l-1"), task_queue=h.settings.task_queue,
    )
    await h.register("l-1")  # update-with-start finds the running workflow
    deadline = (await h.status("l-1")).reach_deadline
    await h.step(type="contact_attempt", notice="l-1", reached=False, id="attempt-0")
    for _ in range(30):
        await h.step(type="contact_attempt", notice="l-1", reached=False, channel="sms")
    latest = h.env.client.get_workflow_handle(notice_workflow_id("l-1"))
    assert (await latest.describe()).run_id != handle.first_execution_run_id
    again = await h.step(type="contact_attempt", notice="l-1", reached=False, id="attempt-0")
    assert again.duplicate
    assert h.events("l-1").count("ContactAttempted") == 31
    status = await h.status("l-1")
    assert (status.stage, status.reach_deadline) == ("reaching", deadline)
    await h.sleep_until(deadline + timedelta(seconds=1))
    assert h.events("l-1")[-1] == "OutreachRequired"
    assert h.events("l-1").count("OutreachRequired") == 1


async def test_a_missed_outreach_escalation_is_delivered_to_the_supervisor(notices):
    """The escalation goes through the reminder delivery (outbox; e-mail when configured)."""
    from activities.notify import Notifier

    h = notices
    await h.register("dl-1", kind="outreach", pilot="bolots.ahmed")
    await h.env.sleep(timedelta(hours=49))
    assert "OutreachEscalated" in h.events("dl-1")
    outbox = Notifier(h.settings).outbox
    rows = outbox._execute("SELECT reminder_id, status FROM outbox")
    assert any(r[0].startswith("notice-dl-1:outreach:") for r in rows), rows
