"""The bare baseline: the least a Temporal update → local activity → reply can cost here.

`BareWorkflow` has one update, `step(n) -> n + 1`, that runs a trivial *local* activity: a
sync function in a thread pool, the same kind of activity the case workflow runs. Nothing
else: no validator, no domain, no event store, no logging. The benchmarks register it on a
second Worker in the same process as the housing chain's worker, against the same dev
server, with the same data converter, executor size and concurrency limits
(worker.build_worker), so the only difference between the two figures is our own code.

Helpers:
- `round_trip`: one update (optionally update-with-start, as a case's `apply` is), timed.
- `spread`: M steps over K workflows, one update per step, `parallel` in flight (the
  import's default is 16), never two at once on one workflow (the import keeps a case's
  steps in order too); the workflows are started first, outside the timing.

`python bench/bare.py spread --address HOST:PORT ...` runs `spread` as its own process and
prints its figures as JSON: the import is timed as a CLI subprocess, so the baseline's
client runs in a process of its own too.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import sys
import time
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

TASK_QUEUE = "bench-bare"
STEP_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bare_step")
def bare_step(n: int) -> int:
    return n + 1


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    def __init__(self) -> None:
        self.done = False
        self.steps = 0

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.steps

    @workflow.update
    async def step(self, n: int) -> int:
        result = await workflow.execute_local_activity(
            bare_step, n, start_to_close_timeout=STEP_TIMEOUT
        )
        self.steps += 1
        return result

    @workflow.signal
    def finish(self) -> None:
        self.done = True


def build_bare_worker(
    client: Client, executor: concurrent.futures.Executor, task_queue: str = TASK_QUEUE,
    **options: Any,
) -> Worker:
    """A Worker for BareWorkflow with the limits worker.build_worker gives ours (the
    benchmarks pass the ones they saw it use; these are its values when written)."""
    options = {"max_concurrent_activities": 8, "max_concurrent_local_activities": 8, **options}
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BareWorkflow],
        activities=[bare_step],
        activity_executor=executor,
        **options,
    )


async def connect(address: str, namespace: str = "default") -> Client:
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter
    )


def _start_op(workflow_id: str, task_queue: str) -> WithStartWorkflowOperation:
    # the same policies ChainClient uses to start a case workflow with its first step
    return WithStartWorkflowOperation(
        BareWorkflow.run,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )


async def round_trip(
    client: Client, workflow_id: str, n: int, *, task_queue: str = TASK_QUEUE,
    with_start: bool = False,
) -> float:
    """One update round trip; returns its seconds. `with_start` starts the workflow too."""
    update_id = f"{workflow_id}:{n}"
    began = time.perf_counter()
    if with_start:
        result = await client.execute_update_with_start_workflow(
            BareWorkflow.step, n, start_workflow_operation=_start_op(workflow_id, task_queue),
            id=update_id,
        )
    else:
        handle = client.get_workflow_handle(workflow_id)
        result = await handle.execute_update(BareWorkflow.step, n, id=update_id)
    elapsed = time.perf_counter() - began
    if result != n + 1:
        raise RuntimeError(f"bare step {update_id} answered {result}, expected {n + 1}")
    return elapsed


async def sequential(
    client: Client, count: int, *, workflows: int, prefix: str, task_queue: str = TASK_QUEUE,
) -> list[float]:
    """`count` sequential round trips, round-robin over `workflows` workflows started by
    their first update (as `apply` starts a case). Returns each one's seconds."""
    out = []
    for i in range(count):
        out.append(await round_trip(
            client, f"{prefix}-{i % workflows}", i, task_queue=task_queue,
            with_start=i < workflows,
        ))
    return out


async def start_workflows(
    client: Client, ids: list[str], *, task_queue: str = TASK_QUEUE, parallel: int = 16
) -> None:
    gate = asyncio.Semaphore(parallel)

    async def one(workflow_id: str) -> None:
        async with gate:
            await client.start_workflow(
                BareWorkflow.run, id=workflow_id, task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )

    await asyncio.gather(*(one(w) for w in ids))


