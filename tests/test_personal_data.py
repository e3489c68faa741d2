"""Personal data at rest: what the engine's files hold after real steps through the CLI on a
real embedded stack. Every check reads raw database bytes (the -wal and -shm files too), since
that is what a copied disk or backup reveals."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from application.keys import open_keyring
from application.store import ERASED, IdentityRegistry
from domain.case import Stage
from domain.errors import DomainError
from tests.builders import Chain, client, new_registry
from tests.stack import Stack

TODAY = date.today()
NAME = "Anna Andersson"
NUMBER = "19400101-9803"
REASON = "Anna Andersson saknar inkomst och har skulder hos Kronofogden"


def d(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack.on_free_ports(tmp_path_factory.mktemp("personal-data") / "var")
    s.start()
    yield s
    s.stop()


def raw(data: Path, stem: str) -> bytes:
    """A SQLite database's bytes as a disk copy holds them: main file, WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(data.glob(f"{stem}*")) if p.is_file())


def ok(stack: Stack, *args: str) -> str:
    result = stack.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def apply_with_identity(stack: Stack, case: str, client: str, name: str, number: str) -> None:
    ok(stack, "apply", case, "--client", client, "--target-group", "young_adults",
       "--district", "Farsta", "--name", name, "--personal-number", number, "--on", d(5))


@pytest.mark.slow
def test_temporal_database_holds_no_reason_or_name_after_a_denial(stack):
    apply_with_identity(stack, "pd-deny", "p-deny", NAME, NUMBER)
    ok(stack, "start-assessment", "pd-deny", "--on", d(4))
    ok(stack, "decide", "pd-deny", "--outcome", "denied", "--reason", REASON, "--on", d(3))
    history = json.loads(ok(stack, "history", "pd-deny", "--json"))
    assert [row["event"] for row in history][-1] == "Denied"

    temporal = raw(stack.data, "temporal.sqlite")
    assert b"pd-deny" in temporal  # the workflow is there, its payloads are not readable
    assert b"binary/encrypted" in temporal
    for secret in (REASON, "Kronofogden", NAME, "Andersson", NUMBER, "19400101"):
        assert secret.encode() not in temporal, secret


def token(stack: Stack, role: str) -> str:
    return ok(stack, "token", "--as", f"test.{role}", "--role", role, "--unit", "Farsta").strip()


def encrypted_payloads(history: object) -> list[dict]:
    """Every payload in a history's JSON that our codec encrypted."""
    marker = base64.b64encode(b"binary/encrypted").decode()
    if isinstance(history, dict):
        if history.get("metadata", {}).get("encoding") == marker and "data" in history:
            return [history]
        return [p for value in history.values() for p in encrypted_payloads(value)]
    if isinstance(history, list):
        return [p for value in history for p in encrypted_payloads(value)]
    return []


