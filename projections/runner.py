"""Runs the projection: reads the event store's notifications a page at a time, folds each
page into the view and records the page's last position in the same transaction.

eventsourcing 9.5.6's SQLite recorder has no `subscribe()`, and the library's runner writes
one transaction per event (about 30 times slower than one per page), so this runner polls
`select_notifications` itself. It resumes from the view's tracking position after any stop,
and `wait()` lets a command read its own writes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import structlog
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.sqlite import SQLiteApplicationRecorder

from config.gcwatch import collector_paused
from projections.projector import (
    APARTMENT_TOPIC,
    CASE_TOPIC,
    TOPICS,
    Page,
    iso,
    project_apartment,
    project_case,
    project_notice,
)
from projections.view import ChainView

log = structlog.get_logger("projections")
# A catch-up loads and saves a case's row once a page it has events in, and commits once a
# page: with pages of 100,000 notification ids (about 50,000 events, some 90 MB more at the
# peak than pages of 20,000) the whole 50,000-case log projects in about 60 % of the time
# (bench/catchup.py). Following the store, pages are as small as what is new.
PAGE = 100_000


def fields_of(state: bytes) -> dict[str, Any]:
    """An event's stored JSON as a dict. eventsourcing's transcoder wraps dates, decimals
    and ids as {"_type_": ..., "_data_": ...}: the projector wants the data, the ISO or
    decimal text."""
    fields = orjson.loads(state)
    for key, value in fields.items():
        if value.__class__ is dict and "_data_" in value and "_type_" in value:
            fields[key] = value["_data_"]
    return fields


class Behind(Exception):
    """The read models did not reach the event store's position in time."""


CASE_TOPICS = tuple(t for t in TOPICS if t.startswith(CASE_TOPIC))


