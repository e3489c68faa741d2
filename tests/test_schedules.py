"""Scheduled reports: the periods a run reports on, and the Temporal Schedules of a real
embedded stack (`housing-chain up` in a subprocess) writing the CSV the `report` command
prints."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client

from application.codec import CodecKeys, data_converter
from application.gateway import today_in
from application.schedules import RETENTION_SCHEDULE_ID, SCHEDULE_IDS, ensure_schedules
from config.settings import Settings
from domain.calendar import add_months, quarter_bounds, quarter_of
from domain.policy import Policy
from tests.stack import Stack
from workflows.messages import ScheduledReport
from workflows.reports import ScheduledReportWorkflow, previous_period

TODAY = today_in(Policy())
THIS_QUARTER_STARTS = quarter_bounds(quarter_of(TODAY))[0]
LAST_QUARTER = quarter_of(THIS_QUARTER_STARTS - timedelta(days=1))
LQ_FIRST, LQ_LAST = quarter_bounds(LAST_QUARTER)


@pytest.mark.parametrize(("today", "ivo", "monthly", "yearly"), [
    (date(2026, 10, 1), "2026Q3", "2026-09", "2025"),
    (date(2026, 11, 24), "2026Q3", "2026-10", "2025"),
    (date(2026, 1, 1), "2025Q4", "2025-12", "2025"),
    (date(2026, 4, 1), "2026Q1", "2026-03", "2025"),
    (date(2027, 1, 1), "2026Q4", "2026-12", "2026"),
])
def test_a_run_reports_the_period_that_has_just_ended(today, ivo, monthly, yearly):
    assert [previous_period(k, today) for k in ("ivo", "monthly", "yearly")] == [
        ivo, monthly, yearly]


# --- against a real stack -----------------------------------------------------------------------

def on(day: date) -> str:
    return day.isoformat()


def granted(case: str, decided: date) -> list[dict]:
    return [
        {"type": "apply", "case": case, "on": on(decided - timedelta(days=20)),
         "actor": "handlaggare.lind",
         "client": {"id": f"p-{case}", "target_group": "young_adults", "district": "Farsta"}},
        {"type": "start_assessment", "case": case, "on": on(decided - timedelta(days=15))},
        {"type": "decide", "case": case, "on": on(decided), "outcome": "granted",
         "programme": "training_apartment"},
    ]


def moves_in(case: str, apartment: str, day: date) -> list[dict]:
    return [
        {"type": "offer", "case": case, "on": on(day - timedelta(days=6)), "apartment": apartment},
        {"type": "landlord_decision", "case": case, "on": on(day - timedelta(days=3)),
         "approved": True, "actor": "Stockholmshem"},
        {"type": "move_in", "case": case, "on": on(day), "apartment": apartment},
    ]


def scenario() -> list[dict]:
    """Last quarter has one decision still unexecuted after three months (s-late), one
    executed late within it (s-slow), and one executed in time (s-fine, not reported)."""
    early = add_months(LQ_FIRST, -6)
    lines = [{"type": "register_apartment", "apartment": a, "landlord": "Stockholmshem",
              "rooms": 1, "on": on(early)} for a in ("lgh-s1", "lgh-s2")]
    lines += granted("s-late", add_months(LQ_FIRST, -1))
    lines += granted("s-slow", add_months(LQ_FIRST, -4))
    lines += moves_in("s-slow", "lgh-s1", LQ_FIRST + timedelta(days=10))
    lines += granted("s-fine", add_months(LQ_FIRST, -1))
    lines += moves_in("s-fine", "lgh-s2", LQ_FIRST + timedelta(days=20))
    return lines


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack.on_free_ports(tmp_path_factory.mktemp("schedules"))
    s.start()
    path = s.data / "scenario.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in scenario()) + "\n", encoding="utf-8")
    imported = s.run("import", str(path), "--json")
    assert json.loads(imported.stdout) == {"accepted": len(scenario()), "duplicates": 0, "refused": []}, (
        imported.stdout + imported.stderr)
    yield s
    s.stop()


def settings_of(stack: Stack) -> Settings:
    return Settings(temporal_address=stack.env["TEMPORAL_ADDRESS"], data=stack.data)


async def connect(settings: Settings) -> Client:
    """A plain client: the test process may already have a Temporal runtime (another test's
    time-skipping server), which `application.gateway.connect` would try to replace. It
    encrypts with the stack's codec keys, as the stack's worker does."""
    return await Client.connect(settings.temporal_address,
                                data_converter=data_converter(CodecKeys.load(settings.data)))


def wait_for(path: Path, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.2)
    return path.read_text(encoding="utf-8")


def report_csv(stack: Stack, *args: str) -> str:
    result = stack.run("report", *args, "--csv")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_the_schedules_exist_after_start_and_creating_them_again_is_safe(stack):
    async def go():
        settings = settings_of(stack)
        client = await connect(settings)
        assert await ensure_schedules(client, settings) == [*SCHEDULE_IDS.values(),
                                                            RETENTION_SCHEDULE_ID]
        await ensure_schedules(client, settings)
        described = {}
        for kind, schedule_id in SCHEDULE_IDS.items():
            desc = await client.get_schedule_handle(schedule_id).describe()
            described[kind] = desc
        return described

    schedules = asyncio.run(go())
    assert set(schedules) == {"ivo", "monthly", "yearly"}
    months = {"ivo": [1, 4, 7, 10], "monthly": list(range(1, 13)), "yearly": [1]}
    for kind, desc in schedules.items():
        schedule = desc.schedule
        assert schedule.spec.time_zone_name == "Europe/Stockholm"
        (calendar,) = schedule.spec.calendars
        assert [(r.start, r.end) for r in calendar.hour] == [(6, 6)]
        assert [(r.start, r.end) for r in calendar.minute] == [(0, 0)]
        assert [(r.start, r.end) for r in calendar.day_of_month] == [(1, 1)]
        assert [m for r in calendar.month for m in range(r.start, r.end + 1, r.step)] == (
            months[kind])
        assert schedule.action.workflow == "ScheduledReportWorkflow"
        assert schedule.action.task_queue == "housing-chain"
        assert not schedule.state.paused
        for moment in desc.info.next_action_times[:3]:
            local = moment.astimezone(ZoneInfo("Europe/Stockholm"))
            assert (local.day, local.hour, local.minute) == (1, 6, 0)
            assert local.month in months[kind]


@pytest.mark.slow
def test_triggering_the_ivo_schedule_writes_the_quarter_the_report_command_gives(stack):
    target = stack.data / "reports" / f"ivo-{LAST_QUARTER}.csv"

    async def trigger():
        client = await connect(settings_of(stack))
        await client.get_schedule_handle("report-ivo").trigger()

    asyncio.run(trigger())
    written = wait_for(target)
    expected = report_csv(stack, "ivo", "--quarter", LAST_QUARTER)
    assert written == expected
    lines = written.splitlines()
    assert lines[0].split(",")[:2] == ["case", "client"]
    assert [line.split(",")[0] for line in lines[1:]] == ["s-late", "s-slow"]
    assert "unexecuted" in lines[1] and "executed_late" in lines[2]

    # once more: the same file, replaced whole, no temporary files left behind
    before = target.stat().st_mtime_ns
    asyncio.run(trigger())
    deadline = time.monotonic() + 90
    while target.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, "the second run did not rewrite the file"
        time.sleep(0.2)
    assert target.read_text(encoding="utf-8") == expected
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith("ivo-")) == [
        target.name]
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_fixed_period_run_writes_monthly_statistics_like_the_report_commands(stack):
    month_day = LQ_FIRST + timedelta(days=10)  # s-slow and s-fine moved in this month
    month = month_day.isoformat()[:7]
    first, last = month + "-01", (add_months(date.fromisoformat(month + "-01"), 1)
                                  - timedelta(days=1)).isoformat()

    async def run():
        client = await connect(settings_of(stack))
        return await client.execute_workflow(
            ScheduledReportWorkflow.run, ScheduledReport(kind="monthly", period=month),
            id=f"report-test-{uuid.uuid4()}", task_queue="housing-chain")

    files = asyncio.run(run())
    assert files == [f"throughput-{month}.csv", f"waiting-times-{month}.csv"]
    folder = stack.data / "reports"
    throughput = (folder / f"throughput-{month}.csv").read_text(encoding="utf-8")
    assert throughput == report_csv(stack, "throughput", "--by", "month", "--from", first,
                                    "--to", last)
    waits = (folder / f"waiting-times-{month}.csv").read_text(encoding="utf-8").splitlines()
    assert waits[0] == "interval,group,count,mean_days,median_days,p90_days"
    command = report_csv(stack, "waiting-times", "--interval", "decision-to-move-in", "--by",
                         "month", "--from", first, "--to", last, "--as-of", last).splitlines()
    moved = [line for line in waits[1:] if line.startswith("decision-to-move-in,")]
    assert moved == ["decision-to-move-in," + line for line in command[1:]]
    assert moved and moved[0].split(",")[2] == "2"  # s-slow and s-fine
