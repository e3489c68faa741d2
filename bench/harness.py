"""What both benchmarks share: a private embedded stack with the bare worker beside ours.

`bench_stack()` starts the real dev server and the housing chain's worker with
`EmbeddedStack` (free ports, a temporary data directory), then a second Worker for
`BareWorkflow` in the same process, and tears all of it down on the way out, on error and
on Ctrl-C too. Both workers get the same activity-timing interceptor, so a report can say
how much of a round trip is the activity itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bare
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

import worker as worker_module
from application.gateway import connect
from config.logs import configure
from config.settings import Settings
from runtime.stack import EmbeddedStack

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ActivityTimer(Interceptor):
    """Seconds spent in each activity (executor queueing + the function), by type."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TimedActivity(next, self)

    def reset(self) -> None:
        self.samples.clear()


class _TimedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, timer: ActivityTimer) -> None:
        super().__init__(next)
        self.timer = timer

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        began = time.perf_counter()
        try:
            return await self.next.execute_activity(input)
        finally:
            self.timer.samples[activity.info().activity_type].append(time.perf_counter() - began)


@dataclass
class BenchStack:
    settings: Settings
    client: Client  # the benchmark's own client, for both workflows
    data: Path
    timer: ActivityTimer
    worker_options: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment for a `housing-chain` subprocess talking to this stack."""
        env = dict(os.environ)
        env.update({
            "HOUSING_CHAIN_DATA": str(self.settings.data),
            "TEMPORAL_ADDRESS": self.settings.temporal_address,
            "TEMPORAL_NAMESPACE": self.settings.temporal_namespace,
            "HOUSING_CHAIN_TASK_QUEUE": self.settings.task_queue,
            "HOUSING_CHAIN_LOG_FORMAT": "json",
        })
        return env


@asynccontextmanager
async def bench_stack(name: str) -> AsyncIterator[BenchStack]:
    data = Path(tempfile.mkdtemp(prefix=f"housing-chain-bench-{name}-"))
    settings = Settings().model_copy(update={
        "data": data,
        "temporal_address": f"127.0.0.1:{free_port()}",
        "ui_port": free_port(),
    })
    # the worker logs as `housing-chain up` does (info, JSON), into a file, not the terminal
    log_file = (data / "worker.log").open("w", encoding="utf-8")
    configure("json", settings.log_level, stream=log_file)

    timer = ActivityTimer()
    captured: dict[str, Any] = {}

    def timed_worker(*args: Any, **kwargs: Any) -> Worker:
        # ours, exactly as worker.build_worker makes it, plus the timing interceptor
        captured.update(kwargs)
        kwargs["interceptors"] = [*kwargs.get("interceptors", ()), timer]
        return Worker(*args, **kwargs)

    worker_module.Worker = timed_worker  # type: ignore[attr-defined]
    stack = EmbeddedStack(settings)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="bare")
    try:
        await stack.start()
        bare_client = await bare.connect(settings.temporal_address, settings.temporal_namespace)
        limits = {k: captured[k] for k in ("max_concurrent_activities",
                                           "max_concurrent_local_activities") if k in captured}
        bare_worker = bare.build_bare_worker(bare_client, executor, interceptors=[timer], **limits)
        async with bare_worker:
            client = await connect(settings)
            yield BenchStack(settings, client, data, timer, {
                k: v for k, v in captured.items() if isinstance(v, (int, str, float))
            })
    finally:
        try:
            await asyncio.wait_for(stack.stop(), timeout=30)
        except BaseException:  # noqa: BLE001 - the server must go whatever happened
            pass
        stack.stop_server()
        executor.shutdown(wait=False, cancel_futures=True)
        log_file.close()
        worker_module.Worker = Worker  # type: ignore[attr-defined]
        if os.environ.get("BENCH_KEEP_DATA"):
            print(f"data kept in {data}", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


# --- figures ----------------------------------------------------------------------------

def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(samples: Sequence[float]) -> dict[str, float | int]:
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 50) * 1000, 2),
        "p90_ms": round(percentile(samples, 90) * 1000, 2),
        "p99_ms": round(percentile(samples, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(samples) * 1000, 2),
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class CpuMeter:
    """CPU used during a phase, by this benchmark (its process, the dev server, its client
    subprocesses) and by everything else on the machine, in % of one core. Other work on
    the machine slows the dev server, so a phase the others loaded is worth a second look.
    Linux only (/proc); elsewhere the figures are None."""

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self) -> None:
        self.began = self._sample()

    @staticmethod
    def _proc_ticks(pid: int | str) -> tuple[int, int]:
        """(utime + stime, parent pid) of a live process."""
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]), int(fields[1])

    def _ours(self) -> int:
        me = os.getpid()
        ticks = self._proc_ticks(me)[0]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    used, parent = self._proc_ticks(entry)
                except (OSError, IndexError, ValueError):
                    continue
                if parent == me:
                    ticks += used
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ticks + round((reaped.ru_utime + reaped.ru_stime) * self.HZ)

    def _sample(self) -> tuple[float, int, int] | None:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            idle = values[3] + values[4]
            return time.perf_counter(), sum(values[:8]) - idle, self._ours()
        except (OSError, IndexError, ValueError):
            return None

    def stop(self) -> dict[str, float | None]:
        end = self._sample()
        if self.began is None or end is None:
            return {"ours_pct_of_core": None, "others_pct_of_core": None}
        wall = end[0] - self.began[0]
        busy = (end[1] - self.began[1]) / self.HZ / wall * 100
        ours = (end[2] - self.began[2]) / self.HZ / wall * 100
        return {
            "seconds": round(wall, 2),
            "busy_pct_of_core": round(busy),
            "ours_pct_of_core": round(ours),
            "others_pct_of_core": max(0, round(busy - ours)),
        }


def write_results(name: str, figures: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def run_main(coro_fn) -> None:
    """asyncio.run with a clean exit code. Ctrl-C (SIGINT) and SIGTERM cancel the benchmark,
    which unwinds every `finally` (worker stopped, dev server terminated) before exiting."""

    interrupted: list[int] = []

    async def guarded() -> None:
        main = asyncio.current_task()
        assert main is not None
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            interrupted.append(signum)
            main.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                loop.add_signal_handler(signum, stop, signum)
        await coro_fn()

    code = 0
    try:
        asyncio.run(guarded())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException as exc:
        if interrupted or isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            # a cancelled Temporal call surfaces as its own error type; the signal is the cause
            print("interrupted; the stack was stopped", file=sys.stderr)
            code = 128 + (interrupted[0] if interrupted else signal.SIGINT)
        else:
            import traceback

            traceback.print_exc()
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio sdk-python#300, as interfaces.cli.main.main does


async def run_process(argv: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """Run a child without blocking this event loop (the worker lives on it)."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode(), time.perf_counter() - began
