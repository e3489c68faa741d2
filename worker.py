"""The Temporal worker: case and stock workflows, and the activities that apply steps.

Run it on its own (`python worker.py`) against any Temporal cluster (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`) and event store (eventsourcing's `PERSISTENCE_MODULE` variables); the
embedded stack (`housing-chain up`) runs it in-process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import sys

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.case import CaseActivities
from activities.eviction import NoticeActivities
from activities.notify import Notifier
from activities.reports import ReportActivities
from activities.retention import RetentionActivities
from application.gateway import Unreachable, temporal_client, unreachable
from application.readmodels import keyring_for
from application.schedules import ensure_schedules
from application.store import HousingChain
from config.gcwatch import keep_pauses_short, watch_gc_pauses
from config.logs import configure
from config.settings import Settings
from workflows.case import CaseWorkflow
from workflows.eviction import EvictionPreventionWorkflow
from workflows.reports import ScheduledReportWorkflow
from workflows.retention import IdentityRetentionWorkflow
from workflows.stock import StockWorkflow

WORKFLOWS = [CaseWorkflow, StockWorkflow, ScheduledReportWorkflow, EvictionPreventionWorkflow,
             IdentityRetentionWorkflow]
log = structlog.get_logger("worker")


async def connect(settings: Settings) -> Client:
    """The worker's client encrypts payloads and reaches a secured cluster (mTLS, an API key)
    like every other client: `application.gateway.temporal_client` builds them all."""
    try:
        return await temporal_client(settings)
    except RuntimeError as exc:
        raise unreachable(settings, exc) from None


def build_worker(
    client: Client, settings: Settings, app: HousingChain,
    executor: concurrent.futures.Executor,
) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[*CaseActivities(app).all(), Notifier(settings).deliver,
                    ReportActivities(settings).write_report, *NoticeActivities(app).all(),
                    RetentionActivities(settings, app.keyring).erase_expired_identities],
        activity_executor=executor,
        max_concurrent_activities=8,
        max_concurrent_local_activities=8,
        max_cached_workflows=settings.workflow_cache,
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    watch_gc_pauses()
    client = await connect(settings)
    await ensure_schedules(client, settings)
    app = HousingChain(env=settings.event_store_env("events"))
    app.keyring = keyring_for(settings)  # reasons and notes are stored encrypted
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        worker = build_worker(client, settings, app, executor)
        log.info("worker started", task_queue=settings.task_queue,
                 temporal=settings.temporal_address, namespace=settings.temporal_namespace)
        collector_stop = asyncio.Event()
        collector = asyncio.create_task(keep_pauses_short(
            settings.gc_freeze_seconds, settings.gc_full_minutes, collector_stop))
        try:
            if stop is None:
                await worker.run()
                return
            async with worker:
                await stop.wait()
        finally:
            collector_stop.set()
            await collector
    log.info("worker stopped")


def main() -> None:
    os.umask(0o077)  # every file the worker creates (stores, keys, reports) is the owner's only
    settings = Settings()
    configure(settings.log_format, settings.log_level)
    stop = asyncio.Event()

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    try:
        asyncio.run(runner())
    except Unreachable as exc:  # one line, no traceback: it names the address and TLS
        print(f"worker: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
