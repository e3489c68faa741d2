"""Gallring: an identity is erased `identity_retention_years` after the last entry of its
client's last case, by the daily `identity-retention` schedule of a real embedded stack."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from activities.retention import retention_cutoff
from application.audit import AccessLog
from application.codec import CodecKeys, data_converter
from application.gateway import today_in
from application.keys import open_keyring
from application.schedules import RETENTION_SCHEDULE_ID
from application.store import IdentityRegistry
from config.settings import Settings
from domain.calendar import add_months
from domain.policy import Policy
from tests.stack import Stack
from workflows.messages import RetentionResult, RetentionRun
from workflows.retention import IdentityRetentionWorkflow

TODAY = today_in(Policy())


def years_ago(years: int, days: int = 0) -> date:
    return add_months(TODAY, -12 * years) - timedelta(days=days)


@pytest.mark.parametrize(("today", "cutoff"), [
    (date(2031, 3, 1), date(2026, 3, 1)),
    (date(2032, 2, 29), date(2027, 2, 28)),  # a leap day counts from the last day of February
])
def test_an_identity_is_kept_five_years_from_the_day_of_its_last_entry(today, cutoff):
    assert retention_cutoff(today, 5) == cutoff
    assert Policy().identity_retention_years == 5


# (case, client, name, number, reason, day it was denied = closed, an open case too?)
CLIENTS = {
    "old": ("r-old", "p-old", "Olga Olsson", "19400101-9878", "Olga Olsson har flyttat",
            years_ago(6)),
    "recent": ("r-recent", "p-recent", "Rut Rask", "19400101-9886", "Rut Rask har flyttat",
               years_ago(2)),
    "edge": ("r-edge", "p-edge", "Edit Eng", "19400101-9894", "Edit Eng har flyttat",
             years_ago(5, days=-1)),  # the day after the cutoff: kept one more day
    "mixed": ("r-mixed", "p-mixed", "Mats Moe", "19400101-9902", "Mats Moe har flyttat",
              years_ago(6)),
}


def lines() -> list[dict]:
    out = []
    for case, client, name, number, reason, closed in CLIENTS.values():
        out += [
            {"type": "apply", "case": case, "on": (closed - timedelta(days=20)).isoformat(),
             "id": f"{case}-apply", "client": {
                 "id": client, "target_group": "young_adults", "district": "Farsta",
                 "name": name, "personal_number": number}},
            {"type": "start_assessment", "case": case, "id": f"{case}-assess",
             "on": (closed - timedelta(days=10)).isoformat()},
            {"type": "decide", "case": case, "on": closed.isoformat(), "id": f"{case}-decide",
             "outcome": "denied", "reason": reason},
        ]
    # p-mixed has a second case, still open: the client's records are in use
    out.append({"type": "apply", "case": "r-mixed-2", "on": (TODAY - timedelta(days=40)).isoformat(),
                "id": "r-mixed-2-apply",
                "client": {"id": "p-mixed", "target_group": "young_adults", "district": "Farsta"}})
    return [{"actor": "handlaggare.lind", **line} for line in out]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack.on_free_ports(tmp_path_factory.mktemp("retention") / "var")
    s.start()
    path = s.data / "retention.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines()) + "\n",
                    encoding="utf-8")
    imported = s.run("import", str(path), "--json")
    assert json.loads(imported.stdout) == {"accepted": len(lines()), "duplicates": 0, "refused": []}, (
        imported.stdout + imported.stderr)
    yield s
    s.stop()


def identities_of(stack: Stack) -> IdentityRegistry:
    identities = IdentityRegistry(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                       "SQLITE_DBNAME": str(stack.data / "identities.sqlite")})
    identities.keyring = open_keyring(stack.data)
    return identities


async def client_of(stack: Stack):
    from temporalio.client import Client

    return await Client.connect(stack.env["TEMPORAL_ADDRESS"],
                                data_converter=data_converter(CodecKeys.load(stack.data)))


@pytest.mark.slow
def test_the_retention_schedule_exists_after_worker_start_daily_in_the_policys_time_zone(stack):
    async def describe():
        return await (await client_of(stack)).get_schedule_handle(RETENTION_SCHEDULE_ID).describe()

    desc = asyncio.run(describe())
    schedule = desc.schedule
    assert schedule.spec.time_zone_name == "Europe/Stockholm"
    (calendar,) = schedule.spec.calendars
    assert [(r.start, r.end) for r in calendar.hour] == [(3, 3)]
    assert schedule.action.workflow == "IdentityRetentionWorkflow"
    assert schedule.action.task_queue == "housing-chain"
    assert not schedule.state.paused
    moments = desc.info.next_action_times[:2]
    local = [m.astimezone(ZoneInfo("Europe/Stockholm")) for m in moments]
    assert [(m.hour, m.minute) for m in local] == [(3, 0), (3, 0)]
    assert (local[1].date() - local[0].date()).days == 1


@pytest.mark.slow
def test_an_identity_closed_six_years_ago_is_erased_and_one_closed_two_years_ago_is_kept(stack):
    async def trigger():
        await (await client_of(stack)).get_schedule_handle(RETENTION_SCHEDULE_ID).trigger()

    asyncio.run(trigger())
    identities = identities_of(stack)
    log = AccessLog({"PERSISTENCE_MODULE": "eventsourcing.sqlite"}, stack.data / "audit.sqlite")

    def retention_records() -> list:
        return log._select("WHERE action = ? ORDER BY seq", ("identity.retention",))

    deadline = time.monotonic() + 120
    while not retention_records():  # logged after the erasure: then the run is through
        assert time.monotonic() < deadline, "the retention run did not erase p-old"
        time.sleep(0.5)
    assert identities.lookup("p-old") is None
    for key in ("recent", "edge", "mixed"):
        _, client, name, number, _, _ = CLIENTS[key]
        found = identities.lookup(client)
        assert (found.name, found.personal_number) == (name, number.replace("-", "")), key
    assert identities.erased_on("p-old") is not None

    history = json.loads(stack.run("history", "r-old", "--json").stdout)
    assert history[-1]["details"]["reason"] == "[erased]"
    kept = json.loads(stack.run("history", "r-recent", "--json").stdout)
    assert kept[-1]["details"]["reason"] == CLIENTS["recent"][4]

    records = retention_records()
    assert [(r.subject, r.params["client"], r.params["erased"]) for r in records] == [
        ("system:identity-retention", "p-old", "true")]
    assert records[0].params["last_entry"] == CLIENTS["old"][5].isoformat()
    audit = b"".join(p.read_bytes() for p in stack.data.glob("audit.sqlite*"))
    assert b"Olga" not in audit and b"19400101" not in audit

    # the same day again, started by hand: nothing more to erase, nothing logged twice
    async def again() -> RetentionResult:
        return await (await client_of(stack)).execute_workflow(
            IdentityRetentionWorkflow.run, RetentionRun(as_of=TODAY),
            id=f"retention-test-{uuid.uuid4()}", task_queue="housing-chain")

    assert asyncio.run(again()).erased == []
    assert len(retention_records()) == 1

    # a later day erases the edge client, whose last entry is then more than five years old
    async def later() -> RetentionResult:
        return await (await client_of(stack)).execute_workflow(
            IdentityRetentionWorkflow.run, RetentionRun(as_of=TODAY + timedelta(days=2)),
            id=f"retention-test-{uuid.uuid4()}", task_queue="housing-chain")

    assert asyncio.run(later()).erased == ["p-edge"]
    assert identities.lookup("p-edge") is None
    assert identities.lookup("p-mixed") is not None and identities.lookup("p-recent") is not None

    # text typed about an erased client afterwards has a data key of its own: the next run
    # past the cutoff shreds it too (the identity is gone already, the tombstone stays)
    ring = open_keyring(stack.data)
    token = ring.encrypt("p-old", "Olga har ringt igen", "case/r-old/text")
    assert ring.store.get("p-old") is not None
    assert asyncio.run(later()).erased == ["p-old"]
    assert open_keyring(stack.data).store.get("p-old") is None
    assert asyncio.run(later()).erased == []  # and only once
    assert identities.erased_on("p-old") is not None and token.startswith("enc:v1:")


def test_settings_give_the_policy_retention(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"identity_retention_years": 10}), encoding="utf-8")
    assert Policy.load(policy).identity_retention_years == 10
    assert Settings(data=tmp_path).policy().identity_retention_years == 5
