"""A plain PostgreSQL connection from the eventsourcing-style environment (`POSTGRES_*`).

The stores that are not eventsourcing's own (the access log, the outbox of reminder mails,
the language preferences) connect with the same variables as the event store, so an operator
configures PostgreSQL once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def connect(env: Mapping[str, str]) -> Any:
    """An autocommit psycopg connection; transactions are opened where they are needed."""
    import psycopg  # only installations on PostgreSQL need the driver loaded

    return psycopg.connect(
        host=env.get("POSTGRES_HOST", "localhost"), port=int(env.get("POSTGRES_PORT", "5432")),
        user=env.get("POSTGRES_USER"), password=env.get("POSTGRES_PASSWORD"),
        dbname=env.get("POSTGRES_DBNAME"), autocommit=True,
        connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT", "10")),
    )


SCHEMA_LOCK = "housing_chain.schema"


@contextmanager
def creating_tables(env: Mapping[str, str]) -> Iterator[None]:
    """Hold the installation's table-creation lock while a store creates its tables.

    Two processes starting at once (two imports, two workers) both run the stores'
    `CREATE ... IF NOT EXISTS` and eventsourcing's `CREATE OR REPLACE FUNCTION`, and PostgreSQL
    refuses the loser ("tuple concurrently updated", a duplicate key in pg_type) instead of
    waiting. A session advisory lock on a connection of its own makes them one at a time; the
    creating code keeps its own connections and transactions."""
    conn = connect(env)
    try:
        _take(conn, float(env.get("HOUSING_CHAIN_SCHEMA_LOCK_SECONDS", "120")))
        yield
    finally:
        try:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (SCHEMA_LOCK,))
        finally:
            conn.close()  # closing the session releases the lock in any case


def _take(conn: Any, seconds: float) -> None:
    """The lock, tried until `seconds` have passed: a process that holds it stuck (behind a
    long transaction of a running server, say) makes the others say so and stop, not hang."""
    deadline = time.monotonic() + seconds
    while not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                           (SCHEMA_LOCK,)).fetchone()[0]:
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"another process has been creating or migrating the tables for over "
                f"{seconds:.0f} s (PostgreSQL advisory lock '{SCHEMA_LOCK}'; see pg_locks for "
                "its pid); let it finish, or stop it, and start again")
        time.sleep(0.05)
