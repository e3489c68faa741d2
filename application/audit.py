"""The access log: who read or changed which case, when, from where, and how they related to it.

Social services records carry a duty to log every read and every write (the "guest book" of a
case file, cf. the access log of primeroIMS), and to review that log every month for reads by
people who had no reason to read. This module keeps that log. Three properties matter:

* Durable before the answer. `append` commits before it returns, and the API answers only after
  it, so no read can be served that is not logged.
* Append-only. A database trigger refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL); an
  attacker must first drop the trigger, which needs more rights than the application has.
* Tamper evident. Every record carries `hash = sha256(prev_hash + canonical JSON of its fields)`,
  so altering, deleting, reordering or inserting a record breaks the chain where it was done and
  `verify` names that record. The chain alone cannot show a cut-off tail or a whole chain
  rewritten from scratch: every verify that finds the chain intact therefore ends with an
  *anchor* (the newest record's seq and hash) kept outside the table, in the anchors file and
  in the logs, to be copied further (the monthly review's minutes); the next verify checks that
  each anchor is still in the chain (`--anchor SEQ:HASH` checks one kept elsewhere).

Several stateless API processes may write one log (one PostgreSQL database, or one SQLite file):
reading the last hash and inserting the next record is serialized across threads and processes
(SQLite `BEGIN IMMEDIATE`, PostgreSQL a transaction-scoped advisory lock), and `seq` is the
primary key, so the chain stays one unbroken line.

Deliberately independent of the rest of the project (stdlib, pydantic, psycopg, sqlite3): the log
must be readable and verifiable by a small tool even when the case engine is not installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from application.keys import private_file
from config import postgres
from config.sqlite_wal import use_wal

GENESIS = "0" * 64
_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_IDLE_CONNECTIONS = 8

# denied: the access rule refused; refused: allowed by the rules, then refused by the case
# (the step recorded nothing); allowed: the answer was given
Outcome = Literal["allowed", "denied", "refused", "failed"]
Relation = Literal["unit", "assigned", "landlord", "none"]

# Column order of the table; `case` is a reserved word in SQL, hence `case_id`.
_COLUMNS = ("seq", "at", "subject", "roles", "units", "action", "case_id", "report", "params",
            "address", "outcome", "case_unit", "relation", "prev_hash", "hash")
_JSON_COLUMNS = ("roles", "units", "params")


class AccessRecord(BaseModel):
    """One read or write of the records, as it was allowed or denied at that moment.

    `case_unit` and `relation` are captured when the access happens, not looked up later: the
    monthly review asks whether the reader had a reason *then*, and assignments change.
    `params` holds query parameters and the like, never personal data (the caller's duty).
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    at: datetime
    subject: str
    roles: list[str]
    units: list[str]
    action: str
    case: str | None
    report: str | None
    params: dict[str, str]
    address: str | None
    outcome: Outcome
    case_unit: str | None
    relation: Relation
    prev_hash: str
    hash: str

    @field_validator("at")
    @classmethod
    def _utc(cls, at: datetime) -> datetime:
        """A naive time would be read differently by each server's clock settings: refuse it."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("at must be timezone-aware")
        return at.astimezone(UTC)

    @field_validator("subject", "action")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Anchor(BaseModel):
    """A record the chain held when a verify found it intact: it must stay there."""

    model_config = ConfigDict(frozen=True)

    seq: int = Field(ge=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: datetime | None = None
    log: str | None = None  # AccessLog.name: an anchor of another log is not this one's

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """`SEQ:HASH`, as `audit verify` prints it."""
        seq, _, digest = text.strip().partition(":")
        if (not re.fullmatch(r"[0-9]{1,18}", seq) or int(seq) < 1
                or not re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ValueError(f"{text!r} is not SEQ:HASH (a record number, a colon and the "
                             "record's 64 hex digit hash, as `audit verify` prints it)")
        return cls(seq=int(seq), hash=digest)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


class AnchorFile:
    """The anchors of one installation, a JSON line each, outside the log's own table: what
    someone who can delete the table's newest records must also find and change."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.skipped = 0
        self.error: str | None = None

    def read(self) -> list[Anchor]:
        """The anchors, oldest first. A line that is not an anchor is skipped and counted in
        `skipped` (the chain still tells tampering apart; a lost anchor only weakens the tail
        check, and the caller says so)."""
        self.skipped, self.error = 0, None
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:  # a directory in its place, no permission
            self.error = f"{self.path.name} cannot be read ({exc.strerror or exc})"
            return []
        anchors = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                anchors.append(Anchor.model_validate_json(line))
            except ValueError:  # not UTF-8, not JSON, not an anchor
                self.skipped += 1
        return anchors

    def add(self, anchor: Anchor) -> None:
        known = self.read()
        if known and known[-1].seq == anchor.seq and known[-1].hash == anchor.hash:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(anchor.model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())


class VerifyResult(BaseModel):
    """The outcome of recomputing the chain; `head_hash` is the last intact record's hash, to be
    kept elsewhere so that a cut-off tail can be noticed too."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    checked: int
    first_broken: int | None = None
    reason: str | None = None
    head_hash: str | None = None
    head_seq: int | None = None
    anchors_checked: int = 0
    warnings: list[str] = []  # what weakened the tail check: anchors unreadable or skipped


def canonical_json(record: AccessRecord) -> str:
    """The record's fields without `hash`, as JSON with sorted keys and no spaces.

    Written out by hand rather than via pydantic's serializer so that the hashed form cannot
    change with a library upgrade: every stored hash depends on it byte for byte.
    """
    fields = {
        "seq": record.seq,
        "at": record.at.astimezone(UTC).strftime(_AT_FORMAT),
        "subject": record.subject,
        "roles": list(record.roles),
        "units": list(record.units),
        "action": record.action,
        "case": record.case,
        "report": record.report,
        "params": dict(record.params),
        "address": record.address,
        "outcome": record.outcome,
        "case_unit": record.case_unit,
        "relation": record.relation,
        "prev_hash": record.prev_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: AccessRecord) -> str:
    """sha256(prev_hash + canonical JSON), hex."""
    return hashlib.sha256((record.prev_hash + canonical_json(record)).encode("utf-8")).hexdigest()


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """`YYYY-MM` → [first instant of the month, first instant of the next) in UTC."""
    match = _MONTH.fullmatch(month)
    if not match:
        raise ValueError(f"month {month!r} is not YYYY-MM")
    year, mon = int(match.group(1)), int(match.group(2))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


class AccessLog:
    """The access log on PostgreSQL (table `access_log`, in POSTGRES_SCHEMA if set) when
    PERSISTENCE_MODULE ends with "postgres", else on the SQLite file `sqlite_path`.

    Safe to share between threads; each process opens its own connections, lazily, so an
    instance made before a fork is fine as long as it was not used before it.
    """

    def __init__(self, env: Mapping[str, str], sqlite_path: Path) -> None:
        self.env = dict(env)
        self.postgres = self.env.get("PERSISTENCE_MODULE", "").endswith("postgres")
        self.path = Path(sqlite_path)
        self.table = "access_log"
        self.schema: str | None = None
        if self.postgres and self.env.get("POSTGRES_SCHEMA"):
            schema = self.env["POSTGRES_SCHEMA"]
            if not _IDENTIFIER.fullmatch(schema):
                raise ValueError(f"POSTGRES_SCHEMA {schema!r} is not a plain identifier")
            self.schema = schema
            self.table = f"{schema}.access_log"
        self._mark = "%s" if self.postgres else "?"
        # which log an anchor belongs to: moving to PostgreSQL starts another log
        self.name = (f"postgres:{self.env.get('POSTGRES_DBNAME', '')}/{self.table}"
                     if self.postgres else f"sqlite:{self.table}")
        # One advisory lock per table, so logs in different schemas do not wait for each other.
        digest = hashlib.sha256(f"housing_chain.access_log:{self.table}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self._lock = threading.Lock()
        self._created = False
        self._idle: list[Any] = []
        self._inherited: list[Any] = []
        self._pid = os.getpid()

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        *,
        subject: str,
        action: str,
        outcome: Outcome,
        roles: list[str] | tuple[str, ...] = (),
        units: list[str] | tuple[str, ...] = (),
        case: str | None = None,
        report: str | None = None,
        params: Mapping[str, str] | None = None,
        address: str | None = None,
        case_unit: str | None = None,
        relation: Relation = "none",
        at: datetime | None = None,
    ) -> AccessRecord:
        """Append one record and return it, committed.

        `relation` defaults to "none" so that a caller who forgets it puts the read on the
        monthly review instead of hiding it. `at` defaults to now; pass it only to import
        records kept elsewhere.
        """
        draft = AccessRecord(
            seq=0, at=at or datetime.now(UTC), subject=subject, roles=list(roles), units=list(units),
            action=action, case=case, report=report, params=dict(params or {}), address=address,
            outcome=outcome, case_unit=case_unit, relation=relation, prev_hash=GENESIS, hash="",
        )
        return self.append_all([draft])[0]

    def append_all(self, drafts: list[AccessRecord]) -> list[AccessRecord]:
        """Append records (their `seq`, `prev_hash` and `hash` are set here) in one
        transaction, one commit: all of them or none (an import's record in each case)."""
        with self._connection() as conn:
            if self.postgres:
                with conn.transaction():
                    # Durable before the API answers, whatever the server's default says.
                    conn.execute("SET LOCAL synchronous_commit = on")
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                    return self._chain(conn, drafts)
            conn.execute("BEGIN IMMEDIATE")
            try:
                records = self._chain(conn, drafts)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return records

    def _chain(self, conn: Any, drafts: list[AccessRecord]) -> list[AccessRecord]:
        last, records = self._last(conn), []
        for draft in drafts:
            record = self._seal(draft, last)
            self._insert(conn, record)
            records.append(record)
            last = (record.seq, record.hash)
        return records

    @staticmethod
    def _seal(draft: AccessRecord, last: tuple[int, str] | None) -> AccessRecord:
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        unsealed = draft.model_copy(update={"seq": seq, "prev_hash": prev_hash})
        return unsealed.model_copy(update={"hash": record_hash(unsealed)})

    def _last(self, conn: Any) -> tuple[int, str] | None:
        row = conn.execute(f"SELECT seq, hash FROM {self.table} ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), row[1]) if row else None

    def _insert(self, conn: Any, r: AccessRecord) -> None:
        def js(value: Any) -> str:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

        json_mark = "%s::jsonb" if self.postgres else "?"
        marks = [json_mark if c in _JSON_COLUMNS else self._mark for c in _COLUMNS]
        at: Any = r.at if self.postgres else r.at.strftime(_AT_FORMAT)
        conn.execute(
            f"INSERT INTO {self.table} ({', '.join(_COLUMNS)}) VALUES ({', '.join(marks)})",
            (r.seq, at, r.subject, js(r.roles), js(r.units), r.action, r.case, r.report, js(r.params),
             r.address, r.outcome, r.case_unit, r.relation, r.prev_hash, r.hash),
        )

    # -- reading -------------------------------------------------------------------------------

    def for_case(self, case: str, limit: int = 50, before_seq: int | None = None) -> list[AccessRecord]:
        """The case's records, newest first; page on with `before_seq` = the last one's seq."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where, params = "case_id = ?", [case]
        if before_seq is not None:
            where += " AND seq < ?"
            params.append(before_seq)
        return self._select(f"WHERE {where} ORDER BY seq DESC LIMIT ?", (*params, limit))

    def review(self, month: str) -> list[AccessRecord]:
        """The monthly log review: that month's (UTC) allowed reads of a case by someone with no
        relation to it at the time, and every denied attempt, oldest first. An admin's import
        (a migration, recorded in each case it writes to) is not a read to review case by case."""
        start, end = month_bounds(month)
        bounds = (start, end) if self.postgres else (start.strftime(_AT_FORMAT), end.strftime(_AT_FORMAT))
        return self._select(
            "WHERE at >= ? AND at < ? AND (outcome = 'denied' OR "
            "(outcome = 'allowed' AND relation = 'none' AND case_id IS NOT NULL "
            "AND action <> 'case.import')) ORDER BY at, seq",
            bounds,
        )

    def verify(self, page_size: int = 1000, anchors: Iterable[Anchor] = ()) -> VerifyResult:
        """Recompute the chain from the first record, `page_size` records at a time, and name the
        first record where it breaks: a gap in seq (a record deleted), a prev_hash that is not
        the previous record's hash (reordered or inserted), or fields that do not match the hash
        (altered); then check that each anchor is still in the chain, so that newest records
        deleted (or a chain rewritten from scratch) are found too."""
        wanted: dict[int, list[Anchor]] = {}
        for anchor in anchors:
            if anchor.log in (None, self.name):
                wanted.setdefault(anchor.seq, []).append(anchor)
        expected, prev_hash, checked, last_seen = 1, GENESIS, 0, None
        found: dict[int, str] = {}
        while True:
            if last_seen is None:  # from the very first row, even one put below seq 1 by hand
                rows = self._rows("ORDER BY seq LIMIT ?", (page_size,))
            else:
                rows = self._rows("WHERE seq > ? ORDER BY seq LIMIT ?", (last_seen, page_size))
            for row in rows:
                seq = int(row[0])
                broken = self._broken(row, seq, expected, prev_hash)
                if broken:
                    return VerifyResult(ok=False, checked=checked, first_broken=broken[0],
                                        reason=broken[1], head_hash=None if checked == 0 else prev_hash,
                                        head_seq=last_seen)
                if seq in wanted:
                    found[seq] = row[-1]
                expected, prev_hash, checked, last_seen = seq + 1, row[-1], checked + 1, seq
            if len(rows) < page_size:
                break
        for seq in sorted(wanted):
            for anchor in wanted[seq]:
                reason = self._anchor_broken(anchor, found.get(seq), last_seen or 0)
                if reason:
                    first = (last_seen or 0) + 1 if seq > (last_seen or 0) else seq
                    return VerifyResult(ok=False, checked=checked, first_broken=first,
                                        reason=reason, head_hash=None if checked == 0 else prev_hash,
                                        head_seq=last_seen)
        return VerifyResult(ok=True, checked=checked, head_hash=None if checked == 0 else prev_hash,
                            head_seq=last_seen, anchors_checked=sum(map(len, wanted.values())))

    @staticmethod
    def _anchor_broken(anchor: Anchor, digest: str | None, last: int) -> str | None:
        when = f" on {anchor.at:%Y-%m-%d %H:%M} UTC" if anchor.at else ""
        if anchor.seq > last:
            return (f"records {last + 1} to {anchor.seq} are missing: the log ends at record "
                    f"{last}, but record {anchor.seq} was anchored{when} (deleted from the end)")
        if digest != anchor.hash:
            return (f"record {anchor.seq} is not the record anchored{when}: the log was "
                    "rewritten from there, or cut short and written on")
        return None

    def _broken(self, row: tuple, seq: int, expected: int, prev_hash: str) -> tuple[int, str] | None:
        if seq > expected:
            return expected, f"record {expected} is missing: the log goes on at record {seq}"
        if seq < expected:
            return seq, f"record {seq} is out of sequence: expected record {expected}"
        try:
            record = self._record(row)
        except Exception as exc:  # noqa: BLE001 - any unreadable field is a broken record
            return seq, f"record {seq} is unreadable: {str(exc).splitlines()[0]}"
        if record.prev_hash != prev_hash:
            return seq, f"record {seq} does not follow record {seq - 1}: reordered or inserted"
        if record_hash(record) != record.hash:
            return seq, f"record {seq} was altered: its fields no longer match its hash"
        return None

    def _select(self, clause: str, params: tuple) -> list[AccessRecord]:
        return [self._record(row) for row in self._rows(clause, params)]

    def _rows(self, clause: str, params: tuple) -> list[tuple]:
        with self._connection() as conn:
            sql = f"SELECT {', '.join(_COLUMNS)} FROM {self.table} {clause}"
            return list(conn.execute(sql.replace("?", self._mark), params).fetchall())

    def _record(self, row: tuple) -> AccessRecord:
        values = dict(zip(_COLUMNS, row, strict=True))
        values["case"] = values.pop("case_id")
        if self.postgres:
            values["at"] = values["at"].astimezone(UTC)
        else:
            values["at"] = datetime.strptime(values["at"], _AT_FORMAT).replace(tzinfo=UTC)
            for column in _JSON_COLUMNS:
                values[column] = json.loads(values[column])
        return AccessRecord.model_validate(values)

    # -- connections and tables ----------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A connection of this process from a small pool; dropped, not reused, after an error."""
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's connections are not ours to use, nor to close (closing a
                # PostgreSQL one would end the parent's session). Keep them out of the way.
                self._inherited.extend(self._idle)
                self._idle, self._pid = [], os.getpid()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            self._create(conn)
            yield conn
        except BaseException:
            _close_quietly(conn)
            raise
        with self._lock:
            if len(self._idle) < _IDLE_CONNECTIONS:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)

    def __enter__(self) -> AccessLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> Any:
        if self.postgres:
            return postgres.connect(self.env)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file ourselves so it is private from the first byte; SQLite gives its -wal
        # and -shm files the same mode.
        private_file(self.path)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _create(self, conn: Any) -> None:
        """Create table, indexes and append-only triggers once per instance, idempotently and
        safely when several processes start at once."""
        if self._created:
            return
        if self.postgres:
            self._create_postgres(conn)
        else:
            self._create_sqlite(conn)
        self._created = True

    def _create_sqlite(self, conn: sqlite3.Connection) -> None:
        use_wal(conn)
        refuse = "BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END"
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS access_log (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, "
                "subject TEXT NOT NULL, roles TEXT NOT NULL, units TEXT NOT NULL, action TEXT NOT NULL, "
                "case_id TEXT, report TEXT, params TEXT NOT NULL, address TEXT, outcome TEXT NOT NULL, "
                "case_unit TEXT, relation TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS access_log_case ON access_log (case_id, seq)")
            conn.execute("CREATE INDEX IF NOT EXISTS access_log_at ON access_log (at)")
            conn.execute(f"CREATE TRIGGER IF NOT EXISTS access_log_no_update BEFORE UPDATE ON access_log "
                         f"{refuse}")
            conn.execute(f"CREATE TRIGGER IF NOT EXISTS access_log_no_delete BEFORE DELETE ON access_log "
                         f"{refuse}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _create_postgres(self, conn: Any) -> None:
        prefix = f"{self.schema}." if self.schema else ""
        function = f"{prefix}access_log_refuse_change"
        with conn.transaction():
            # CREATE ... IF NOT EXISTS alone still races in the catalog; the lock makes it one at a time.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            if self.schema:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (seq BIGINT PRIMARY KEY, at TIMESTAMPTZ NOT NULL, "
                "subject TEXT NOT NULL, roles JSONB NOT NULL, units JSONB NOT NULL, action TEXT NOT NULL, "
                "case_id TEXT, report TEXT, params JSONB NOT NULL, address TEXT, outcome TEXT NOT NULL, "
                "case_unit TEXT, relation TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS access_log_case ON {self.table} (case_id, seq)")
            conn.execute(f"CREATE INDEX IF NOT EXISTS access_log_at ON {self.table} (at)")
            triggers = {
                row[0] for row in conn.execute(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                    (self.table,),
                )
            }
            if {"access_log_append_only", "access_log_no_truncate"} <= triggers:
                return
            conn.execute(
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'access_log is append-only: % refused', TG_OP; END $$"
            )
            if "access_log_append_only" not in triggers:
                conn.execute(f"CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON {self.table} "
                             f"FOR EACH ROW EXECUTE FUNCTION {function}()")
            if "access_log_no_truncate" not in triggers:
                conn.execute(f"CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON {self.table} "
                             f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001, S110 - closing a broken connection may fail too
        pass
