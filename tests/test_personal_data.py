"""Personal data at rest: what the engine's files hold after real steps through the CLI on a
real embedded stack. Every check reads raw database bytes (the -wal and -shm files too), since
that is what a copied disk or backup reveals."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import sqlite3
import stat
import subprocess
import time
import zlib
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from application.keys import open_keyring
from application.store import ERASED, IdentityRegistry
from domain.case import Stage
from domain.errors import DomainError
from runtime import demo
from runtime.binaries import temporal_cli
from tests.backends import (
    BACKENDS,
    PG,
    create_database,
    drop_database,
    skip_or_fail_without_postgres,
    store_env,
)
from tests.builders import Chain, client, new_registry
from tests.stack import Stack
from workflows.eviction import notice_workflow_id

TODAY = date.today()
NAME = "Anna Andersson"
NUMBER = "19400101-9803"
REASON = "Anna Andersson saknar inkomst och har skulder hos Kronofogden"


def d(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, tmp_path_factory):
    """The embedded stack on SQLite stores, and with every store of the engine (events,
    identities, views, data keys, access log) in PostgreSQL; Temporal's own database is the
    dev server's SQLite file either way."""
    data = tmp_path_factory.mktemp(f"personal-data-{request.param}") / "var"
    database = None
    extra: dict[str, str] = {}
    if request.param == "postgres":
        skip_or_fail_without_postgres()
        database = create_database()
        extra = store_env("postgres", data, database)
    policy = data.parent / "policy.json"  # deadlines of imported cases raised at once
    policy.write_text(json.dumps({"catch_up_delay_seconds": 0}), encoding="utf-8")
    s = Stack.on_free_ports(data, {**extra, "HOUSING_CHAIN_POLICY_FILE": str(policy)})
    s.backend = request.param
    s.store = extra
    s.start()
    yield s
    s.stop()
    if database:
        drop_database(database)


def raw(data: Path, stem: str) -> bytes:
    """A SQLite database's bytes as a disk copy holds them: main file, WAL and shared memory,
    and every blob in it decompressed where it is zlib or gzip (Temporal may compress)."""
    files = [p for p in sorted(data.glob(f"{stem}*")) if p.is_file()]
    return b"".join(p.read_bytes() for p in files) + b"".join(
        _decompressed_blobs(p) for p in files if p.name == stem)


def _decompressed_blobs(path: Path) -> bytes:
    found = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes) and len(value) > 2:
                        found.append(_inflate(value))
    return b"".join(found)


def _inflate(blob: bytes) -> bytes:
    for inflate in (zlib.decompress, gzip.decompress,
                    lambda b: zlib.decompress(b, -zlib.MAX_WBITS)):
        try:
            return inflate(blob)
        except (zlib.error, OSError, EOFError):
            continue
    return b""


def pg_bytes(env: dict[str, str]) -> bytes:
    """Every row of every table of the stack's PostgreSQL database, bytea as its bytes: what
    the engine's stores hold there (dead tuples, the WAL and the server's files are out of a
    client's reach: see the README on what PostgreSQL keeps)."""
    import psycopg

    chunks = []
    with psycopg.connect(host=PG["POSTGRES_HOST"], port=int(PG["POSTGRES_PORT"]),
                         user=PG["POSTGRES_USER"], password=PG["POSTGRES_PASSWORD"],
                         dbname=env["POSTGRES_DBNAME"]) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        chunks += [bytes(value), _inflate(bytes(value))]
                    elif value is not None:
                        chunks.append(str(value).encode())
    return b"\n".join(chunks)


def stored_in(stack: Stack, store: str) -> bytes:
    """What one of the engine's stores holds: the SQLite file (WAL included), or on PostgreSQL
    the whole database (every store is in it)."""
    if stack.backend == "postgres":
        return pg_bytes(stack.store)
    return raw(stack.data, f"{store}.sqlite")


def identities_of(stack: Stack) -> IdentityRegistry:
    env = stack.store or {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                          "SQLITE_DBNAME": str(stack.data / "identities.sqlite")}
    identities = IdentityRegistry(env=env)
    identities.keyring = open_keyring(stack.data, stack.store or None)
    return identities


