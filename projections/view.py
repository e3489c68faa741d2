"""The materialised view: fact tables plus eventsourcing's tracking table, in one database.

A page of events and its tracking record are written in one transaction, so every event is
applied exactly once: a second writer, or a restart that re-reads a page, fails the tracking
insert (eventsourcing's single-row tracking refuses a position that does not advance) and
the whole page rolls back. SQLite by default (`views.sqlite` beside the event store);
PostgreSQL when the event store is PostgreSQL.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment
from psycopg.sql import SQL

from config.postgres import creating_tables
from config.sqlite_wal import use_wal
from projections.projector import (
    APARTMENT_COLUMNS,
    APARTMENT_STEP_COLUMNS,
    CASE_COLUMNS,
    DAILY_COLUMNS,
    EXIT_COLUMNS,
    INTERRUPTION_COLUMNS,
    LATEST_COLUMNS,
    NOTICE_COLUMNS,
    PLACEMENT_COLUMNS,
    STEP_COLUMNS,
    VACANCY_COLUMNS,
    Page,
)

TABLES = {
    "rm_cases": (CASE_COLUMNS, ("case_uuid",)),
    "rm_apartments": (APARTMENT_COLUMNS, ("apartment_uuid",)),
    "rm_vacancies": (VACANCY_COLUMNS, ("apartment_uuid", "start_on", "kind")),
    "rm_notices": (NOTICE_COLUMNS, ("notice_uuid",)),
    "rm_daily": (DAILY_COLUMNS, ("day", "measure")),
    "rm_latest": (LATEST_COLUMNS, ("what",)),
    "rm_exits": (EXIT_COLUMNS, ("case_uuid",)),
    "rm_steps": (STEP_COLUMNS, ("case_uuid", "version")),
    "rm_apartment_steps": (APARTMENT_STEP_COLUMNS, ("apartment_uuid", "version")),
    "rm_placements": (PLACEMENT_COLUMNS, ("case_uuid", "placement")),
    "rm_interruptions": (INTERRUPTION_COLUMNS, ("case_uuid", "interrupted_on")),
}
# Bump when the fact tables change: a view of another version is dropped and rebuilt from
# the first event (read models are derived data; the event store is the truth).
SCHEMA_VERSION = 17  # v17: what each page changed (rm_changes), for the remembered answers;
# the tenancies from an index
# v16: the by-name list and the IVO counts read covering indexes, not the rows
# v15: who is responsible for each sub-goal (the worklist routes by it)
# v13: the latest step dates as a fact (rm_latest), not an index; v7: dated steps
# v8: the case file (plan, follow-ups, ...); v9: the case file v2 (interrupted support, ...)
# v10: the decision's deadline, the client's sex and birth year, the vacancy's landlord, and
# indexes for the reports at 50,000 cases; v11: moves, rent payments, apartments' accessibility
# and landlord type, ...; v12: the last inspection and coordinator meeting (programme rules)
RETIRED_TABLES = ("rm_case_events",)  # v4 copied every case event; history reads the store
INTEGER = {"course_sessions", "arrears_without_plan", "complaints", "rooms", "lettings",
           "applied_day", "decided_day", "move_in_day", "exit_day", "start_day", "end_day", "n",
           "closed_day", "last_contact_day", "version", "step_day", "gap", "birth_year",
           "accessible", "support_level"}
INDEXES = (
    "CREATE INDEX IF NOT EXISTS rm_cases_case_id ON rm_cases (case_id)",
    "CREATE INDEX IF NOT EXISTS rm_cases_client ON rm_cases (client_id, applied_on, case_id)",
    "CREATE INDEX IF NOT EXISTS rm_exits_destination ON rm_exits (destination, exit_on, "
    "client_id, case_id)",
    # covering: the steps of a kind by date (arrears, refusals) read from the index alone
    "CREATE INDEX IF NOT EXISTS rm_steps_event ON rm_steps (event, on_day, case_uuid, version, "
    "detail)",
    # partial, so only home visits are in it: the latest home visit of a case by a past date
    "CREATE INDEX IF NOT EXISTS rm_steps_home_visits ON rm_steps (case_uuid, version, on_day, "
    "actor) WHERE event = 'VisitRecorded' AND detail = 'home_visit'",
    # covering: the by-name list's inactive spells are read from the index alone
    "CREATE INDEX IF NOT EXISTS rm_steps_gap ON rm_steps (gap, step_day)",
    "CREATE INDEX IF NOT EXISTS rm_apartments_id ON rm_apartments (apartment_id)",
    # covering: the by-name list's pass over every case (time since the last contact, closure
    # and destination) reads this index, a tenth of the rows' size, instead of the table
    "CREATE INDEX IF NOT EXISTS rm_cases_contact ON rm_cases (last_contact_day, closed_day, "
    "destination)",
    # covering: the granted decisions past their limit, by quarter (the IVO counts of the
    # kpis and the dashboard) read from the index alone; its columns change a few times a
    # case, and only then is it rewritten (FactsMixin._save_cases)
    "CREATE INDEX IF NOT EXISTS rm_cases_deadline ON rm_cases (outcome, deadline_on, "
    "move_in_on, closed_on)",
    # covering: the tenancies today (the caseload and the kpis' cases per pilot) from the
    # index alone; a visit rewrites its entry only when it changes the last visit or the pilot
    "CREATE INDEX IF NOT EXISTS rm_cases_tenancy ON rm_cases (stage, case_id, housing_pilot, "
    "caseworker, move_in_on, last_home_visit, programme)",
    # a person's own worklist: their cases as caseworker or as housing pilot, not a scan
    "CREATE INDEX IF NOT EXISTS rm_cases_caseworker ON rm_cases (caseworker)",
    "CREATE INDEX IF NOT EXISTS rm_cases_pilot ON rm_cases (assigned_pilot)",
    # a client's exits by date: the by-name list's "returned from housing"; rows written once
    "CREATE INDEX IF NOT EXISTS rm_exits_client ON rm_exits (client_id, exit_on, destination)",
)


# Set by the event that makes the row and never changed by the projector afterwards.
FIXED = {
    "rm_cases": {"case_id", "client_id", "target_group", "district", "applied_on",
                 "applied_day", "referral", "housing_situation", "sex", "birth_year"},
    "rm_apartments": {"apartment_id", "landlord", "rooms", "registered_on", "accessible",
                      "landlord_type"},
    "rm_vacancies": {"start_day", "landlord"},
    "rm_exits": {"case_id", "client_id", "exit_on", "destination"},
    "rm_steps": set(STEP_COLUMNS),  # rows written once, never changed
    "rm_apartment_steps": set(APARTMENT_STEP_COLUMNS),
    "rm_notices": {"notice_id", "kind", "source", "client_id", "district", "notice_date",
                   "eviction_date"},
}
CHANGING = {table: [c for c in columns if c not in key and c not in FIXED.get(table, ())]
            for table, (columns, key) in TABLES.items()}
ROW_TUPLE = {table: itemgetter(*columns) for table, (columns, _) in TABLES.items()}
CASE_CHANGING = itemgetter(*CHANGING["rm_cases"])
# what a page changed, as the names `memo` compares with the columns an answer read
ALL_OF = {table: frozenset({f"{table}.#rows", *(f"{table}.{c}" for c in columns)})
          for table, (columns, _) in TABLES.items()}
# positions (notification ids) of changes kept in rm_changes: following the store, a row is
# a step or two, a few hundred bytes; an answer older than this is computed again
CHANGES_KEPT = 50_000
_WORD = re.compile(r"[a-z_][a-z0-9_]*")
_STAR = re.compile(r"(?:select|\.)\s*\*", re.IGNORECASE)


def columns_read(statements: Iterable[str]) -> frozenset[str]:
    """The `table.column` names the SQL statements can read: each fact table they name,
    with its `#rows` and every column of it they name (all of them for `SELECT *` or
    `t.*`). Words are matched whole anywhere in the text, so the set errs on the side of
    more: an answer is never kept past a change of something it read."""
    out: set[str] = set()
    for sql in statements:
        words = set(_WORD.findall(sql.lower()))
        star = bool(_STAR.search(sql))
        for table, (columns, _) in TABLES.items():
            if table in words:
                out.add(f"{table}.#rows")
                out.update(f"{table}.{c}" for c in columns if star or c in words)
    return frozenset(out)


class ReadLog:
    """A view that notes the SQL read through it (for `columns_read`), for one answer."""

    def __init__(self, view: Any) -> None:
        self._view = view
        self.statements: list[str] = []

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        self.statements.append(sql)
        return self._view.rows(sql, params)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        self.statements.append(sql)
        return self._view.query(sql, params)

    def __getattr__(self, name: str) -> Any:
        if name in ("datastore", "load_page", "save_page"):
            raise AttributeError(f"{name}: only rows() and query() are read through a ReadLog")
        return getattr(self._view, name)


def create_statements() -> list[str]:
    statements = []
    for table, (columns, key) in TABLES.items():
        cols = ", ".join(f"{c} {'INTEGER' if c in INTEGER else 'TEXT'}" for c in columns)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({', '.join(key)}))"
        )
    return [*statements, *INDEXES,
            "CREATE TABLE IF NOT EXISTS rm_changes (start BIGINT PRIMARY KEY, stop BIGINT, "
            "changed TEXT)"]


class FactsMixin:
    """Shared by the SQLite and PostgreSQL views; `mark` is the dialect's placeholder."""

    mark = "?"
    datastore: Any

    def _upsert(self, table: str) -> str:
        columns, key = TABLES[table]
        marks = ", ".join([self.mark] * len(columns))
        # columns written once, when the row is made, are left out of the update, so their
        # indexes are not rewritten for every later event of the case
        updates = ", ".join(f"{c} = excluded.{c}" for c in CHANGING[table])
        return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
                f"ON CONFLICT ({', '.join(key)}) "
                + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING"))

    def _select_in(self, c: Any, table: str, key: str, ids: Sequence[str],
                   extra: str = "") -> list[dict[str, Any]]:
        columns = TABLES[table][0]
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            c.execute(
                f"SELECT {', '.join(columns)} FROM {table} WHERE {key} IN "
                f"({', '.join([self.mark] * len(chunk))}){extra}",
                tuple(chunk),
            )
            fetched = c.fetchall()
            if fetched and isinstance(fetched[0], dict):  # psycopg's dict rows
                rows.extend(fetched)
            else:
                rows.extend(dict(zip(columns, r, strict=True)) for r in fetched)
        return rows

    def load_page(self, case_uuids: Sequence[str], apartment_uuids: Sequence[str],
                  notice_uuids: Sequence[str] = ()) -> Page:
        page = Page()
        with self.datastore.transaction(commit=False) as c:
            for row in self._select_in(c, "rm_notices", "notice_uuid", notice_uuids):
                page.notices[row["notice_uuid"]] = row
            for row in self._select_in(c, "rm_cases", "case_uuid", case_uuids):
                page.cases[row["case_uuid"]] = row
                page.cases_before[row["case_uuid"]] = CASE_CHANGING(row)
            for row in self._select_in(c, "rm_apartments", "apartment_uuid", apartment_uuids):
                page.apartments[row["apartment_uuid"]] = row
            for row in self._select_in(c, "rm_placements", "case_uuid", case_uuids):
                page.placements[row["case_uuid"], row["placement"]] = row
            for row in self._select_in(c, "rm_interruptions", "case_uuid", case_uuids):
                page.interruptions[row["case_uuid"], row["interrupted_on"]] = row
            for row in self._select_in(c, "rm_vacancies", "apartment_uuid", apartment_uuids,
                                       " AND end_on IS NULL"):
                page.open_vacancies[row["apartment_uuid"]] = row
        return page

    def save_page(self, page: Page, start: int, tracking: Tracking) -> None:
        """Write a page's facts and move the position from `start` to the page's end, in one
        transaction. The move is a compare-and-set: if the position is no longer `start`
        (another runner got there first, or a rebuild reset it), IntegrityError, and nothing
        of this page is written."""
        with self.datastore.transaction(commit=True) as c:
            self._move_position(c, start, tracking)
            changed = self._save_cases(c, page)
            for table, rows in (("rm_apartments", page.apartments.values()),
                                ("rm_vacancies", page.vacancies.values()),
                                ("rm_notices", page.notices.values()),
                                ("rm_exits", page.exits.values()),
                                ("rm_steps", page.steps),
                                ("rm_apartment_steps", page.apartment_steps),
                                ("rm_placements", page.placements.values()),
                                ("rm_interruptions", page.interruptions.values())):
                values = list(map(ROW_TUPLE[table], rows))
                if values:
                    c.executemany(self._upsert(table), values)
                    changed.update(ALL_OF[table])
            c.execute("SELECT what, day FROM rm_latest")
            known = {r["what"] if isinstance(r, dict) else r[0]:
                     r["day"] if isinstance(r, dict) else r[1] for r in c.fetchall()}
            latest = [(what, day) for what, rows in (("rm_steps", page.steps),
                                                     ("rm_apartment_steps", page.apartment_steps))
                      if (day := max((r["on_day"] for r in rows if r["on_day"]), default=None))
                      and (known.get(what) is None or day > known[what])]
            if latest:  # is a date past? one row per table, not an index on every step
                c.executemany(
                    f"INSERT INTO rm_latest (what, day) VALUES ({self.mark}, {self.mark}) "
                    "ON CONFLICT (what) DO UPDATE SET day = excluded.day", latest)
                changed.update(ALL_OF["rm_latest"])
            if page.daily:  # counts: added to what earlier pages counted
                c.executemany(
                    f"INSERT INTO rm_daily (day, measure, n) VALUES ({self.mark}, {self.mark}, "
                    f"{self.mark}) ON CONFLICT (day, measure) DO UPDATE SET n = rm_daily.n + "
                    "excluded.n", [(day, measure, n) for (day, measure), n in page.daily.items()])
                changed.update(ALL_OF["rm_daily"])
            self._record_changes(c, start, tracking.notification_id, changed)

    def _record_changes(self, c: Any, start: int, stop: int, changed: set[str]) -> None:
        """What the page (start, stop] changed, as `table.column` names, for the answers
        remembered at `start` (application/memo.py); only the last CHANGES_KEPT positions."""
        m = self.mark
        c.execute(f"DELETE FROM rm_changes WHERE start < {m}", (stop - CHANGES_KEPT,))
        c.execute(f"INSERT INTO rm_changes (start, stop, changed) VALUES ({m}, {m}, {m})",
                  (start, stop, " ".join(sorted(changed))))

    def changes(self, start: int, stop: int) -> frozenset[str] | None:
        """The `table.column` names the pages between the positions `start` and `stop` changed
        (a new or removed row changes the table's `#rows` and every column); None when that is
        no longer known (older than the changes kept, or before a rebuild)."""
        if stop <= start:
            return frozenset()
        m = self.mark
        found = self.rows(f"SELECT start, stop, changed FROM rm_changes WHERE start >= {m} "
                          f"AND stop <= {m} ORDER BY start", (start, stop))
        at = start
        out: set[str] = set()
        for first, last, changed in found:
            if first != at:  # a gap: not every page between is known
                return None
            out.update(changed.split())
            at = last
        return frozenset(out) if at == stop else None

    def _save_cases(self, c: Any, page: Page) -> set[str]:
        """New case rows whole; a loaded row only in the columns this page changed, grouped by
        which those are. SQLite and PostgreSQL rewrite an index whenever a column of it is
        set, changed or not; a case's events mostly change a date or two of its ~50 columns,
        so setting them all rewrote every index on changing columns for every event.

        The rows were loaded at the position this page starts from, and the save moves the
        position from there (compare-and-set, `_move_position`), so they are the rows the
        update applies to."""
        new, changed = [], defaultdict(list)
        columns = CHANGING["rm_cases"]
        for uuid, row in page.cases.items():
            before = page.cases_before.get(uuid)
            if before is None:
                new.append(ROW_TUPLE["rm_cases"](row))
                continue
            after = CASE_CHANGING(row)
            if after != before:
                which = tuple(i for i, (a, b) in enumerate(zip(after, before, strict=True))
                              if a != b)
                changed[which].append((*(after[i] for i in which), uuid))
        touched: set[str] = set()
        if new:
            c.executemany(self._upsert("rm_cases"), new)
            touched.update(ALL_OF["rm_cases"])
        for which, values in changed.items():
            sets = ", ".join(f"{columns[i]} = {self.mark}" for i in which)
            c.executemany(f"UPDATE rm_cases SET {sets} WHERE case_uuid = {self.mark}", values)
            touched.update(f"rm_cases.{columns[i]}" for i in which)
        return touched

    def _move_position(self, c: Any, start: int, tracking: Tracking) -> None:
        table = getattr(self, "tracking_table_name", "tracking")
        m = self.mark
        if start == 0:
            self._insert_tracking(c, tracking)  # type: ignore[attr-defined]  # fails if a row exists
            return
        c.execute(f"UPDATE {table} SET notification_id = {m} WHERE application_name = {m} "
                  f"AND notification_id = {m} RETURNING notification_id",
                  (tracking.notification_id, tracking.application_name, start))
        if c.fetchone() is None:
            raise IntegrityError(
                f"position of {tracking.application_name} moved from {start} meanwhile")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        sql = sql.replace("?", self.mark)
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, tuple(params))
            rows = c.fetchall()
        if not rows:
            return []
        if isinstance(rows[0], dict):
            return list(rows)
        keys = rows[0].keys()
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        """As `query`, as tuples in the selected order: for reports that read thousands of
        rows, where a dict a row is most of the time."""
        sql = sql.replace("?", self.mark)
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, tuple(params))
            fetched = c.fetchall()
        if fetched and isinstance(fetched[0], dict):  # psycopg's dict rows keep the order
            return [tuple(r.values()) for r in fetched]
        return [tuple(r) for r in fetched]

    def ensure_schema(self) -> bool:
        """Rebuild from scratch when the view was made by another version of the tables."""
        with self.datastore.transaction(commit=True) as c:
            c.execute("CREATE TABLE IF NOT EXISTS rm_meta (key TEXT PRIMARY KEY, value TEXT)")
            c.execute("SELECT value FROM rm_meta WHERE key = 'schema'")
            row = c.fetchone()
            found = None if row is None else (row["value"] if isinstance(row, dict) else row[0])
            if found == str(SCHEMA_VERSION):
                return False
            for table in (*TABLES, "rm_changes", *RETIRED_TABLES):
                c.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in create_statements():
                c.execute(statement)
            c.execute(f"DELETE FROM {getattr(self, 'tracking_table_name', 'tracking')} "
                      f"WHERE application_name <> {self.mark}", ("__migration__",))
            c.execute(f"DELETE FROM rm_meta WHERE key = {self.mark}", ("schema",))
            c.execute(f"INSERT INTO rm_meta (key, value) VALUES ({self.mark}, {self.mark})",
                      ("schema", str(SCHEMA_VERSION)))
        return True

    def drop_all(self) -> None:
        """For a rebuild: empty the facts and forget the position, in one transaction."""
        with self.datastore.transaction(commit=True) as c:
            for table in (*TABLES, "rm_changes"):
                c.execute(f"DELETE FROM {table}")
            c.execute(f"DELETE FROM {getattr(self, 'tracking_table_name', 'tracking')}")
            self._after_drop(c)

    def _after_drop(self, c: Any) -> None:
        """SQLite's single-row tracking keeps a migration marker row; put it back."""
        self._insert_tracking(c, Tracking(self.table_migration_identifier, 1))  # type: ignore[attr-defined]


