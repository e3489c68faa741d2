"""A plain PostgreSQL connection from the eventsourcing-style environment (`POSTGRES_*`).

The stores that are not eventsourcing's own (the access log, the outbox of reminder mails,
the language preferences) connect with the same variables as the event store, so an operator
configures PostgreSQL once.
"""

from __future__ import annotations

from collections.abc import Mapping
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