def ok(stack: Stack, *args: str, timeout: float = 300) -> str:
    result = stack.run(*args, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def apply_with_identity(stack: Stack, case: str, client: str, name: str, number: str) -> None:
    ok(stack, "apply", case, "--client", client, "--target-group", "young_adults",
       "--district", "Farsta", "--name", name, "--personal-number", number, "--on", d(5))


@pytest.mark.slow
def test_temporal_database_holds_no_reason_or_name_after_a_denial(stack):
    apply_with_identity(stack, "pd-deny", "p-deny", NAME, NUMBER)
    ok(stack, "start-assessment", "pd-deny", "--on", d(4))
    ok(stack, "decide", "pd-deny", "--outcome", "denied", "--reason-code", "other", "--reason", REASON,
       "--on", d(3))
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
    ok(stack, "decide", "pd-codec", "--outcome", "denied", "--reason-code", "other", "--reason",
       REASON, "--on", d(3))

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
        other_unit = ok(stack, "token", "--as", "test.spanga", "--role", "supervisor",
                        "--unit", "Spånga").strip()
        refused = http.post(api, json=body, headers={"Authorization": f"Bearer {other_unit}"})
        assert refused.status_code == 403 and "pd-codec" in refused.text
        answer = http.post(api, json=body, headers={
            "Authorization": f"Bearer {token(stack, 'supervisor')}", "Origin": ui})
        log = http.get(api.replace("/codec/decode", "/api/cases/pd-codec/access-log"),
                       headers={"Authorization": f"Bearer {token(stack, 'supervisor')}"})
    assert answer.status_code == 200, answer.text
    decodes = [(r["subject"], r["outcome"]) for r in log.json()["rows"]
               if r["action"] == "codec.decode"]
    assert decodes == [("test.supervisor", "allowed"), ("test.spanga", "denied")]
    assert answer.headers["access-control-allow-origin"] == ui
    decoded = answer.json()["payloads"]
    assert len(decoded) == len(payloads)
    plain = b"".join(base64.b64decode(p.get("data", "")) for p in decoded)
    assert b'"outcome":"denied"' in plain.replace(b" ", b"")  # the step reads in the clear
    # but what the caseworker typed only sealed with the client's key: the history (with
    # that key, in the event store) shows it, and erasing the client erases it here too
    assert REASON.encode() not in plain and b"enc:v1:" in plain
    history = json.loads(ok(stack, "history", "pd-codec", "--json"))
    assert REASON in history[-1]["details"].values()


def plain_payload(value: object) -> dict:
    """A payload as the codec passes it through when it is not ours to decrypt."""
    text = value if isinstance(value, str) else json.dumps(value)
    return {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
            "data": base64.b64encode(text.encode()).decode()}


@pytest.mark.slow
def test_a_decode_naming_another_units_notice_or_a_failure_is_refused_and_odd_ones_are_400(stack):
    ok(stack, "notice", "register", "pd-n9", "--kind", "outreach", "--client", "p-n9",
       "--district", "Farsta", "--as", "handlaggare.lind")
    api = f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}/codec/decode"
    spanga = ok(stack, "token", "--as", "test.spanga", "--role", "supervisor",
                "--unit", "Spånga").strip()
    failure = plain_payload({"message": "case pd-c1 is in the training phase: …",
                             "stack_trace": "  File …"})
    with httpx.Client(timeout=30) as http:
        named = http.post(api, json={"payloads": [plain_payload({"notice": "pd-n9"})]},
                          headers={"Authorization": f"Bearer {spanga}"})
        assert named.status_code == 403 and "pd-n9" in named.text
        own = http.post(api, json={"payloads": [plain_payload({"notice": "pd-n9"})]},
                        headers={"Authorization": f"Bearer {token(stack, 'supervisor')}"})
        assert own.status_code == 200, own.text
        ignored = http.post(api, json={"payloads": [plain_payload({"case": "x\u0000y"})]},
                            headers={"Authorization": f"Bearer {spanga}"})
        assert ignored.status_code == 200, ignored.text  # not an id: names no case
        failed = http.post(api, json={"payloads": [failure]},
                           headers={"Authorization": f"Bearer {spanga}"})
        assert failed.status_code == 403 and "failure messages" in failed.text
        admin = ok(stack, "token", "--as", "test.admin", "--role", "admin").strip()
        assert http.post(api, json={"payloads": [failure]}, headers={
            "Authorization": f"Bearer {admin}"}).status_code == 200
        # what cannot be read is refused, never let through unchecked and never a 500
        for odd in (plain_payload("[" * 5000 + "]" * 5000), plain_payload("not json"),
                    {"metadata": {"encoding": base64.b64encode(b"binary/encrypted").decode()},
                     "data": "AAAA"}):
            refused = http.post(api, json={"payloads": [odd]},
                                headers={"Authorization": f"Bearer {spanga}"})
            assert refused.status_code == 400, refused.text
        for body in (b"null", b"[" * 200_000, b'{"payloads": 7}'):
            assert http.post(api, content=body, headers={
                "Authorization": f"Bearer {spanga}", "Content-Type": "application/json"}
                ).status_code == 400


