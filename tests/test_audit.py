"""The access log keeps one unbroken, append-only, tamper-evident chain on SQLite and PostgreSQL.

Tampering is done the way an attacker with database access would: drop the append-only trigger
first, then change rows directly; `verify` must still name the record where it was done.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from application.audit import GENESIS, AccessLog, AccessRecord, Anchor, AnchorFile, record_hash
from tests.backends import (
    BACKENDS,
    create_database,
    drop_database,
    skip_or_fail_without_postgres,
    store_env,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """(env, sqlite path) of an empty log: a SQLite file, or a fresh PostgreSQL database."""
    path = tmp_path / "access.sqlite"
    if request.param == "sqlite":
        yield store_env("sqlite", tmp_path), path
        return
    skip_or_fail_without_postgres()
    name = create_database()
    try:
        yield store_env("postgres", tmp_path, name), path
    finally:
        drop_database(name)


@pytest.fixture
def log(store) -> Iterator[AccessLog]:
    env, path = store
    access_log = AccessLog(env, path)
    yield access_log
    access_log.close()


def read(log: AccessLog, i: int, **fields) -> AccessRecord:
    base = dict(subject=f"handler.{i % 3}", roles=["handler"], units=["north"], action="case.read",
                case=f"c{i % 4}", params={"page": str(i)}, address="10.0.0.7", outcome="allowed",
                case_unit="north", relation="unit")
    return log.append(**{**base, **fields})


def raw(log: AccessLog):
    """A connection of the attacker's own, outside the log's code."""
    if log.postgres:
        import psycopg

        e = log.env
        return psycopg.connect(host=e["POSTGRES_HOST"], port=int(e["POSTGRES_PORT"]), user=e["POSTGRES_USER"],
                               password=e["POSTGRES_PASSWORD"], dbname=e["POSTGRES_DBNAME"], autocommit=True)
    return sqlite3.connect(log.path, isolation_level=None)


def tamper(log: AccessLog, *statements: str) -> None:
    """Drop every trigger on the table, then run the statements."""
    conn = raw(log)
    try:
        if log.postgres:
            names = [r[0] for r in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'access_log'::regclass AND NOT tgisinternal")]
            for name in names:
                conn.execute(f"DROP TRIGGER {name} ON access_log")
        else:
            names = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'access_log'")]
            for name in names:
                conn.execute(f"DROP TRIGGER {name}")
        assert names, "the log had no append-only trigger to drop"
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


def assert_one_unbroken_chain(log: AccessLog, count: int) -> None:
    result = log.verify(page_size=37)
    assert result.ok, result
    assert result.checked == count
    with log._connection() as conn:
        seqs = [int(r[0]) for r in conn.execute("SELECT seq FROM access_log ORDER BY seq").fetchall()]
    assert seqs == list(range(1, count + 1))


# -- the chain -----------------------------------------------------------------------------------


def test_each_record_chains_to_the_hash_of_the_one_before(log):
    records = [read(log, i) for i in range(5)]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS == "0" * 64
    for before, after in zip(records, records[1:], strict=False):
        assert after.prev_hash == before.hash
    for r in records:
        fields = r.model_dump(exclude={"hash"})
        fields["at"] = r.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert r.hash == hashlib.sha256((r.prev_hash + canonical).encode()).hexdigest()


def test_an_intact_log_verifies_page_by_page(log):
    assert log.verify().model_dump() == {"ok": True, "checked": 0, "first_broken": None, "reason": None,
                                         "head_hash": None, "head_seq": None, "anchors_checked": 0,
                                         "warnings": []}
    records = [read(log, i) for i in range(10)]
    for page_size in (1, 3, 10, 1000):
        result = log.verify(page_size=page_size)
        assert (result.ok, result.checked, result.head_seq, result.head_hash) == (
            True, 10, 10, records[-1].hash)


def test_what_append_returns_is_committed_and_read_back_the_same(log, store):
    written = read(log, 1, case="c-ö", params={"q": "år 2026"}, at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    other = AccessLog(*store)  # another process would see it the moment append returns
    try:
        assert other.for_case("c-ö") == [written]
        assert other.append(subject="s", action="case.history", outcome="allowed").prev_hash == written.hash
    finally:
        other.close()


ALTERATIONS = {  # column: (SQLite, PostgreSQL) expression
    "subject": ("'someone.else'", "'someone.else'"),
    "outcome": ("'denied'", "'denied'"),
    "relation": ("'none'", "'none'"),
    "case_id": ("NULL", "NULL"),
    "params": ("'{\"page\":\"999\"}'", "'{\"page\": \"999\"}'::jsonb"),
    "roles": ("'[\"admin\"]'", "'[\"admin\"]'::jsonb"),
    "at": ("'2026-03-01T09:00:00.000001Z'", "at + interval '1 microsecond'"),
}


@pytest.mark.parametrize("column", ALTERATIONS)
def test_altering_one_field_of_a_record_is_found_at_that_record(log, column):
    for i in range(10):
        read(log, i, at=datetime(2026, 3, 1, 9, tzinfo=UTC) + timedelta(minutes=i))
    value = ALTERATIONS[column][log.postgres]
    tamper(log, f"UPDATE access_log SET {column} = {value} WHERE seq = 7")
    result = log.verify(page_size=3)
    assert (result.ok, result.first_broken, result.checked) == (False, 7, 6), result
    assert "record 7" in result.reason


def test_a_record_rehashed_after_altering_is_found_at_the_next_record(log):
    records = [read(log, i) for i in range(6)]
    altered = records[2].model_copy(update={"subject": "someone.else"})
    tamper(log, f"UPDATE access_log SET subject = 'someone.else', hash = '{record_hash(altered)}' "
                "WHERE seq = 3")
    result = log.verify()
    assert (result.ok, result.first_broken, result.checked) == (False, 4, 3), result
    assert "does not follow" in result.reason


@pytest.mark.parametrize("deleted, broken", [(1, 1), (4, 4), (8, 8)])
def test_deleting_a_record_is_found_as_a_gap_in_seq(log, deleted, broken):
    records = [read(log, i) for i in range(9)]
    tamper(log, f"DELETE FROM access_log WHERE seq = {deleted}")
    result = log.verify(page_size=2)
    assert (result.ok, result.first_broken) == (False, broken), result
    assert "missing" in result.reason
    assert result.checked == deleted - 1
    assert result.head_hash == (records[deleted - 2].hash if deleted > 1 else None)


def test_the_newest_records_deleted_are_found_by_the_anchor_a_verify_left(log, tmp_path):
    for i in range(8):
        read(log, i)
    intact = log.verify(page_size=3)
    anchors = AnchorFile(tmp_path / "audit-anchors.jsonl")
    anchors.add(Anchor(seq=intact.head_seq, hash=intact.head_hash, at=datetime.now(UTC)))
    assert log.verify(anchors=anchors.read()).ok  # the chain alone cannot see a cut-off tail
    tamper(log, "DELETE FROM access_log WHERE seq > 5")
    assert log.verify().ok
    result = log.verify(page_size=3, anchors=anchors.read())
    assert (result.ok, result.first_broken, result.checked) == (False, 6, 5), result
    assert "records 6 to 8 are missing" in result.reason and "deleted from the end" in result.reason


def test_a_chain_rewritten_from_scratch_is_found_by_its_anchor(log):
    records = [read(log, i) for i in range(5)]
    anchor = Anchor.parse(f"{records[3].seq}:{records[3].hash}")
    tamper(log, "DELETE FROM access_log")
    for i in range(6):
        read(log, i, subject="someone.else")
    result = log.verify(anchors=[anchor])
    assert (result.ok, result.first_broken) == (False, 4), result
    assert "not the record anchored" in result.reason


@pytest.mark.parametrize("text", ["12", "0:" + "a" * 64, "3:xyz", "x:" + "b" * 64])
def test_an_anchor_that_is_not_seq_colon_hash_is_refused_saying_so(text):
    with pytest.raises(ValueError, match="is not SEQ:HASH"):
        Anchor.parse(text)


def test_the_anchors_file_is_private_and_keeps_each_head_once(tmp_path):
    anchors = AnchorFile(tmp_path / "audit-anchors.jsonl")
    head = Anchor(seq=3, hash="c" * 64)
    anchors.add(head)
    anchors.add(head)
    anchors.add(Anchor(seq=4, hash="d" * 64))
    assert [a.seq for a in anchors.read()] == [3, 4]
    assert stat.S_IMODE(os.stat(anchors.path).st_mode) == 0o600


def test_lines_of_the_anchors_file_that_are_not_anchors_are_skipped_and_counted(tmp_path):
    anchors = AnchorFile(tmp_path / "audit-anchors.jsonl")
    anchors.add(Anchor(seq=2, hash="e" * 64))
    with open(anchors.path, "ab") as f:
        f.write(b'{"seq": 0, "hash": "x"}\n\xff\xfe not utf-8\n\n')
    assert [a.seq for a in anchors.read()] == [2] and anchors.skipped == 2


def test_an_anchor_of_another_log_is_not_checked_against_this_one(log):
    read(log, 1)
    other = Anchor(seq=40, hash="f" * 64, log="postgres:elsewhere/access_log")
    assert log.verify(anchors=[other]).ok
    assert not log.verify(anchors=[other.model_copy(update={"log": log.name})]).ok


def test_swapping_two_records_is_found_at_the_first_of_them(log):
    for i in range(8):
        read(log, i)
    tamper(log, "UPDATE access_log SET seq = -1 WHERE seq = 4", "UPDATE access_log SET seq = 4 WHERE seq = 5",
           "UPDATE access_log SET seq = 5 WHERE seq = -1")
    result = log.verify()
    assert (result.ok, result.first_broken) == (False, 4), result


def test_a_record_inserted_in_the_middle_is_found(log):
    records = [read(log, i) for i in range(6)]
    # Make room at seq 3 and put a copy there whose own hash is right: the record after it then
    # no longer fits, because its hash covered the seq it had.
    forged = records[2].model_copy(update={"subject": "forger"})
    tamper(
        log,
        "UPDATE access_log SET seq = -seq WHERE seq >= 3",
        "UPDATE access_log SET seq = -seq + 1 WHERE seq < 0",
        "INSERT INTO access_log (seq, at, subject, roles, units, action, case_id, report, params, address, "
        "outcome, case_unit, relation, prev_hash, hash) SELECT 3, at, 'forger', roles, units, action, "
        "case_id, report, params, address, outcome, case_unit, relation, prev_hash, "
        f"'{record_hash(forged)}' FROM access_log WHERE seq = 4",
    )
    result = log.verify()
    assert (result.ok, result.first_broken) == (False, 4), result


def test_the_database_refuses_update_delete_and_truncate(log):
    for i in range(3):
        read(log, i)
    conn = raw(log)
    try:
        with pytest.raises(Exception, match="append-only"):
            conn.execute("UPDATE access_log SET subject = 'x' WHERE seq = 2")
        with pytest.raises(Exception, match="append-only"):
            conn.execute("DELETE FROM access_log WHERE seq = 2")
        with pytest.raises(Exception, match="append-only"):
            conn.execute("TRUNCATE access_log" if log.postgres else "DELETE FROM access_log")
    finally:
        conn.close()
    assert_one_unbroken_chain(log, 3)


def test_a_restarted_log_puts_a_dropped_trigger_back(log, store):
    read(log, 1)
    tamper(log)
    restarted = AccessLog(*store)
    try:
        read(restarted, 2)
        conn = raw(log)
        try:
            with pytest.raises(Exception, match="append-only"):
                conn.execute("DELETE FROM access_log")
        finally:
            conn.close()
    finally:
        restarted.close()


# -- concurrent writers --------------------------------------------------------------------------

WRITER = """
import json, sys
from pathlib import Path
from application.audit import AccessLog