class SQLiteChainView(FactsMixin, SQLiteTrackingRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        # The view is derived data and its tracking record commits with each page, so a
        # page lost to a power cut is simply projected again: no fsync per commit needed.
        pool = datastore.pool
        create = pool._create_connection

        def relaxed() -> Any:
            connection = create()
            connection._sqlite_conn.execute("PRAGMA synchronous = NORMAL")
            # the pages a catch-up touches and the reports scan stay in memory (64 MiB)
            connection._sqlite_conn.execute("PRAGMA cache_size = -65536")
            # the reports' GROUP BY and ORDER BY sort in memory, not in a temporary file:
            # p95 of the by-name list's pass over the cases 40 ms against 60-90 ms
            connection._sqlite_conn.execute("PRAGMA temp_store = MEMORY")
            return connection

        pool._create_connection = relaxed
        super().__init__(datastore, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *create_statements()]


class PostgresChainView(FactsMixin, PostgresTrackingRecorder):
    mark = "%s"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements.extend(SQL(s) for s in create_statements())  # type: ignore[arg-type]

    def _after_drop(self, c: Any) -> None:
        pass


ChainView = SQLiteChainView | PostgresChainView
VIEW_NAME = "ChainView"


def open_view(env: dict[str, str]) -> ChainView:
    """The view for an event store environment (from Settings.view_env)."""
    factory = InfrastructureFactory.construct(env=Environment(VIEW_NAME, env))
    postgres = type(factory).__module__.endswith("postgres")
    if not postgres:
        _new_file_with_large_pages(env.get("SQLITE_DBNAME", ""))
        view = factory.tracking_recorder(SQLiteChainView)
        view.ensure_schema()
        return view
    with creating_tables(factory.env):  # the view's tables are checked and migrated here
        view = factory.tracking_recorder(PostgresChainView)
        view.ensure_schema()
    return view


VIEW_PAGE_SIZE = 16384


def _new_file_with_large_pages(name: str) -> None:
    """A views file made here has 16 KiB pages: the catch-up upserts whole pages of rows into
    a few large tables, and with four times fewer, fuller b-tree pages it ran about 11 % faster
    (bench/catchup.py, alternating runs). The page size is fixed once the file is in WAL mode,
    so it is set before; an existing file keeps its pages."""
    if not name or name.startswith(("file:", ":memory:")) or "mode=memory" in name:
        return
    path = Path(name)
    if path.exists() and path.stat().st_size > 0:
        return
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA page_size = {VIEW_PAGE_SIZE}")
        use_wal(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS rm_meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.commit()