class ProjectionRunner:
    def __init__(self, app: Application, view: ChainView, page_size: int = PAGE,
                 poll_interval: float = 0.2) -> None:
        self.app = app
        self.view = view
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.notified = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def read(self, start: int, stop: int) -> list[tuple[str, str, dict[str, Any]]]:
        """(topic, originator id as hex, fields) of the domain events with notification ids
        in (start, stop], in order. Dates and decimals are the text they are stored as (the
        projector keeps ISO dates as text)."""
        recorder, mapper = self.app.recorder, self.app.mapper
        plain = mapper.cipher is None and mapper.compressor is None
        if plain and isinstance(recorder, SQLiteApplicationRecorder):
            return self._read_sqlite(recorder, start, stop)
        out = []
        for n in recorder.select_notifications(start=start, limit=self.page_size, stop=stop,
                                               topics=TOPICS, inclusive_of_start=False):
            if plain:
                state = fields_of(n.state)
            else:
                state = {k: iso(v) for k, v in mapper.to_domain_event(n).__dict__.items()}
            state["originator_version"] = n.originator_version
            out.append((n.topic, n.originator_id.hex, state))
        return out

    def _read_sqlite(self, recorder: SQLiteApplicationRecorder, start: int,
                     stop: int) -> list[tuple[str, str, dict[str, Any]]]:
        """The query of SQLiteApplicationRecorder.select_notifications (eventsourcing 9.5.6),
        without making a Notification and a UUID object of every row: a third of a
        catch-up's time went into those. The stored state is plain JSON (no cipher)."""
        out = []
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_id, originator_version, topic, state FROM "
                f"{recorder.events_table_name} WHERE rowid>? AND rowid<=? AND topic IN "
                f"({','.join('?' * len(TOPICS))}) ORDER BY rowid LIMIT ?",
                (start, stop, *TOPICS, self.page_size))
            for originator_id, version, topic, state in c.fetchall():
                fields = fields_of(state)
                fields["originator_version"] = version
                out.append((topic, originator_id.replace("-", ""), fields))
        return out

    def changed_cases(self, start: int, stop: int, most: int = 2000) -> set[str] | None:
        """The case rows (uuid hex) that the events in (start, stop] change, or None when
        there are more than `most` such events: reading them is then no cheaper than reading
        every row. Only case events touch a case row (projector.project_case)."""
        found = self.app.recorder.select_notifications(
            start=start, limit=most + 1, stop=stop, topics=CASE_TOPICS, inclusive_of_start=False)
        return None if len(found) > most else {n.originator_id.hex for n in found}

    @property
    def position(self) -> int:
        return self.view.max_tracking_id(self.app.name) or 0

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def run_page(self) -> int:
        """Project the next page: the domain events among the next `page_size` notification
        ids up to the head; returns how many notification ids it covered."""
        start = self.position
        stop = min(start + self.page_size, self.head())
        if stop <= start:
            return 0
        with collector_paused():
            self._project(start, stop)
        return stop - start

    def _project(self, start: int, stop: int) -> None:
        decoded = self.read(start, stop)
        case_ids: set[str] = set()
        apartment_ids: set[str] = set()
        notice_ids: set[str] = set()
        for topic, uuid, _ in decoded:
            if topic.startswith(CASE_TOPIC):
                case_ids.add(uuid)
            elif topic.startswith(APARTMENT_TOPIC):
                apartment_ids.add(uuid)
            else:
                notice_ids.add(uuid)
        page: Page = self.view.load_page(sorted(case_ids), sorted(apartment_ids),
                                         sorted(notice_ids))
        for topic, uuid, data in decoded:
            name = topic.rsplit(".", 1)[1]
            if topic.startswith(CASE_TOPIC):
                project_case(page, uuid, name, data)
            elif topic.startswith(APARTMENT_TOPIC):
                project_apartment(page, uuid, name, data)
            else:
                project_notice(page, uuid, name, data)
        try:
            self.view.save_page(page, start, Tracking(self.app.name, stop))
        except IntegrityError:
            log.info("page already projected by another runner", start=start)

    def catch_up(self, until: int | None = None) -> int:
        """Project pages until the head (or `until`); returns the notifications covered."""
        covered = 0
        target = self.head() if until is None else until
        while self.position < target and not self.stopping.is_set():
            done = self.run_page()
            if not done:
                break
            covered += done
        return covered

    def run_forever(self) -> None:
        """Catch up, then follow the event store: on PostgreSQL woken by the recorder's
        LISTEN/NOTIFY channel (eventsourcing NOTIFYs it on every insert), on SQLite, which
        has no notifications, by polling."""
        listening = self.listen()
        idle = 5.0 if listening else self.poll_interval
        while not self.stopping.is_set():
            try:
                self.notified.clear()
                if not self.catch_up():
                    self.notified.wait(idle)
            except Exception as exc:  # noqa: BLE001 - logged; a locked database clears up
                log.warning("projection page failed; retrying", error=str(exc))
                self.stopping.wait(1.0)

    def listen(self) -> bool:
        """Start a thread that LISTENs on the PostgreSQL recorder's channel; False on SQLite."""
        recorder = self.app.recorder
        channel = getattr(recorder, "channel_name", None)
        if channel is None:
            return False
        from psycopg.sql import SQL, Identifier

        def run() -> None:
            while not self.stopping.is_set():
                try:
                    with recorder.datastore.get_connection() as conn:
                        conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
                        while not self.stopping.is_set():
                            for _ in conn.notifies(timeout=0.5, stop_after=1):
                                self.notified.set()
                except Exception as exc:  # noqa: BLE001 - reconnect after a restart
                    log.warning("LISTEN failed; retrying", error=str(exc))
                    self.notified.set()
                    self.stopping.wait(1.0)

        threading.Thread(target=run, name="projection-listen", daemon=True).start()
        return True

    def start(self) -> ProjectionRunner:
        self.thread = threading.Thread(target=self.run_forever, name="projection", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.notified.set()
        if self.thread is not None:
            self.thread.join(timeout=30)

    def wait(self, position: int, timeout: float) -> None:
        """Block until the view has projected `position`, or raise Behind."""
        deadline = time.monotonic() + timeout
        while self.position < position:
            if time.monotonic() > deadline:
                raise Behind(
                    f"the read models are at event {self.position} of {position} after "
                    f"waiting {timeout:g} s; is the projection running? "
                    "(`housing-chain projections status`)"
                )
            time.sleep(0.05)

    def wait_or_catch_up(self, position: int, timeout: float) -> None:
        """Read your writes: reach `position`, projecting here as long as pages progress, and
        waiting at most `timeout` seconds for another runner when they do not.

        Safe beside a running projection: a page two runners both project is written by one
        (the position is moved by compare-and-set).
        """
        while self.position < position and not self.stopping.is_set():
            before = self.position
            try:
                self.run_page()
            except Exception as exc:  # noqa: BLE001 - e.g. a locked database: wait instead
                log.info("catching up here failed; waiting for the projection", error=str(exc))
                break
            if self.position <= before:
                break
        self.wait(position, timeout)

    def rebuild(self) -> int:
        self.view.drop_all()
        return self.catch_up()