async def spread(
    client: Client, steps: int, *, workflows: int, parallel: int = 16, prefix: str,
    task_queue: str = TASK_QUEUE,
) -> dict[str, float | int]:
    """`steps` one-update steps over `workflows` workflows, `parallel` in flight.

    The workflows are started first (not timed); then every step is a plain update, the
    steps of one workflow strictly one after another, as the import keeps a case's order.
    """
    ids = [f"{prefix}-{k}" for k in range(workflows)]
    began = time.perf_counter()
    await start_workflows(client, ids, task_queue=task_queue, parallel=parallel)
    started = time.perf_counter() - began

    work: asyncio.Queue[int] = asyncio.Queue()
    for i in range(steps):
        work.put_nowait(i)
    locks = {w: asyncio.Lock() for w in ids}
    latencies: list[float] = []

    async def sender() -> None:
        while True:
            try:
                i = work.get_nowait()
            except asyncio.QueueEmpty:
                return
            workflow_id = ids[i % workflows]
            async with locks[workflow_id]:
                latencies.append(await round_trip(client, workflow_id, i, task_queue=task_queue))

    began = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(parallel)))
    seconds = time.perf_counter() - began
    latencies.sort()
    return {
        "steps": steps,
        "workflows": workflows,
        "parallel": parallel,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "start_workflows_seconds": started,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
    }


async def finish_all(client: Client, ids: list[str], parallel: int = 16) -> None:
    """Let bare workflows complete (tidiness only; the dev server goes with the benchmark)."""
    gate = asyncio.Semaphore(parallel)

    async def one(workflow_id: str) -> None:
        async with gate:
            try:
                await client.get_workflow_handle(workflow_id).signal(BareWorkflow.finish)
            except Exception:  # noqa: BLE001 - best effort
                pass

    await asyncio.gather(*(one(w) for w in ids))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("spread", help="M steps over K bare workflows; prints JSON")
    sp.add_argument("--address", required=True)
    sp.add_argument("--namespace", default="default")
    sp.add_argument("--task-queue", default=TASK_QUEUE)
    sp.add_argument("--steps", type=int, default=2_000)
    sp.add_argument("--workflows", type=int, default=300)
    sp.add_argument("--parallel", type=int, default=16)
    sp.add_argument("--prefix", default="bare-rate")
    wp = sub.add_parser("worker", help="a bare worker until SIGTERM (its own process: its CPU "
                        "is measured next to ours by sustained_load.py)")
    wp.add_argument("--address", required=True)
    wp.add_argument("--namespace", default="default")
    wp.add_argument("--task-queue", default=TASK_QUEUE)
    wp.add_argument("--max-cached", type=int, default=1000,
                    help="max_cached_workflows, as ours (HOUSING_CHAIN_WORKFLOW_CACHE)")
    args = parser.parse_args(argv)

    if args.command == "worker":
        async def serve() -> None:
            import signal

            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            client = await connect(args.address, args.namespace)
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
                async with build_bare_worker(client, executor, args.task_queue,
                                             max_cached_workflows=args.max_cached):
                    print("bare worker started", flush=True)
                    await stop.wait()

        asyncio.run(serve())
        os._exit(0)

    async def go() -> dict:
        client = await connect(args.address, args.namespace)
        figures = await spread(
            client, args.steps, workflows=args.workflows, parallel=args.parallel,
            prefix=args.prefix, task_queue=args.task_queue,
        )
        await finish_all(client, [f"{args.prefix}-{k}" for k in range(args.workflows)])
        return figures

    print(json.dumps(asyncio.run(go())), flush=True)
    sys.stderr.flush()
    os._exit(0)  # temporalio sdk-python#300, as interfaces.cli.main.main does


if __name__ == "__main__":
    main()
