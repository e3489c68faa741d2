"""SQLite files that several processes open at once, in WAL mode.

Switching a file to WAL needs the file to itself, and while another process has it open
SQLite answers "database is locked" (after the busy timeout, or at once where waiting could
deadlock). Two API processes starting together on one data directory met that (the sign-in
codes; the access log and the key store are opened the same way; tests/test_scale_out.py,
where the second API exited at its first `PRAGMA journal_mode=WAL`): the switch is retried.
"""

from __future__ import annotations

import sqlite3
import time


def use_wal(conn: sqlite3.Connection, patience: float = 30.0) -> None:
    """Put the file in WAL mode (it stays so), retrying while another process holds it."""
    deadline = time.monotonic() + patience
    while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