@pytest.mark.slow
def test_the_codec_endpoint_decodes_for_a_signed_in_supervisor_and_no_one_else(stack):
    apply_with_identity(stack, "pd-codec", "p-codec", "Lena Lund", "19400101-9860")
    ok(stack, "start-assessment", "pd-codec", "--on", d(4))
    ok(stack, "decide", "pd-codec", "--outcome", "denied", "--reason", REASON, "--on", d(3))

    async def history() -> dict:
        # as the Temporal UI sees it: no codec, so the payloads stay encrypted
        client = await Client.connect(stack.env["TEMPORAL_ADDRESS"])
        fetched = await client.get_workflow_handle("case-pd-codec").fetch_history()
        return json.loads(fetched.to_json())

    payloads = encrypted_payloads(asyncio.run(history()))
    assert payloads
    api = f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}/codec/decode"
    ui = f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_UI_PORT']}"
    body = {"payloads": payloads}
    with httpx.Client(timeout=30) as http:
        assert http.post(api, json=body).status_code == 401
        assert http.post(api, json=body, headers={
            "Authorization": f"Bearer {token(stack, 'caseworker')}"}).status_code == 403
        preflight = http.options(api, headers={
            "Origin": ui, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == ui
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        answer = http.post(api, json=body, headers={
            "Authorization": f"Bearer {token(stack, 'supervisor')}", "Origin": ui})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == ui
    decoded = answer.json()["payloads"]
    assert len(decoded) == len(payloads)
    assert any(REASON.encode() in base64.b64decode(p.get("data", "")) for p in decoded)


# -- free text in the event store (no stack needed) -------------------------------------------

TEXTS = {"deny": "Bertil Berg har inte lämnat läkarintyg",
         "landlord": "Hyresvärden vill inte hyra ut till Cecilia Carlsson",
         "complaint": "Grannen klagar på Dagny Dahl och hennes hund",
         "takeover": "Erik Ek har hyresskulder sedan mars"}


def free_text_chain(tmp_path: Path) -> Chain:
    chain = Chain(tmp_path / "events.sqlite")
    chain.app.keyring = open_keyring(tmp_path)
    chain.accept(chain.line("apply", on=chain.next_day(), case="ft-deny", client=client("k-deny")))
    chain.accept(chain.step("start_assessment", "ft-deny"))
    chain.accept(chain.step("decide", "ft-deny", outcome="denied", reason=TEXTS["deny"]))
    chain.drive("ft-land", Stage.OFFERED, apartment="apt-land")
    chain.accept(chain.step("landlord_decision", "ft-land", approved=False,
                            reason=TEXTS["landlord"]))
    chain.drive("ft-tenant", Stage.TAKEOVER_REVIEW, apartment="apt-tenant")
    chain.accept(chain.step("complaint", "ft-tenant", note=TEXTS["complaint"]))
    chain.accept(chain.step("takeover_decision", "ft-tenant", approved=False,
                            reason=TEXTS["takeover"]))
    return chain


def texts_in(history: list[dict]) -> set[str]:
    return {v for row in history for v in row["details"].values() if v in TEXTS.values()}


def test_reasons_and_notes_are_stored_encrypted_and_history_shows_them(tmp_path):
    chain = free_text_chain(tmp_path)
    stored = raw(tmp_path, "events.sqlite")
    assert b"ft-deny" in stored and b"enc:v1:" in stored
    for text in TEXTS.values():
        assert text.encode() not in stored, text
    assert texts_in(chain.app.history("ft-deny")) == {TEXTS["deny"]}
    assert texts_in(chain.app.history("ft-land")) == {TEXTS["landlord"]}
    assert texts_in(chain.app.history("ft-tenant")) == {TEXTS["complaint"], TEXTS["takeover"]}


def test_after_erasure_history_shows_erased_text_and_every_other_field_unchanged(tmp_path):
    chain = free_text_chain(tmp_path)
    before = {case: chain.app.history(case) for case in ("ft-deny", "ft-land", "ft-tenant")}
    assert chain.app.keyring.destroy("k-ft-tenant")
    after = {case: chain.app.history(case) for case in before}
    assert after["ft-deny"] == before["ft-deny"] and after["ft-land"] == before["ft-land"]
    erased = [{**row, "details": {k: ERASED if v in TEXTS.values() else v
                                  for k, v in row["details"].items()}}
              for row in before["ft-tenant"]]
    assert after["ft-tenant"] == erased
    assert texts_in(after["ft-tenant"]) == set()
    assert sum(v == ERASED for row in after["ft-tenant"] for v in row["details"].values()) == 2


def test_a_denial_still_needs_a_reason_when_reasons_are_encrypted(tmp_path):
    chain = Chain(tmp_path / "events.sqlite")
    chain.app.keyring = open_keyring(tmp_path)
    chain.accept(chain.line("apply", on=chain.next_day(), case="ft-1", client=client("k-1")))
    chain.accept(chain.step("start_assessment", "ft-1"))
    assert "needs a reason" in chain.refuse(chain.step("decide", "ft-1", outcome="denied",
                                                       reason=""))


def test_without_a_keyring_the_text_is_stored_as_typed(tmp_path):
    chain = Chain(tmp_path / "events.sqlite")
    chain.accept(chain.line("apply", on=chain.next_day(), case="ft-1", client=client("k-1")))
    chain.accept(chain.step("start_assessment", "ft-1"))
    chain.accept(chain.step("decide", "ft-1", outcome="denied", reason=TEXTS["deny"]))
    assert texts_in(chain.app.history("ft-1")) == {TEXTS["deny"]}


# -- the identity store --------------------------------------------------------------------------


def registry(tmp_path: Path) -> IdentityRegistry:
    identities = new_registry(tmp_path / "identities.sqlite")
    identities.keyring = open_keyring(tmp_path)
    return identities


def test_identities_are_stored_encrypted_and_read_in_the_clear(tmp_path):
    identities = registry(tmp_path)
    identities.record("k-1", NAME, NUMBER)
    stored = raw(tmp_path, "identities.sqlite")
    assert b"Andersson" not in stored and b"19400101" not in stored
    found = identities.lookup("k-1")
    assert (found.name, found.personal_number) == (NAME, NUMBER)
    identities.record("k-1", "Anna Bengtsson", NUMBER)  # a correction
    assert identities.lookup("k-1").name == "Anna Bengtsson"
    assert b"Bengtsson" not in raw(tmp_path, "identities.sqlite")


def test_identities_recorded_before_encryption_still_read(tmp_path):
    new_registry(tmp_path / "identities.sqlite").record("k-old", NAME, NUMBER)
    found = registry(tmp_path).lookup("k-old")
    assert (found.name, found.personal_number) == (NAME, NUMBER)


def test_an_erased_client_is_not_recorded_again_and_a_number_has_one_client(tmp_path):
    identities = registry(tmp_path)
    identities.record("k-1", NAME, NUMBER)
    with pytest.raises(DomainError, match="already registered under client k-1"):
        identities.record("k-2", "Anna A.", "194001019803")  # the same number, other spelling
    assert b"19400101" not in raw(tmp_path, "identities.sqlite")
    assert identities.erase("k-1")
    identities.tombstone("k-1", "2026-11-30T10:00:00+00:00")
    assert identities.lookup("k-1") is None
    with pytest.raises(DomainError, match="client k-1 was erased on 2026-11-30: its identity is "
                                          "not recorded again"):
        identities.record("k-1", NAME, NUMBER)
    identities.check("k-1", None, None)  # a line without identity is no identity to refuse
    identities.record("k-3", NAME, NUMBER)  # the erased client's number is free again


# -- master key rotation ---------------------------------------------------------------------------


def test_keys_rotate_retires_the_old_master_key_and_everything_still_decrypts(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    chain = free_text_chain(data)
    identities = registry(data)
    identities.record("k-1", NAME, NUMBER)
    old = chain.app.keyring.master.current_id
    before = {case: chain.app.history(case) for case in ("ft-deny", "ft-land", "ft-tenant")}
    result = Stack.on_free_ports(data).run("keys", "rotate", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["retired"] == old and answer["current"] != old and answer["rewrapped"] >= 4
    assert old not in (data / "master.keys").read_text()
    fresh = Chain(data / "events.sqlite")
    fresh.app.keyring = open_keyring(data)  # a process started after the rotation
    assert {case: fresh.app.history(case) for case in before} == before
    found = registry(data).lookup("k-1")
    assert (found.name, found.personal_number) == (NAME, NUMBER)
    # a process that was running all along wraps new data keys under the new master key
    assert chain.app.keyring.master.current()[0] == answer["current"]


# -- on a real stack: the identity store, the data directory, erasure -----------------------------


@pytest.mark.slow
def test_identity_store_holds_no_name_or_number_and_the_data_dir_is_private(stack):
    apply_with_identity(stack, "pd-id", "p-id", "Gustav Gunnarsson", "19400101-9811")
    stored = raw(stack.data, "identities.sqlite")
    assert stored  # the identity was recorded, encrypted
    assert b"Gunnarsson" not in stored and b"19400101" not in stored
    assert stat.S_IMODE(stack.data.stat().st_mode) == 0o700
    loose = [f"{p.relative_to(stack.data)} {stat.S_IMODE(p.stat().st_mode):o}"
             for p in stack.data.rglob("*")
             if stat.S_IMODE(p.stat().st_mode) & 0o077 and not p.is_symlink()]
    assert loose == []


ERASE = {f"pd-er{i}": (f"p-er{i}", name, number, reason) for i, (name, number, reason) in enumerate([
    ("Harriet Holm", "19400101-9829", "Harriet Holm har inte kommit på tre möten"),
    ("Ingvar Isaksson", "19400101-9837", "Ingvar Isaksson bor hos sin syster i Rinkeby"),
    ("Jenny Jansson", "19400101-9845", "Jenny Jansson har en skyddad adress"),
])}
KEPT = ("pd-keep", "p-keep", "Kalle Karlsson", "19400101-9852", "Kalle Karlsson bor på härbärge")


def erasure_lines() -> list[str]:
    lines = []
    for case, (client_id, name, number, reason) in [*ERASE.items(), (KEPT[0], KEPT[1:])]:
        lines += [
            {"type": "apply", "case": case, "on": d(30), "id": f"{case}-apply",
             "client": {"id": client_id, "target_group": "young_adults", "district": "Farsta",
                        "name": name, "personal_number": number}},
            {"type": "start_assessment", "case": case, "on": d(29), "id": f"{case}-assess"},
            {"type": "decide", "case": case, "on": d(28), "id": f"{case}-decide",
             "outcome": "denied", "reason": reason},
        ]
    return [json.dumps({"actor": "handlaggare.lind", **line}, ensure_ascii=False)
            for line in lines]


def reports_of(stack: Stack) -> dict[str, str]:
    from application.reporting import REPORT_NAMES

    answers = {}
    for name in REPORT_NAMES:
        if name != "history":
            result = stack.run("report", name, "--json")
            answers[name] = result.stdout if result.returncode == 0 else result.stderr
    return answers


@pytest.mark.slow
def test_erasing_three_clients_leaves_nothing_readable_and_every_report_unchanged(stack, tmp_path):
    path = tmp_path / "erasure.jsonl"
    path.write_text("\n".join(erasure_lines()) + "\n", encoding="utf-8")
    first = json.loads(ok(stack, "import", str(path), "--json"))
    assert first["accepted"] == 12 and first["refused"] == []
    cases = [*ERASE, KEPT[0]]
    ok(stack, "projections", "status")
    reports = reports_of(stack)
    histories = {case: ok(stack, "history", case, "--json") for case in cases}
    for case, (_, _, _, reason) in ERASE.items():
        assert reason in json.loads(histories[case])[-1]["details"].values()

    for client_id, *_ in ERASE.values():
        assert json.loads(ok(stack, "identity", "erase", client_id, "--json"))["erased"]

    secrets = [s for _, name, number, reason in ERASE.values()
               for s in (name, name.split()[1], number, number[:8] + number[9:], reason)]
    for store in ("events.sqlite", "identities.sqlite", "views.sqlite", "temporal.sqlite"):
        stored = raw(stack.data, store)
        assert stored, store
        assert [s for s in secrets if s.encode() in stored] == [], store
    assert reports_of(stack) == reports
    assert ok(stack, "history", KEPT[0], "--json") == histories[KEPT[0]]
    for case, (_, _, _, reason) in ERASE.items():
        # byte-identical but for the erased text itself
        expected = histories[case].replace(json.dumps(reason, ensure_ascii=False)[1:-1],
                                           "[erased]")
        assert expected != histories[case]
        assert ok(stack, "history", case, "--json") == expected

    again = stack.run("import", str(path), "--json")
    refused = json.loads(again.stdout)["refused"]
    assert sorted(r["case"] for r in refused) == sorted(ERASE)
    assert all("was erased on" in r["reason"] and "is not recorded again" in r["reason"]
               for r in refused)
    identities = IdentityRegistry(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                       "SQLITE_DBNAME": str(stack.data / "identities.sqlite")})
    identities.keyring = open_keyring(stack.data)
    assert [identities.lookup(c) for c, *_ in ERASE.values()] == [None] * 3
    assert identities.lookup(KEPT[1]).name == KEPT[2]
    for store in ("events.sqlite", "identities.sqlite"):
        stored = raw(stack.data, store)
        assert [s for s in secrets if s.encode() in stored] == [], store
    for case in ERASE:
        assert "[erased]" in ok(stack, "history", case, "--json")
