"""The two event-store backends: SQLite files, and a fresh PostgreSQL database per test.

PostgreSQL is found on 127.0.0.1:5432 as user `housing` (password `housing`), as `.ci/run`
sets it up; override with HOUSING_CHAIN_TEST_POSTGRES_* variables. Where no server answers the
PostgreSQL cases are skipped, unless HOUSING_CHAIN_REQUIRE_POSTGRES=1 (CI sets it), when they
fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG = {
    "POSTGRES_HOST": os.environ.get("HOUSING_CHAIN_TEST_POSTGRES_HOST", "127.0.0.1"),
    "POSTGRES_PORT": os.environ.get("HOUSING_CHAIN_TEST_POSTGRES_PORT", "5432"),
    "POSTGRES_USER": os.environ.get("HOUSING_CHAIN_TEST_POSTGRES_USER", "housing"),
    "POSTGRES_PASSWORD": os.environ.get("HOUSING_CHAIN_TEST_POSTGRES_PASSWORD", "housing"),
}
BACKENDS = ["sqlite", "postgres"]


def _admin():
    import psycopg

    return psycopg.connect(
        host=PG["POSTGRES_HOST"], port=int(PG["POSTGRES_PORT"]), user=PG["POSTGRES_USER"],
        password=PG["POSTGRES_PASSWORD"], dbname="postgres", autocommit=True, connect_timeout=3,
    )


def postgres_available() -> str | None:
    """None when a server answers, else why not."""
    try:
        with _admin():
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable server
        return str(exc).strip().splitlines()[0]


def skip_or_fail_without_postgres() -> None:
    why = postgres_available()
    if why is None:
        return
    message = f"PostgreSQL is not reachable at {PG['POSTGRES_HOST']}:{PG['POSTGRES_PORT']}: {why}"
    if os.environ.get("HOUSING_CHAIN_REQUIRE_POSTGRES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def create_database() -> str:
    name = f"hc_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_env(backend: str, directory: Path, dbname: str | None = None) -> dict[str, str]:
    """eventsourcing environment for the event store of one test."""
    if backend == "sqlite":
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(directory / "events.sqlite")}
    return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": dbname or "", **PG}


def view_env(backend: str, directory: Path, dbname: str | None = None) -> dict[str, str]:
    if backend == "sqlite":
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(directory / "views.sqlite")}
    return store_env(backend, directory, dbname)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path: Path) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """(event store env, view env) on SQLite files or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield store_env("sqlite", tmp_path), view_env("sqlite", tmp_path)
        return
    skip_or_fail_without_postgres()
    name = create_database()
    try:
        yield store_env("postgres", tmp_path, name), view_env("postgres", tmp_path, name)
    finally:
        drop_database(name)