@pytest.mark.slow
def test_an_outreach_note_reaches_temporal_sealed_with_the_clients_key(stack):
    note = "Nils Nord sover i trapphuset på Farstavägen"
    ok(stack, "notice", "register", "pd-n1", "--kind", "outreach", "--client", "p-n1",
       "--district", "Farsta", "--as", "handlaggare.lind")
    ok(stack, "notice", "assign-outreach", "pd-n1", "--pilot", "bolots.ahmed")
    ok(stack, "notice", "outreach-visit", "pd-n1", "--reached", "--note", note)
    shown = subprocess.run(
        [temporal_cli(), "workflow", "show", "-w", notice_workflow_id("pd-n1"),
         "--address", stack.env["TEMPORAL_ADDRESS"], "-o", "json", "--codec-endpoint",
         f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}/codec",
         "--codec-auth", f"Bearer {token(stack, 'supervisor')}"],
        capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    decoded = payload_bytes(json.loads(shown.stdout))
    assert b"outreach_visit" in decoded and b"enc:v1:" in decoded
    assert note.encode() not in decoded and b"trapphuset" not in decoded


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


def test_an_outreach_visit_note_is_stored_encrypted_and_reads_as_erased_after_erasure(tmp_path):
    from application.notice_store import execute_notice_step, notice_history
    from domain.notice_commands import notice_step_adapter
    from domain.policy import Policy

    chain = Chain(tmp_path / "events.sqlite")
    chain.app.keyring = open_keyring(tmp_path)
    note = "Nils Nord sover i trapphuset"
    for fields in ({"type": "register", "kind": "outreach", "client": "k-n1", "district": "Farsta",
                    "pilot": "bolots.ahmed", "on": d(3)},
                   {"type": "outreach_visit", "reached": True, "note": note, "on": d(2)}):
        step = notice_step_adapter.validate_python(
            {"notice": "n-1", "actor": "cw-anna", "id": f"n-1:{fields['type']}", **fields})
        assert execute_notice_step(chain.app, step, today=TODAY, policy=Policy()).accepted
    stored = raw(tmp_path, "events.sqlite")
    assert b"OutreachVisited" in stored and b"Nils" not in stored and b"trapphuset" not in stored
    assert notice_history(chain.app, "n-1")[-1]["details"] == {"reached": True, "note": note}
    assert chain.app.keyring.destroy("k-n1")
    assert notice_history(chain.app, "n-1")[-1]["details"] == {"reached": True, "note": ERASED}


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


def test_a_second_case_opened_with_the_number_alone_keeps_the_registered_name(tmp_path):
    """A caseworker of another district opens a case for a registered client giving only
    the personal identity number (it proves the person is in front of them): the name
    registered with the first case stays; it was wiped before."""
    identities = registry(tmp_path)
    identities.record("k-1", NAME, NUMBER)
    identities.record("k-1", None, NUMBER)
    identities.record("k-1", NAME.upper(), None)  # the name typed another way keeps it
    found = identities.lookup("k-1")
    assert (found.name, found.personal_number) == (NAME, NUMBER)


