"""What each signed-in person chose for themselves (today: the language of the pages and of
their reminder mails), kept where every process of the installation sees it: the table
`user_preferences` in the PostgreSQL of the event store, else `<data>/preferences.sqlite`.

A person is their token's subject. The table holds no client data; a preference is read at
sign-in and when a mail is composed, written when the person changes it, one short
connection each time (nothing is pooled: it is not on any step's path)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from application.i18n import LANGUAGES
from application.keys import private_file
from config import postgres
from config.sqlite_wal import use_wal

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class Preferences:
    def __init__(self, env: Mapping[str, str], sqlite_path: Path) -> None:
        self.env = dict(env)
        self.postgres = self.env.get("PERSISTENCE_MODULE", "").endswith("postgres")
        self.path = Path(sqlite_path)
        schema = self.env.get("POSTGRES_SCHEMA") if self.postgres else None
        if schema and not _IDENTIFIER.fullmatch(schema):
            raise ValueError(f"POSTGRES_SCHEMA {schema!r} is not a plain identifier")
        self.table = f"{schema}.user_preferences" if schema else "user_preferences"
        self._mark = "%s" if self.postgres else "?"
        self._created = False

    def language(self, subject: str) -> str | None:
        """The language `subject` chose, or None (the browser's then decides)."""
        with self._connection() as conn:
            row = conn.execute(f"SELECT language FROM {self.table} WHERE subject = {self._mark}",
                               (subject,)).fetchone()
        return row[0] if row and row[0] in LANGUAGES else None

    def choose_language(self, subject: str, language: str) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
        m = self._mark
        with self._connection() as conn:
            conn.execute(f"INSERT INTO {self.table} (subject, language, changed) VALUES ({m}, {m}, {m}) "
                         "ON CONFLICT (subject) DO UPDATE SET language = excluded.language, "
                         "changed = excluded.changed",
                         (subject, language, datetime.now(UTC).isoformat(timespec="seconds")))

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def _connect(self) -> Any:
        create = (f"CREATE TABLE IF NOT EXISTS {self.table} (subject TEXT PRIMARY KEY, "
                  "language TEXT NOT NULL, changed TEXT NOT NULL)")
        if self.postgres:
            conn = postgres.connect(self.env)
            if not self._created:
                with conn.transaction():  # IF NOT EXISTS alone races in the catalogue
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
                    conn.execute(create)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            private_file(self.path)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            use_wal(conn)
            if not self._created:
                conn.execute(create)
        self._created = True
        return conn
