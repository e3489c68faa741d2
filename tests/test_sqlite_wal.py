"""SQLite files several processes open at once are switched to WAL with retries: SQLite
refuses the switch ("database is locked") while another connection holds the file — two API
processes starting together met that (tests/test_scale_out.py: the second one exited at its
first `PRAGMA journal_mode=WAL`)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from config.sqlite_wal import use_wal


def holding(path) -> sqlite3.Connection:
    """A connection in the middle of a read: the file is not the switcher's alone."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE IF NOT EXISTS t (x)")
    other.execute("BEGIN")
    other.execute("SELECT * FROM t").fetchall()
    return other


def test_switching_to_wal_while_another_connection_reads_is_refused(tmp_path):
    other = holding(tmp_path / "f.sqlite")
    conn = sqlite3.connect(tmp_path / "f.sqlite", timeout=0.05, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        conn.execute("PRAGMA journal_mode = WAL")
    other.close()


def test_use_wal_waits_for_the_other_connection_and_switches(tmp_path):
    other = holding(tmp_path / "f.sqlite")
    threading.Timer(0.3, other.close).start()
    conn = sqlite3.connect(tmp_path / "f.sqlite", timeout=0.05, isolation_level=None)
    use_wal(conn)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_use_wal_gives_up_after_its_patience(tmp_path):
    other = holding(tmp_path / "f.sqlite")
    conn = sqlite3.connect(tmp_path / "f.sqlite", timeout=0.05, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(conn, patience=0.2)
    other.close()