def test_a_registered_client_is_renamed_only_with_their_number_and_never_renumbered(tmp_path):
    """Whoever opens a case for a known client could otherwise rewrite the identity that
    another unit's caseworker reveals."""
    identities = registry(tmp_path)
    identities.record("k-1", NAME, NUMBER)
    with pytest.raises(DomainError, match="registered under another name"):
        identities.record("k-1", "Totally Different", None)
    with pytest.raises(DomainError, match="another personal identity number is registered"):
        identities.record("k-1", None, "195512123455")
    found = identities.lookup("k-1")
    assert (found.name, found.personal_number) == (NAME, NUMBER)


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
    stored = stored_in(stack, "identities")
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


def demo_lines() -> list[str]:
    """The demo municipality (`housing-chain demo --cases 40` imports the same lines)."""
    return [json.dumps(line, ensure_ascii=False) for line in demo.generate(cases=40)]


def workflow_show(stack: Stack, case: str, decoded: bool = False) -> str:
    """`temporal workflow show` as an operator runs it against the stack: no codec; or
    `decoded`, through the codec endpoint as a signed-in supervisor (what the UI shows)."""
    codec = ["--codec-endpoint", f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}/codec",
             "--codec-auth", f"Bearer {token(stack, 'supervisor')}"] if decoded else []
    shown = subprocess.run([temporal_cli(), "workflow", "show", "-w", f"case-{case}",
                            "--address", stack.env["TEMPORAL_ADDRESS"], "-o", "json", *codec],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def payload_bytes(shown: object) -> bytes:
    """Every payload's data in a history's JSON, base64 undone: what a reader of it sees."""
    if isinstance(shown, dict):
        own = base64.b64decode(shown["data"]) if "metadata" in shown and isinstance(
            shown.get("data"), str) else b""
        return own + b"".join(payload_bytes(v) for v in shown.values())
    if isinstance(shown, list):
        return b"".join(payload_bytes(v) for v in shown)
    return b""


def logs_of(stack: Stack) -> bytes:
    """The stack's own output and the Temporal server's log file."""
    server_log = stack.data / "temporal-server.log"
    return "".join(stack.output).encode() + (server_log.read_bytes() if server_log.exists()
                                             else b"")


def _vacuumed(stack: Stack, table: str) -> bool:
    """The erasure ran VACUUM on the table. (Whether it could also remove every dead tuple
    depends on other sessions: one holding an older snapshot keeps them; see the README.)"""
    import psycopg

    with psycopg.connect(host=PG["POSTGRES_HOST"], port=int(PG["POSTGRES_PORT"]),
                         user=PG["POSTGRES_USER"], password=PG["POSTGRES_PASSWORD"],
                         dbname=stack.store["POSTGRES_DBNAME"]) as conn:
        row = conn.execute("SELECT last_vacuum, n_dead_tup FROM pg_stat_user_tables "
                           "WHERE relname = %s", (table,)).fetchone()
    print(f"{table}: last VACUUM {row and row[0]}, dead tuples {row and row[1]}")
    return row is not None and row[0] is not None


def settle(stack: Stack) -> None:
    """Wait until the workflows have raised what the import made due (the event store's head
    stands still) and the read models are at the head."""
    seen: list[int] = []
    deadline = time.monotonic() + 300
    while len(seen) < 3 or len(set(seen[-3:])) > 1:
        assert time.monotonic() < deadline, "the event store did not settle"
        (row,) = json.loads(ok(stack, "projections", "status", "--json"))["projections"]
        seen.append(row["head"] if row["behind"] == 0 else -len(seen))
        time.sleep(2)


def same_rows_then_system_notes(after: str, before: str) -> bool:
    """The history as before, row for row; what a timer noted since is only appended."""
    old, new = json.loads(before), json.loads(after)
    return new[:len(old)] == old and all(r["actor"] == "system" for r in new[len(old):])


@pytest.mark.slow
def test_erasing_three_clients_leaves_nothing_readable_and_every_report_unchanged(stack, tmp_path):
    path = tmp_path / "erasure.jsonl"
    municipality = demo_lines()
    path.write_text("\n".join([*municipality, *erasure_lines()]) + "\n", encoding="utf-8")
    first = json.loads(ok(stack, "import", str(path), "--json", timeout=900))
    assert first["accepted"] == len(municipality) + 12 and first["refused"] == []
    demo_cases = sorted({json.loads(line)["case"] for line in municipality if '"case"' in line})
    cases = [*ERASE, KEPT[0], *demo_cases]
    settle(stack)
    reports = reports_of(stack)
    histories = {case: ok(stack, "history", case, "--json") for case in cases}
    for case, (_, _, _, reason) in ERASE.items():
        assert reason in json.loads(histories[case])[-1]["details"].values()

    for client_id, *_ in ERASE.values():
        assert json.loads(ok(stack, "identity", "erase", client_id, "--json"))["erased"]

    secrets = [s for _, name, number, reason in ERASE.values()
               for s in (name, name.split()[1], number, number[:8] + number[9:], reason)]

    def hits(haystack: bytes) -> list[str]:
        return [s for s in secrets if s.encode() in haystack]

    for store in ("events", "identities", "views", "data-keys", "audit"):
        assert stored_in(stack, store), store
        assert hits(stored_in(stack, store)) == [], store
    assert hits(raw(stack.data, "temporal.sqlite")) == []
    for case in ERASE:
        assert hits(payload_bytes(json.loads(workflow_show(stack, case)))) == [], case
        # decoded with the codec key, the update arguments hold the reason sealed with the
        # client's key, which is gone
        decoded = payload_bytes(json.loads(workflow_show(stack, case, decoded=True)))
        assert b"start_assessment" in decoded and b"enc:v1:" in decoded, case
        assert hits(decoded) == [], case
    assert hits(logs_of(stack)) == []
    if stack.backend == "postgres":  # the deleted rows are out of the tables' dead tuples too
        deadline = time.monotonic() + 30
        while not (_vacuumed(stack, "identities_events") and _vacuumed(stack, "data_keys")):
            assert time.monotonic() < deadline, "no VACUUM after the erasure"
            time.sleep(0.5)

    assert reports_of(stack) == reports
    for case in [KEPT[0], *demo_cases]:
        assert same_rows_then_system_notes(ok(stack, "history", case, "--json"),
                                           histories[case]), case
    for case, (_, _, _, reason) in ERASE.items():
        # byte-identical but for the erased text itself
        expected = histories[case].replace(json.dumps(reason, ensure_ascii=False)[1:-1],
                                           "[erased]")
        assert expected != histories[case]
        assert same_rows_then_system_notes(ok(stack, "history", case, "--json"), expected)

    again = stack.run("import", str(path), "--json", timeout=900)
    refused = json.loads(again.stdout)["refused"]
    assert sorted(r["case"] for r in refused) == sorted(ERASE)
    assert all("was erased on" in r["reason"] and "is not recorded again" in r["reason"]
               for r in refused)
    identities = identities_of(stack)
    assert [identities.lookup(c) for c, *_ in ERASE.values()] == [None] * 3
    assert identities.lookup(KEPT[1]).name == KEPT[2]
    for store in ("events", "identities", "views"):
        assert hits(stored_in(stack, store)) == [], store
    assert hits(raw(stack.data, "temporal.sqlite")) == []
    for case in ERASE:
        assert "[erased]" in ok(stack, "history", case, "--json")
    assert reports_of(stack) == reports


def test_keys_rotate_with_master_keys_from_the_environment_rewraps_under_the_first(tmp_path,
                                                                                   monkeypatch):
    """A key service injects HOUSING_CHAIN_MASTER_KEYS: the operator puts the new key first,
    `keys rotate` re-wraps every data key under it and names the keys no longer needed."""
    import os

    from tests.stack import CLI

    def key() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    old, new = f"old:{key()}", f"new:{key()}"
    data = tmp_path / "var"
    data.mkdir()
    monkeypatch.setenv("HOUSING_CHAIN_MASTER_KEYS", old)
    chain = free_text_chain(data)
    before = {case: chain.app.history(case) for case in ("ft-deny", "ft-land", "ft-tenant")}
    env = {**Stack.on_free_ports(data).env, "HOUSING_CHAIN_MASTER_KEYS": f"{new},{old}"}
    result = subprocess.run([*CLI, "keys", "rotate", "--json"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["current"], answer["removable"]) == ("new", ["old"])
    assert answer["rewrapped"] >= 3
    monkeypatch.setenv("HOUSING_CHAIN_MASTER_KEYS", new)  # the old key dropped
    fresh = Chain(data / "events.sqlite")
    fresh.app.keyring = open_keyring(data)
    assert {case: fresh.app.history(case) for case in before} == before


def test_erasing_an_id_nothing_is_known_of_leaves_no_tombstone(tmp_path):
    """A mistyped client id must not block that id's identity for good."""
    from application.use_cases import UseCases, local_operator
    from config.settings import Settings

    cases = UseCases(Settings(data=tmp_path))
    assert cases.erase_identity(local_operator(), "kl-doesnotexist")["erased"] is False
    assert cases.identities.erased_on("kl-doesnotexist") is None
    cases.identities.record("kl-real", NAME, NUMBER)
    assert cases.erase_identity(local_operator(), "kl-real")["erased"] is True
    assert cases.identities.erased_on("kl-real") is not None


def test_erasing_a_client_again_says_when_it_was_erased_not_that_nothing_was_recorded(tmp_path):
    from application.use_cases import UseCases, local_operator
    from config.settings import Settings
    from tests.stack import CLI

    cases = UseCases(Settings(data=tmp_path))
    cases.identities.record("kl-twice", NAME, NUMBER)
    first = cases.erase_identity(local_operator(), "kl-twice")
    assert first["erased"] is True and first["erased_at"]
    again = cases.erase_identity(local_operator(), "kl-twice")
    assert (again["erased"], again["erased_at"]) == (False, first["erased_at"])
    assert cases.erase_identity(local_operator(), "kl-never")["erased_at"] is None
    cli = subprocess.run([*CLI, "identity", "erase", "kl-twice"], capture_output=True,
                         text=True, timeout=120, env=Stack.on_free_ports(tmp_path).env)
    assert cli.returncode == 0, cli.stderr
    assert " ".join(cli.stdout.split()) == (f"the identity of client kl-twice was erased "
                                            f"already, on {first['erased_at'][:10]}")


def test_an_access_record_never_holds_a_personal_identity_number_in_the_clear(tmp_path):
    """The log's last guard, behind the use cases' own refusal: a number that reached a record
    is written masked; the engine's own digests are written as they are."""
    from application.use_cases import UseCases, local_operator
    from config.settings import Settings

    cases = UseCases(Settings(data=tmp_path))
    record = cases.record(local_operator(), "case.read", case="x-19121212-1212",
                          params={"actor": "191212121212", "request": "09fe7921ec53a5b9107717267b652358"})
    assert record.case == "[a personal identity number (19121212-****)]"
    assert record.params == {"actor": "[a personal identity number (19121212-****)]",
                             "request": "09fe7921ec53a5b9107717267b652358"}


@pytest.mark.parametrize("client,why", [
    ("", "at least 1 character"), ("a\nb", "control character"), ("x" * 500, "at most 64"),
], ids=["empty", "a newline", "too long"])
def test_erasing_an_id_no_step_would_take_is_refused_naming_client_and_leaves_no_record(
        tmp_path, client, why):
    from application.errors import BadInput
    from application.use_cases import UseCases, local_operator
    from config.settings import Settings

    cases = UseCases(Settings(data=tmp_path))
    cases.erase_identity(local_operator(), "kl-known")  # one record: the log has a head
    with pytest.raises(BadInput, match=f"^client: .*{why}"):
        cases.erase_identity(local_operator(), client)
    assert cases.audit.verify().head_seq == 1