env, path, name, count = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
log = AccessLog(env, path)
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    log.append(subject=name, action="case.read", outcome="allowed", case=f"c{i % 5}", relation="unit")
log.close()
"""


def start_writers(store, count: int, names: list[str]) -> list[subprocess.Popen]:
    env, path = store
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, json.dumps(env), str(path), name, str(count)], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    return procs


def release(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()


def wait(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0


@pytest.mark.slow
def test_two_processes_starting_on_an_empty_store_write_one_chain(store):
    procs = start_writers(store, 50, ["proc.a", "proc.b"])
    release(procs)  # both create the table and append at once
    wait(procs)
    log = AccessLog(*store)
    try:
        assert_one_unbroken_chain(log, 100)
    finally:
        log.close()


@pytest.mark.slow
def test_four_threads_and_two_processes_appending_at_once_write_one_chain(log, store):
    read(log, 0)  # the table exists; the chain has begun
    procs = start_writers(store, 50, ["proc.a", "proc.b"])
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            barrier.wait()
            for i in range(50):
                log.append(subject=f"thread.{t}", action="case.step", outcome="allowed", case=f"c{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    release(procs)
    barrier.wait()
    for thread in threads:
        thread.join()
    wait(procs)
    assert not errors
    assert_one_unbroken_chain(log, 301)
    with log._connection() as conn:
        subjects = dict(conn.execute("SELECT subject, count(*) FROM access_log GROUP BY subject").fetchall())
    assert subjects == {"handler.0": 1, "thread.0": 50, "thread.1": 50, "thread.2": 50, "thread.3": 50,
                        "proc.a": 50, "proc.b": 50}


# -- reading -------------------------------------------------------------------------------------


def test_review_lists_that_months_reads_without_relation_and_every_denial_oldest_first(log):
    def at(*args) -> datetime:
        return datetime(*args, tzinfo=UTC)

    entries = [
        ("before", at(2026, 2, 28, 23, 59, 59, 999999), "allowed", "none", "c1"),
        ("first-instant", at(2026, 3, 1), "allowed", "none", "c1"),
        ("unit", at(2026, 3, 2), "allowed", "unit", "c1"),
        ("assigned", at(2026, 3, 3), "allowed", "assigned", "c2"),
        ("landlord", at(2026, 3, 4), "allowed", "landlord", "c2"),
        ("denied-unit", at(2026, 3, 5), "denied", "unit", "c2"),
        ("report-none", at(2026, 3, 6), "allowed", "none", None),
        ("denied-report", at(2026, 3, 7), "denied", "none", None),
        ("stranger", at(2026, 3, 15, 10), "allowed", "none", "c3"),
        ("last-instant", at(2026, 3, 31, 23, 59, 59, 999999), "allowed", "none", "c4"),
        ("after", at(2026, 4, 1), "denied", "none", "c4"),
    ]
    for subject, when, outcome, relation, case in reversed(entries):  # written out of time order
        log.append(subject=subject, action="case.read" if case else "report.read", outcome=outcome,
                   relation=relation, case=case, report=None if case else "ivo", at=when)
    reviewed = log.review("2026-03")
    assert [r.subject for r in reviewed] == ["first-instant", "denied-unit", "denied-report", "stranger",
                                             "last-instant"]
    assert [r.subject for r in log.review("2026-02")] == ["before"]
    assert [r.subject for r in log.review("2026-04")] == ["after"]
    assert log.review("2025-12") == []


def test_review_counts_months_in_utc(log):
    stockholm_night = datetime(2026, 4, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # 31 March UTC
    record = log.append(subject="s", action="case.read", outcome="allowed", case="c1", at=stockholm_night)
    assert record.at == datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
    assert log.review("2026-03") == [record]
    assert log.review("2026-04") == []


@pytest.mark.parametrize("month", ["2026-3", "2026-13", "2026-00", "26-03", "2026-03-01", ""])
def test_review_refuses_a_month_that_is_not_yyyy_mm(log, month):
    with pytest.raises(ValueError):
        log.review(month)


def test_for_case_pages_newest_first(log):
    for i in range(60):
        read(log, i, case="c-a" if i % 3 else "c-b")
    expected = [seq for seq in range(60, 0, -1) if (seq - 1) % 3]
    pages, before = [], None
    while page := log.for_case("c-a", limit=7, before_seq=before):
        assert len(page) <= 7
        pages.append(page)
        before = page[-1].seq
    assert [r.seq for page in pages for r in page] == expected
    assert all(r.case == "c-a" for page in pages for r in page)
    assert len(pages) == 6
    assert log.for_case("c-none") == []
    with pytest.raises(ValueError):
        log.for_case("c-a", limit=0)


# -- the record and where it is kept -------------------------------------------------------------


def test_a_record_is_frozen_and_its_time_is_aware_and_utc(log):
    record = read(log, 1)
    with pytest.raises(ValidationError):
        record.subject = "someone.else"
    with pytest.raises(ValidationError):
        log.append(subject="s", action="case.read", outcome="allowed", at=datetime(2026, 3, 1))
    with pytest.raises(ValidationError):
        log.append(subject="s", action="case.read", outcome="maybe")
    with pytest.raises(ValidationError):
        log.append(subject="s", action="case.read", outcome="allowed", relation="friend")
    assert_one_unbroken_chain(log, 1)


def test_the_sqlite_log_is_a_private_file_in_wal_mode(tmp_path):
    path = tmp_path / "data" / "access.sqlite"
    log = AccessLog(store_env("sqlite", tmp_path), path)
    try:
        log.append(subject="s", action="import", outcome="allowed")
    finally:
        log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert {"access_log_case", "access_log_at"} <= indexes


def test_the_postgres_log_lives_in_postgres_schema(tmp_path):
    skip_or_fail_without_postgres()
    name = create_database()
    try:
        env = {**store_env("postgres", tmp_path, name), "POSTGRES_SCHEMA": "audit"}
        log = AccessLog(env, tmp_path / "unused.sqlite")
        try:
            record = log.append(subject="s", action="identity.reveal", outcome="allowed", case="c1")
            assert log.for_case("c1") == [record]
            with log._connection() as conn:
                assert conn.execute("SELECT count(*) FROM audit.access_log").fetchone()[0] == 1
                assert conn.execute("SELECT to_regclass('public.access_log')").fetchone()[0] is None
            assert log.verify().ok
        finally:
            log.close()
        assert not (tmp_path / "unused.sqlite").exists()
        with pytest.raises(ValueError):
            AccessLog({**env, "POSTGRES_SCHEMA": "audit; DROP TABLE x"}, tmp_path / "unused.sqlite")
    finally:
        drop_database(name)


def test_verify_says_when_its_anchors_could_not_all_be_checked(tmp_path):
    """A directory where the anchors file should be, damaged lines, another log's anchors:
    the chain is still verified, and the answer says what the tail check could not use."""
    from application.use_cases import UseCases
    from config.settings import Settings
    from domain.access import Principal

    cases = UseCases(Settings(data=tmp_path))
    admin = Principal(subject="admin.ops", roles=frozenset({"admin"}))
    anchors = tmp_path / "audit-anchors.jsonl"
    anchors.mkdir()
    blocked = cases.audit_verify(admin)
    assert blocked.ok and blocked.warnings == [
        "audit-anchors.jsonl cannot be read (Is a directory)"], blocked
    anchors.rmdir()
    first = cases.audit_verify(admin)
    assert first.ok and not first.warnings and anchors.exists()
    with open(anchors, "a") as f:
        f.write('{"seq": 3, "hash": "nope"}\n')
        f.write(Anchor(seq=9, hash="a" * 64, log="postgres:other/access_log").model_dump_json())
    damaged = cases.audit_verify(admin)
    assert damaged.ok and damaged.anchors_checked == 1, damaged
    assert damaged.warnings == [
        "audit-anchors.jsonl: 1 line not an anchor, not checked: the file was damaged or altered",
        "audit-anchors.jsonl: 1 anchor of another log, not checked (this log is sqlite:access_log)"]
