"""Sustained load: 10,000 open cases on the embedded stack, steps at a steady rate for 5 min.

The stack runs as `python -m interfaces.cli.main up`, a subprocess of its own (free ports,
temporary data directory), exactly as an operator starts it: so "worker memory" is that
process's RSS (worker, projection thread, event store) and "server memory" the RSS of its
`temporal` child (the dev server). This benchmark's process is only the client.

1. Set-up: an import file with, per case, register_apartment + apply + start_assessment +
   decide (granted, training_apartment) + offer + landlord_decision (approved) + assign (the
   housing pilot) + move_in,
   dated over the last 12 days, ascending per case (move-ins 0–6 days ago, so no visit is
   overdue yet), imported with `python -m interfaces.cli.main import FILE --json --parallel 16`
   (timed, refusals counted; 20 random cases' stages are then checked to be `training`). The
   apartments come first in the file (the stock is there before the cases), so each case's
   seven steps go as one batched update-with-start. Then the stack is left until it is quiet
   (its log still for 15 s), so the load starts from a settled stack, not in the tail of the
   import. (Backdated move-ins a week or more old would each raise an overdue visit 120 s
   after their import, the policy's catch-up delay: thousands of system notes that kept
   the dev server saturated for minutes in an earlier version of this benchmark.)
2. Warm-up: the load below for `--warmup` s (default 60), not counted, so the worker's
   workflow cache and the server's caches hold the working set before anything is measured.
3. Load: `record_visit` (home_visit, dated today) to random cases through `ChainClient.send`,
   open loop: one step every 1/rate s, whether or not the earlier ones have answered, at most
   `--max-in-flight` at once (a step that finds the cap full waits for a slot; every such
   wait is counted). Each step's latency is measured from when it was sent (service time) and
   from when the schedule said it should be sent (includes any wait for the cap, so a stall
   is not hidden). Errors: any exception, refusal, or a step not applied, by kind; transient
   RPC errors the client retries by itself are counted apart.
4. Memory: VmRSS of the worker process and the server process before the warm-up, at the
   start of the load, every 30 s, and at the end; start, end, max and growth over the load
   (target ≤ 20 %), and growth from before the warm-up for comparison. CPU of each during
   the load.

Prints a table and writes bench/results/sustained_load.json. Timings are reported, never
asserted; exits non-zero only if the benchmark could not run (stack did not start, import
did not run, stack died). Stops the stack (its process group and the dev server's) and
removes the data directory on the way out, on an error or Ctrl-C as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import (
    CpuMeter,
    free_port,
    machine,
    percentile,
    run_main,
    run_process,
    write_results,
)
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from application.gateway import ChainClient, Refused, connect, today_in
from config.settings import Settings
from domain.commands import Checklist, RecordVisit

CLI = [sys.executable, "-m", "interfaces.cli.main"]
MEMORY_TARGET_PCT = 20.0
VISITOR = "boendestod.bench"  # the housing pilot assigned to every case, who makes the visits
SAMPLE_EVERY = 30.0
TARGET_GROUPS = ("young_adults", "substance_abuse", "psychiatric_disability", "families_with_children",
                 "newly_arrived", "elderly", "exposed_to_violence", "other")
DISTRICTS = ("Farsta", "Skärholmen", "Rinkeby-Kista", "Södermalm", "Hägersten-Älvsjö", "Spånga-Tensta")
# the environment of the stack and the CLI: our data directory only, the default policy
STRIPPED_ENV = ("PERSISTENCE_MODULE", "SQLITE_DBNAME", "SQLITE_LOCK_TIMEOUT",
                "HOUSING_CHAIN_POLICY_FILE", "HOUSING_CHAIN_TASK_QUEUE", "TEMPORAL_NAMESPACE",
                "HOUSING_CHAIN_TEMPORAL_NAMESPACE", "HOUSING_CHAIN_TEMPORAL_ADDRESS")


# --- processes ------------------------------------------------------------------------------

def proc_stat(pid: int) -> tuple[str, str, int, int] | None:
    """(comm, state, parent pid, utime + stime ticks) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, fields[0], int(fields[1]), int(fields[11]) + int(fields[12])


def alive(pid: int | None) -> bool:
    stat = proc_stat(pid) if pid else None
    return stat is not None and stat[1] not in ("Z", "X")


def rss_kib(pid: int | None) -> int | None:
    """VmRSS of a live process, in KiB."""
    if not alive(pid):
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None and stat[2] == pid:
                found.append((int(entry), stat[0]))
    return found


def cpu_ticks() -> tuple[int, int]:
    """Machine-wide (busy, all) ticks from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    return total - values[3] - values[4], total


class StackProcess:
    """`housing-chain up` as a subprocess in a session of its own, and its dev server child."""

    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.data = data
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.server_pid: int | None = None
        self.out_path = data / "up.out"
        self.log_path = data / "worker.log"

    @property
    def worker_pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 120.0) -> float:
        began = time.perf_counter()
        with self.out_path.open("wb") as out, self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*CLI, "up"], env=self.env, stdout=out, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True,  # our Ctrl-C is handled here, then stops it in order
            )
        while time.perf_counter() - began < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the stack exited ({self.proc.returncode}) before it was "
                                   f"ready:\n{self.tail()}")
            if "housing-chain ready" in self.out_path.read_text(errors="replace"):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the stack was not ready after {timeout:.0f} s:\n{self.tail()}")
        servers = [pid for pid, comm in children(self.proc.pid) if comm == "temporal"]
        if len(servers) != 1:
            raise RuntimeError(f"expected one `temporal` child of the stack process, found "
                               f"{children(self.proc.pid)}")
        self.server_pid = servers[0]
        return time.perf_counter() - began

    def tail(self, lines: int = 20) -> str:
        text = []
        for path in (self.out_path, self.log_path, self.data / "temporal-server.log"):
            if path.exists():
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            stopped = "stopping" in self.out_path.read_text(errors="replace")
            raise RuntimeError(
                f"the stack process exited ({self.proc.returncode}) during the run"
                + (" after printing `stopping…`: something outside this benchmark sent it "
                   "SIGINT or SIGTERM" if stopped else "") + f":\n{self.tail()}")
        if self.server_pid is not None and not alive(self.server_pid):
            raise RuntimeError(f"the dev server (pid {self.server_pid}) exited during the run:\n"
                               f"{self.tail()}")

    def stop(self) -> None:
        """SIGTERM `up` (it stops the projection, the worker and the dev server), then make
        sure: kill what is left of both process groups. Blocking, so a second Ctrl-C cannot
        cut it short half-way."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                pass
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        server = self.server_pid
        if server is not None and alive(server) and proc_stat(server)[0] == "temporal":  # type: ignore[index]
            # the dev server runs in a session of its own (EmbeddedStack): its group is its pid
            for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(server, sig)
                except (ProcessLookupError, PermissionError):
                    break
                deadline = time.monotonic() + wait
                while alive(server) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not alive(server):
                    break


# --- set-up ---------------------------------------------------------------------------------

def case_name(k: int) -> str:
    return f"load-{k:05d}"


def write_import(path: Path, cases: int, today: date) -> int:
    """The apartments first (the stock is there before the cases), then per case apply …
    move_in, dated within the last 12 days, ascending per case, so that no case has a visit
    overdue yet (the first weekly home visit falls due 7 days after the move-in)."""
    pilot = "handlaggare.bench"
    stock: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for k in range(cases):
        case, apartment = case_name(k), f"APT-L{k:05d}"
        back = 12 - k % 7  # applied 12..6 days ago; moved in 6 days later (6..0 days ago)
        day = lambda n, back=back: (today - timedelta(days=back - n)).isoformat()  # noqa: E731
        stock.append({"type": "register_apartment", "apartment": apartment, "landlord": "Stockholmshem",
                      "rooms": 1 + k % 3, "on": day(0), "actor": "bostadsenheten.bench"})
        steps += [
            {"type": "apply", "case": case, "on": day(0), "actor": pilot, "referral": "self",
             "client": {"id": f"client-{case}", "target_group": TARGET_GROUPS[k % len(TARGET_GROUPS)],
                        "district": DISTRICTS[k % len(DISTRICTS)],
                        "household": {"adults": 1, "children": k % 3}}},
            {"type": "start_assessment", "case": case, "on": day(1), "actor": pilot},
            {"type": "decide", "case": case, "on": day(2), "actor": pilot, "outcome": "granted",
             "programme": "training_apartment"},
            {"type": "offer", "case": case, "on": day(3), "actor": pilot, "apartment": apartment},
            {"type": "landlord_decision", "case": case, "on": day(4), "actor": pilot, "approved": True},
            # the pilot is part of the package (policy `pilot_at_move_in`): assigned before
            # the move-in, as a municipality does, so no case starts with a pilot missing
            {"type": "assign", "case": case, "on": day(5), "actor": pilot, "role": "housing_pilot",
             "to": VISITOR},
            {"type": "move_in", "case": case, "on": day(6), "actor": pilot, "apartment": apartment},
        ]
    with path.open("w", encoding="utf-8") as f:
        for row in stock + steps:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(stock) + len(steps)


# --- load -----------------------------------------------------------------------------------

class CountingChainClient(ChainClient):
    """ChainClient as the CLI uses it, counting the transient errors it retries by itself
    (so a retried step is visible here even though it ends up accepted)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retried: Counter[str] = Counter()

    async def _retrying(self, call):  # type: ignore[override]
        async def counted():
            try:
                return await call()
            except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
                if not isinstance(exc.__cause__, asyncio.CancelledError):  # a cancel is no retry
                    self.retried["update RPC timeout"] += 1
                raise
            except RPCError as exc:
                self.retried[f"RPC {exc.status.name if exc.status else '?'}"] += 1
                raise
        return await super()._retrying(counted)


class Load:
    def __init__(self, chain: CountingChainClient, cases: list[str], args: argparse.Namespace,
                 run_id: str, seconds: float | None = None) -> None:
        self.chain = chain
        self.cases = cases
        self.args = args
        self.run_id = run_id
        self.seconds = args.seconds if seconds is None else seconds
        self.rng = random.Random(args.seed)
        self.inflight: set[asyncio.Task] = set()
        self.records: list[dict[str, Any]] = []  # one per step
        self.errors: Counter[str] = Counter()
        self.error_examples: dict[str, str] = {}
        self.cap_hits = 0
        self.cap_hit_times: list[float] = []
        self.max_inflight = 0
        self.t0 = 0.0
        self.issue_end = 0.0

    def error(self, kind: str, example: str) -> None:
        self.errors[kind] += 1
        self.error_examples.setdefault(kind, example[:300])

    async def one(self, n: int, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        case = self.rng.choice(self.cases)
        step = RecordVisit(
            case=case, on=today_in(self.chain.policy), actor=VISITOR,
            id=f"load:{self.run_id}:{n}", kind="home_visit",
            checklist=Checklist(rent_paid=True, home_insurance=True, in_housing_queue=True),
        )
        sent = loop.time()
        record: dict[str, Any] = {"n": n, "scheduled": scheduled - self.t0, "sent": sent - self.t0,
                                  "ok": False}
        self.records.append(record)
        try:
            result = await asyncio.wait_for(self.chain.send(step), self.args.step_timeout)
        except Refused as exc:
            reason = str(exc).replace(case, "CASE")
            self.error(f"refused: {reason[:80]}", str(exc))
        except TimeoutError:
            self.error(f"no answer within {self.args.step_timeout:.0f} s", case)
        except Exception as exc:  # noqa: BLE001 - every failure is a figure here
            self.error(type(exc).__name__, f"{case}: {exc!r}")
        else:
            if result.accepted and not result.duplicate:
                record["ok"] = True
            else:
                self.error("not applied" if not result.accepted else "duplicate", repr(result))
        done = loop.time()
        record["done"] = done - self.t0
        record["latency"] = done - sent
        record["latency_from_schedule"] = done - scheduled

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        total = round(self.args.rate * self.seconds)
        interval = 1.0 / self.args.rate
        self.t0 = loop.time()
        for n in range(total):
            scheduled = self.t0 + n * interval
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(self.inflight) >= self.args.max_in_flight:
                self.cap_hits += 1
                self.cap_hit_times.append(loop.time() - self.t0)
                while len(self.inflight) >= self.args.max_in_flight:
                    await asyncio.wait(self.inflight, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(self.one(n, scheduled))
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)
            self.max_inflight = max(self.max_inflight, len(self.inflight))
        self.issue_end = loop.time() - self.t0
        if self.inflight:
            await asyncio.wait(set(self.inflight))

    async def cancel(self) -> None:
        for task in list(self.inflight):
            task.cancel()
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=10)


class Sampler:
    """RSS of the worker and the server (and CPU ticks of both and of us) every 30 s."""

    def __init__(self, stack: StackProcess, load: Load) -> None:
        self.stack = stack
        self.load = load
        self.samples: list[dict[str, Any]] = []
        self.cpu_began: dict[str, Any] = {}

    def sample(self, label: str) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.began
        done = [r for r in self.load.records if "done" in r]
        row = {
            "label": label,
            "t_s": round(elapsed, 1),
            "worker_rss_mib": _mib(rss_kib(self.stack.worker_pid)),
            "server_rss_mib": _mib(rss_kib(self.stack.server_pid)),
            "bench_rss_mib": _mib(rss_kib(os.getpid())),
            "steps_sent": len(self.load.records),
            "steps_ok": sum(1 for r in done if r["ok"]),
            "errors": sum(self.load.errors.values()),
            "in_flight": len(self.load.inflight),
        }
        self.samples.append(row)
        return row

    def ticks(self) -> dict[str, Any]:
        busy, total = cpu_ticks()
        return {
            "t": time.perf_counter(), "busy": busy, "total": total,
            "worker": (proc_stat(self.stack.worker_pid) or (0, 0, 0, 0))[3],  # type: ignore[arg-type]
            "server": (proc_stat(self.stack.server_pid) or (0, 0, 0, 0))[3],  # type: ignore[arg-type]
            "bench": (proc_stat(os.getpid()) or (0, 0, 0, 0))[3],
        }

    def start(self) -> None:
        self.began = time.perf_counter()
        self.cpu_began = self.ticks()
        self.print(self.sample("start"))

    def print(self, row: dict[str, Any]) -> None:
        print(f"  {row['label']:>6} t={row['t_s']:6.1f} s  worker {row['worker_rss_mib']} MiB, "
              f"server {row['server_rss_mib']} MiB; steps sent {row['steps_sent']}, ok "
              f"{row['steps_ok']}, errors {row['errors']}, in flight {row['in_flight']}",
              flush=True)

    async def every(self, seconds: float) -> None:
        k = 1
        while True:
            await asyncio.sleep(max(0.0, self.began + k * seconds - time.perf_counter()))
            self.stack.check()
            self.print(self.sample(f"{int(k * seconds)}s"))
            k += 1

    def cpu(self) -> dict[str, Any]:
        end = self.ticks()
        b = self.cpu_began
        wall = end["t"] - b["t"]
        hz = CpuMeter.HZ
        pct = lambda key: round((end[key] - b[key]) / hz / wall * 100)  # noqa: E731
        busy = pct("busy")
        ours = pct("worker") + pct("server") + pct("bench")
        return {"seconds": round(wall, 1), "worker_pct_of_core": pct("worker"),
                "server_pct_of_core": pct("server"), "bench_client_pct_of_core": pct("bench"),
                "machine_busy_pct_of_core": busy, "others_pct_of_core": max(0, busy - ours)}


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def memory_summary(samples: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Start, end, max, growth; and the trend over the second half of the samples (MiB per
    minute), which tells a level that settles from one that keeps climbing."""
    rows = [(s["t_s"], s[key]) for s in samples if s[key] is not None]
    if not rows:
        return {"start_mib": None, "end_mib": None, "max_mib": None, "growth_pct": None}
    values = [v for _, v in rows]
    start, end = values[0], values[-1]
    growth = (end - start) / start * 100
    half = rows[len(rows) // 2:]
    slope = None
    if len(half) >= 3:
        mt = sum(t for t, _ in half) / len(half)
        mv = sum(v for _, v in half) / len(half)
        var = sum((t - mt) ** 2 for t, _ in half)
        slope = round(sum((t - mt) * (v - mv) for t, v in half) / var * 60, 2) if var else None
    return {"start_mib": start, "end_mib": end, "max_mib": max(values),
            "growth_pct": round(growth, 1), "max_growth_pct": round((max(values) - start) / start * 100, 1),
            "second_half_trend_mib_per_min": slope, "target_met": growth <= MEMORY_TARGET_PCT}


def latency_summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), **{f"p{p}_ms": round(percentile(values, p) * 1000, 1) for p in (50, 90, 99)},
            "max_ms": round(max(values) * 1000, 1), "mean_ms": round(sum(values) / len(values) * 1000, 1)}


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_counts(path: Path, start: int, end: int, t0: datetime,
               window: float | None = None) -> dict[str, Any]:
    """What the worker logged between two byte offsets of its log: entries by event and
    level, when each kind first and last appeared (seconds after t0), with `window` the
    system notes and reminders per window, and examples of warnings and of lines that are
    not structlog JSON (Python logging and the Temporal core write those)."""
    events: Counter[str] = Counter()
    spans: dict[str, list[float]] = {}
    levels: Counter[str] = Counter()
    per_window: dict[str, Counter[int]] = {"due item": Counter(), "step accepted": Counter()}
    examples: list[str] = []
    other_lines: list[str] = []
    pauses: list[dict[str, Any]] = []  # config/gcwatch.py: collections of 100 ms or more
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            chunk = handle.read(max(0, end - start))
    except OSError:
        return {}
    for raw in chunk.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(raw)
            stamp = datetime.fromisoformat(str(row["timestamp"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            levels["not JSON"] += 1
            if raw.strip() and len(other_lines) < 8:
                other_lines.append(raw.strip()[:300])
            continue
        name = str(row.get("event"))
        events[name] += 1
        offset = round((stamp - t0).total_seconds(), 1)
        spans.setdefault(name, [offset, offset])[1] = offset
        if window and name in per_window:
            per_window[name][int(offset // window)] += 1
        if name in ("gc pause", "gc full collection"):
            pauses.append({"at_s": offset, "ms": row.get("ms"), "generation": row.get("generation"),
                           "full": name == "gc full collection"})
        level = str(row.get("level", "?"))
        levels[level] += 1
        if level in ("warning", "error", "critical") and len(examples) < 5:
            examples.append(raw.strip()[:400])
    out: dict[str, Any] = {
        "events": dict(events.most_common(12)), "levels": dict(levels),
        "first_last_s": {k: spans[k] for k, _ in events.most_common(12)},
        "warning_examples": examples, "not_json_examples": other_lines,
        "gc_pauses": pauses,
    }
    if window:
        out["per_window"] = {k: dict(sorted(v.items())) for k, v in per_window.items()}
    return out


async def import_progress(stack: StackProcess, cases: int, every: float = 60.0) -> None:
    """A line a minute while the import runs (it prints nothing with --json): how many
    apartments and case steps the worker has logged so far. Raises if the stack dies."""
    keys = {"apartments": b'"stock step accepted"', "steps": b'"step accepted"',
            "notes": b'"due item"'}
    offset, counts = 0, Counter()
    began = time.perf_counter()
    while True:
        for _ in range(round(every)):  # and a stack that died stops the import at once
            await asyncio.sleep(1.0)
            stack.check()
        with stack.log_path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
        chunk = chunk[:chunk.rfind(b"\n") + 1]
        offset += len(chunk)
        for name, key in keys.items():
            counts[name] += chunk.count(key)
        print(f"  {time.perf_counter() - began:5.0f} s: apartments {counts['apartments']}/{cases}, "
              f"case steps {counts['steps']}/{6 * cases}, system notes {counts['notes']}", flush=True)


async def settle(stack: StackProcess, quiet: float = 15.0, limit: float = 1200.0) -> float:
    """Wait until the worker's log has not grown for `quiet` seconds (nothing raised, no
    step in flight), at most `limit` seconds; returns how long it took."""
    began = time.perf_counter()
    size, still_since = log_size(stack.log_path), time.perf_counter()
    while time.perf_counter() - began < limit:
        await asyncio.sleep(1.0)
        stack.check()
        now = log_size(stack.log_path)
        if now != size:
            size, still_since = now, time.perf_counter()
        elif time.perf_counter() - still_since >= quiet:
            break
    return time.perf_counter() - began


def projection_lag(settings: Settings) -> dict[str, int] | None:
    """The read models' position against the event store's head (read-only)."""
    try:
        from application.readmodels import projection_for

        runner = projection_for(settings)
        position, head = runner.position, runner.head()
        return {"position": position, "head": head, "behind": head - position}
    except Exception as exc:  # noqa: BLE001 - a figure, not a condition
        print(f"  (projection position not read: {exc})", file=sys.stderr)
        return None


# --- the run --------------------------------------------------------------------------------

async def run(args: argparse.Namespace) -> None:
    for key in STRIPPED_ENV:
        os.environ.pop(key, None)
    data = Path(tempfile.mkdtemp(prefix="housing-chain-bench-sustained-"))
    address = f"127.0.0.1:{free_port()}"
    ui_port = free_port()
    env = dict(os.environ, HOUSING_CHAIN_DATA=str(data), TEMPORAL_ADDRESS=address,
               HOUSING_CHAIN_UI_PORT=str(ui_port), HOUSING_CHAIN_LOG_FORMAT="json",
               HOUSING_CHAIN_API_PORT=str(free_port()))
    os.environ.update(HOUSING_CHAIN_DATA=str(data), TEMPORAL_ADDRESS=address)
    settings = Settings().model_copy(update={"data": data, "temporal_address": address,
                                             "ui_port": ui_port})
    stack = StackProcess(data, env)
    load: Load | None = None
    figures: dict[str, Any] = {
        "benchmark": "sustained_load",
        "stack": "subprocess: `python -m interfaces.cli.main up` (worker + projection thread + event "
                 "store in that process; the Temporal dev server its `temporal` child)",
        "config": {"cases": args.cases, "rate_per_s": args.rate, "seconds": args.seconds,
                   "max_in_flight": args.max_in_flight, "import_parallel": args.parallel,
                   "step_timeout_s": args.step_timeout, "seed": args.seed,
                   "warmup_s": args.warmup},
    }
    try:
        print("stack: subprocess `python -m interfaces.cli.main up` (worker memory = its RSS, "
              "server memory = its `temporal` child's RSS)", flush=True)
        startup = stack.start()
        print(f"stack up on {address} in {startup:.1f} s (worker pid {stack.worker_pid}, dev "
              f"server pid {stack.server_pid}); data {data}", flush=True)
        setup: dict[str, Any] = {"stack_start_s": round(startup, 2),
                                 "rss_after_start_mib": {
                                     "worker": _mib(rss_kib(stack.worker_pid)),
                                     "server": _mib(rss_kib(stack.server_pid))}}
        figures["setup"] = setup
        if args.bare_only:  # the comparison alone, on the same kind of stack, no cases of ours
            figures["bare"] = await bare_load(args, address, args.cases)
            figures["machine"] = machine()
            print(f"\nwritten: {write_results('sustained_load-bare', figures)}")
            return

        # -- set-up: 10,000 open cases in the training stage, through the CLI import
        policy = settings.policy()
        today = today_in(policy)
        path = data / "sustained-cases.jsonl"
        began = time.perf_counter()
        count = write_import(path, args.cases, today)
        setup["file_lines"] = count
        setup["write_file_s"] = round(time.perf_counter() - began, 2)
        print(f"set-up: importing {count} lines ({args.cases} cases × register_apartment, apply, "
              f"start_assessment, decide, offer, landlord_decision, move_in; --parallel "
              f"{args.parallel})…", flush=True)
        meter = CpuMeter()
        import_began_utc, import_offset = datetime.now(UTC), log_size(stack.log_path)
        progress = asyncio.create_task(import_progress(stack, args.cases))
        importing = asyncio.create_task(run_process(
            [*CLI, "import", str(path), "--json", "--parallel", str(args.parallel)], env))
        try:
            await asyncio.wait({progress, importing}, return_when=asyncio.FIRST_COMPLETED)
            if progress.done():
                progress.result()  # the stack died: raise (the import is killed below)
            code, out, err, import_s = importing.result()
        finally:
            progress.cancel()
            importing.cancel()
            await asyncio.wait({progress, importing})
        setup["import_cpu"] = meter.stop()
        setup["worker_log_during_import"] = log_counts(
            stack.log_path, import_offset, log_size(stack.log_path), import_began_utc)
        stack.check()
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise RuntimeError(f"the import gave no JSON report (exit {code}):\n{err[-3000:]}") from None
        refused = result.get("refused", [])
        refused_cases = {r["case"] for r in refused if r.get("case")}
        cases = [case_name(k) for k in range(args.cases) if case_name(k) not in refused_cases]
        setup.update({"import_s": round(import_s, 1), "import_lines_per_s": round(count / import_s, 1),
                      "accepted": result.get("accepted"), "refused": len(refused),
                      "refused_examples": refused[:10], "import_exit_code": code,
                      "cases_open": len(cases)})
        print(f"set-up: import took {import_s:.1f} s ({count / import_s:.0f} lines/s); accepted "
              f"{result.get('accepted')}, refused {len(refused)}", flush=True)
        if refused:
            for r in refused[:10]:
                print(f"  WARNING refused line {r['line']} ({r['case']}): {r['reason']}", file=sys.stderr)
            print(f"  WARNING: {len(refused)} lines refused; the load goes to the {len(cases)} "
                  "cases whose lines were all accepted", file=sys.stderr)
        if not cases:
            raise RuntimeError("no case was set up")

        client = await connect(settings)
        chain = CountingChainClient(client, settings, policy)
        check_rng = random.Random(args.seed + 1)
        stages = Counter()
        for case in check_rng.sample(cases, min(20, len(cases))):
            stages[(await chain.status(case)).stage] += 1
        setup["sample_stages"] = dict(stages)
        print(f"set-up: stages of 20 random cases: {dict(stages)}", flush=True)
        settled = await settle(stack)
        setup["settle_s"] = round(settled, 1)
        print(f"set-up: the stack was quiet after {settled:.0f} s", flush=True)
        setup["projection_after_import"] = projection_lag(settings)

        # -- warm-up: the same load, not counted
        warm = {"worker": _mib(rss_kib(stack.worker_pid)),
                "server": _mib(rss_kib(stack.server_pid))}
        figures["warmup"] = {"seconds": args.warmup, "rss_before_mib": warm}
        if args.warmup > 0:
            print(f"warm-up: {args.rate:g} steps/s for {args.warmup:g} s, not counted (worker "
                  f"{warm['worker']} MiB, server {warm['server']} MiB before)…", flush=True)
            warming = Load(chain, cases, args, run_id=f"warm-{int(time.time())}",
                           seconds=args.warmup)
            await warming.run()
            figures["warmup"].update(
                steps=len(warming.records),
                ok=sum(1 for r in warming.records if r.get("ok")),
                errors=dict(warming.errors),
                latency_from_send=latency_summary(
                    [r["latency"] for r in warming.records if "latency" in r]))
        chain.retried.clear()

        # -- load
        load = Load(chain, cases, args, run_id=f"{int(time.time())}")
        sampler = Sampler(stack, load)
        print(f"load: record_visit to random cases of {len(cases)}, {args.rate:g} steps/s for "
              f"{args.seconds:g} s, open loop, at most {args.max_in_flight} in flight…", flush=True)
        load_began_utc, load_offset = datetime.now(UTC), log_size(stack.log_path)
        load_began = time.perf_counter()
        sampler.start()
        profiler = start_profile(args, stack.worker_pid)
        sampling = asyncio.create_task(sampler.every(SAMPLE_EVERY))
        driving = asyncio.create_task(load.run())
        try:
            await asyncio.wait({sampling, driving}, return_when=asyncio.FIRST_COMPLETED)
            if sampling.done():
                sampling.result()  # the stack died: raise
            driving.result()
        finally:
            sampling.cancel()
            driving.cancel()
        load_wall = time.perf_counter() - load_began
        stack.check()
        sampler.print(sampler.sample("end"))
        cpu = sampler.cpu()
        figures["projection_after_load"] = projection_lag(settings)
        await asyncio.sleep(0.5)  # the last log lines of the load reach the file
        logged = log_counts(stack.log_path, load_offset, log_size(stack.log_path), load_began_utc,
                            window=SAMPLE_EVERY)
        figures.update(report(args, load, sampler, cpu, load_wall, setup, logged))
        figures["worker_log_during_load"] = logged
        if profiler is not None:
            figures["worker_profile"] = finish_profile(profiler)
        ok_steps = max(1, len([r for r in load.records if r.get("ok")]))
        worker_ticks = sampler.ticks()["worker"] - sampler.cpu_began["worker"]
        ours_cpu_ms = worker_ticks / CpuMeter.HZ * 1000 / ok_steps
        if args.sweep:
            figures["sweep"] = await sweep(args, chain, cases)
        if not args.no_bare:
            figures["bare"] = await bare_load(args, address, len(cases))
            figures["bare"]["ours_worker_cpu_ms_per_step"] = round(ours_cpu_ms, 2)
            figures["bare"]["ours_p99_ms"] = figures["load"]["latency_from_schedule"].get("p99_ms")
        figures["machine"] = machine()
        print_tail(figures)
        path_out = write_results("sustained_load", figures)
        print(f"\nwritten: {path_out}")
    finally:
        if load is not None:
            await load.cancel()
        stack.stop()
        if os.environ.get("BENCH_KEEP_DATA"):
            print(f"data kept in {data}", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


PROFILE_OUT = Path(__file__).parent / "results" / "sustained_load-worker.collapsed"


def start_profile(args: argparse.Namespace, pid: int | None) -> subprocess.Popen | None:
    """py-spy sampling the worker process (`up`: worker, projection thread, API) through the
    load, without pausing it (`--nonblocking`), every thread, idle frames left out."""
    if not args.profile or pid is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    PROFILE_OUT.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(int(args.seconds)),
         "--rate", "200", "--nonblocking", "--format", "raw", "--output", str(PROFILE_OUT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish_profile(profiler: subprocess.Popen, top: int = 25) -> dict[str, Any]:
    """The collapsed stacks summed up: where the worker's samples are, by the function at
    the top of the stack (self) and by every function on it (inclusive), in % of samples."""
    try:
        _, err = profiler.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        profiler.kill()
        _, err = profiler.communicate()
    if not PROFILE_OUT.exists():
        return {"error": (err or "")[-500:]}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    total = 0
    for line in PROFILE_OUT.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        by_thread[frames[0]] += n
        own[frames[-1]] += n
        for frame in set(frames[1:]):
            inclusive[frame] += n
    pct = lambda c: [{"frame": f, "pct": round(100 * k / total, 1)}  # noqa: E731
                     for f, k in c.most_common(top)]
    summary = {"samples": total, "output": str(PROFILE_OUT), "threads": pct(by_thread),
               "self": pct(own), "inclusive": pct(inclusive)}
    print(f"\nworker profile ({total} samples, {PROFILE_OUT.name}); top self:")
    for row in summary["self"][:15]:
        print(f"  {row['pct']:>5}%  {row['frame']}")
    print("top inclusive:")
    for row in summary["inclusive"][:25]:
        print(f"  {row['pct']:>5}%  {row['frame']}")
    return summary


def report(args, load: Load, sampler: Sampler, cpu, load_wall, setup, logged) -> dict[str, Any]:
    records = load.records
    ok = [r for r in records if r.get("ok")]
    done = [r for r in records if "done" in r]
    last_done = max((r["done"] for r in done), default=load.issue_end)
    issued_rate = len(records) / load.issue_end if load.issue_end else 0.0
    ok_rate = len(ok) / last_done if last_done else 0.0
    service = latency_summary([r["latency"] for r in ok])
    from_schedule = latency_summary([r["latency_from_schedule"] for r in ok])
    lag = [r["sent"] - r["scheduled"] for r in records]
    # per 30 s, by when the steps were answered: what the stack actually got through
    notes = (logged or {}).get("per_window", {}).get("due item", {})
    rss_at = {int(r["label"][:-1]) // int(SAMPLE_EVERY): r for r in sampler.samples
              if r["label"].endswith("s") and r["label"][:-1].isdigit()}
    end_sample = sampler.samples[-1]
    windows = []
    k = 0
    while k * SAMPLE_EVERY < max(args.seconds, last_done):
        lo, hi = k * SAMPLE_EVERY, (k + 1) * SAMPLE_EVERY
        inside = [r for r in ok if lo <= r["done"] < hi]
        span = min(hi, max(args.seconds, last_done)) - lo
        x = latency_summary([r["latency"] for r in inside])
        sent = [r["sent"] - r["scheduled"] for r in records if lo <= r["sent"] < hi]
        rss = rss_at.get(k + 1, end_sample)
        windows.append({"from_s": int(lo), "to_s": round(lo + span), "steps_ok": len(inside),
                        "steps_per_s": round(len(inside) / span, 2) if span > 0 else None,
                        "p50_ms": x.get("p50_ms"), "p99_ms": x.get("p99_ms"),
                        "send_lag_max_ms": round(max(sent) * 1000) if sent else None,
                        "cap_hits": sum(1 for t in load.cap_hit_times if lo <= t < hi),
                        "system_notes": notes.get(k, 0),
                        "worker_rss_mib": rss.get("worker_rss_mib"),
                        "server_rss_mib": rss.get("server_rss_mib")})
        k += 1
    worker_mem = memory_summary(sampler.samples, "worker_rss_mib")
    server_mem = memory_summary(sampler.samples, "server_rss_mib")
    errors = sum(load.errors.values())

    s, f = service, from_schedule
    print(f"\nsustained load: {len(load.cases)} open cases, record_visit at "
          f"{args.rate:g} steps/s for {args.seconds:g} s ({load_wall:.0f} s with the drain)")
    print(f"  {'steps/s achieved (accepted)':34} {ok_rate:8.2f}   target rate {args.rate:g}; "
          f"issued {issued_rate:.2f}/s ({len(records)} steps)")
    rates = [w["steps_per_s"] for w in windows if w["steps_per_s"] is not None]
    if rates:
        print(f"  {'  per 30-s window, min / max':34} {min(rates):8.2f} / {max(rates):.2f}")
    print(f"  {'':34} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'mean':>8}  (ms)")
    for label, x in (("latency, from send", s), ("latency, from scheduled time", f)):
        if x["n"]:
            print(f"  {label:34} {x['p50_ms']:8.1f} {x['p90_ms']:8.1f} {x['p99_ms']:8.1f} "
                  f"{x['max_ms']:8.1f} {x['mean_ms']:8.1f}")
    print(f"  {'errors':34} {errors:8d}   (target: none)"
          + "".join(f"\n      {n} × {k}: {load.error_examples[k][:160]}"
                    for k, n in load.errors.most_common()))
    retried = sum(load.chain.retried.values())
    print(f"  {'transient errors retried by client':34} {retried:8d}"
          + (f"   ({dict(load.chain.retried)})" if retried else ""))
    print(f"  {'in-flight cap hits':34} {load.cap_hits:8d}   (cap {args.max_in_flight}; most in "
          f"flight {load.max_inflight}; send lag behind schedule p99 "
          f"{percentile(lag, 99) * 1000:.1f} ms, max {max(lag) * 1000:.1f} ms)")
    print(f"  {'memory (RSS, MiB)':34} {'start':>8} {'end':>8} {'max':>8} {'growth':>8}  (target ≤ "
          f"{MEMORY_TARGET_PCT:g} %)")
    for label, m in (("worker (housing-chain up)", worker_mem), ("server (temporal dev server)", server_mem)):
        if m["start_mib"] is not None:
            verdict = "met" if m["target_met"] else "NOT met"
            print(f"  {label:34} {m['start_mib']:8.1f} {m['end_mib']:8.1f} {m['max_mib']:8.1f} "
                  f"{m['growth_pct']:7.1f}%  {verdict}")
    for label, m in (("worker", worker_mem), ("server", server_mem)):
        if m.get("second_half_trend_mib_per_min") is not None:
            trend = m["second_half_trend_mib_per_min"]
            print(f"      {label} trend over the second half of the samples: {trend:+.2f} MiB/min")
    print(f"  per 30 s (by answer time)   {'done/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'lag max':>8} "
          f"{'cap hits':>8} {'notes':>6} {'worker':>7} {'server':>7}")
    for w in windows:
        cells = [f"{w['steps_per_s']:7.1f}", *(f"{w[c]:8.0f}" if w[c] is not None else f"{'-':>8}"
                                              for c in ("p50_ms", "p99_ms", "send_lag_max_ms")),
                 f"{w['cap_hits']:8d}", f"{w['system_notes']:6d}",
                 *(f"{w[c]:7.1f}" if w[c] is not None else f"{'-':>7}"
                   for c in ("worker_rss_mib", "server_rss_mib"))]
        print(f"    {str(w['from_s']) + '–' + str(w['to_s']) + ' s':<26}" + " ".join(cells))
    print(f"  CPU during the load, % of one core (2 cores = 200 %): worker {cpu['worker_pct_of_core']}, "
          f"server {cpu['server_pct_of_core']}, this client {cpu['bench_client_pct_of_core']}, "
          f"other processes {cpu['others_pct_of_core']}")
    imp = setup
    print(f"  set-up: stack start {imp['stack_start_s']:.1f} s; import of {imp['file_lines']} lines "
          f"({args.cases} cases) {imp['import_s']:.1f} s = {imp['import_lines_per_s']:.0f} lines/s, "
          f"accepted {imp['accepted']}, refused {imp['refused']}; open cases {imp['cases_open']}; "
          f"sample stages {imp['sample_stages']}")
    logged = imp.get("worker_log_during_import") or {}
    ev, span = logged.get("events", {}), logged.get("first_last_s", {})
    for name, label in (("stock step accepted", "apartments registered"),
                        ("step accepted", "case steps applied"), ("due item", "system notes raised")):
        if name in span:
            print(f"          {label}: {ev[name]} from {span[name][0]:.0f} s to {span[name][1]:.0f} s "
                  f"into the import")
    cpu_imp = imp.get("import_cpu", {})
    if cpu_imp.get("busy_pct_of_core") is not None:
        print(f"          machine busy during the import {cpu_imp['busy_pct_of_core']} % of one core")
    return {
        "load": {
            "steps_issued": len(records),
            "steps_accepted": len(ok),
            "issued_per_s": round(issued_rate, 2),
            "accepted_per_s": round(ok_rate, 2),
            "target_rate_per_s": args.rate,
            "wall_s_with_drain": round(load_wall, 1),
            "latency_from_send": service,
            "latency_from_schedule": from_schedule,
            "send_lag_behind_schedule_ms": {"p99": round(percentile(lag, 99) * 1000, 1),
                                            "max": round(max(lag) * 1000, 1)} if lag else None,
            "errors": errors,
            "errors_by_kind": dict(load.errors),
            "error_examples": load.error_examples,
            "transient_retries": dict(load.chain.retried),
            "in_flight_cap": args.max_in_flight,
            "in_flight_cap_hits": load.cap_hits,
            "max_in_flight": load.max_inflight,
            "windows": windows,
        },
        "memory": {"target_growth_pct_max": MEMORY_TARGET_PCT, "worker": worker_mem,
                   "server": server_mem, "samples": sampler.samples},
        "cpu_during_load": cpu,
    }


async def sweep(args: argparse.Namespace, chain: Any, cases: list[str]) -> dict[str, Any]:
    """Our load at each `--sweep` rate for `--sweep-seconds`: p99 per rate, and the highest
    rate whose p99 stays under 1 s (the first rate above it ends the sweep)."""
    rows = []
    for rate in args.sweep:
        at = argparse.Namespace(**{**vars(args), "rate": rate})
        run = Load(chain, cases, at, run_id=f"sweep-{rate:g}-{int(time.time())}",
                   seconds=args.sweep_seconds)
        await run.run()
        summary = latency_summary([r["latency_from_schedule"] for r in run.records if "done" in r])
        ok = sum(1 for r in run.records if r.get("ok"))
        rows.append({"rate_per_s": rate, "steps": len(run.records), "ok": ok,
                     "errors": sum(run.errors.values()), **summary})
        print(f"  sweep {rate:g}/s: p50 {summary.get('p50_ms')} ms, p99 {summary.get('p99_ms')} "
              f"ms (from schedule), {ok}/{len(run.records)} ok", flush=True)
        if (summary.get("p99_ms") or 1e9) >= 1000 or ok < len(run.records):
            break
    good = [r["rate_per_s"] for r in rows if (r.get("p99_ms") or 1e9) < 1000 and r["ok"] == r["steps"]]
    return {"seconds_each": args.sweep_seconds, "rows": rows,
            "highest_rate_p99_under_1s": max(good) if good else None}


async def bare_load(args: argparse.Namespace, address: str, workflows: int) -> dict[str, Any]:
    """Bare Temporal updates (bench/bare.py: one local activity, no store, no codec) at the
    same rate for the same seconds, on as many open workflows, in this run against the same
    dev server; the bare worker is a process of its own so that its CPU per step compares."""
    import bare

    queue = "bare-sustained"
    cached = Settings().workflow_cache  # the bare worker caches as many workflows as ours
    worker = subprocess.Popen([sys.executable, str(Path(bare.__file__)), "worker", "--address",
                               address, "--task-queue", queue, "--max-cached", str(cached)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert worker.stdout is not None
        if "bare worker started" not in worker.stdout.readline():
            raise RuntimeError("the bare worker did not start")
        client = await bare.connect(address)
        ids = [f"bare-sustained-{k}" for k in range(workflows)]
        print(f"bare: starting {workflows} bare workflows…", flush=True)
        await bare.start_workflows(client, ids, task_queue=queue, parallel=args.parallel)
        rng = random.Random(args.seed)
        loop = asyncio.get_running_loop()
        # a start is answered before the worker has run the workflow's first task: wait
        # until those are done (an update answers quickly again), as ours waited for a
        # quiet stack, then warm up as ours did; only then measure
        drained = time.perf_counter()
        quick, probes = 0, 0
        while quick < 5 and time.perf_counter() - drained < 900:
            probe, probes = loop.time(), probes + 1
            await bare.round_trip(client, rng.choice(ids), -probes, task_queue=queue)
            quick = quick + 1 if loop.time() - probe < 0.2 else 0
        print(f"bare: first tasks done after {time.perf_counter() - drained:.0f} s", flush=True)

        async def drive(seconds: float, first: int, rate: float = args.rate
                        ) -> tuple[list[float], Counter[str]]:
            """Open loop; update ids from `first` on, so no two phases share one."""
            latencies: list[float] = []
            errors: Counter[str] = Counter()
            inflight: set[asyncio.Task] = set()
            gate = asyncio.Semaphore(args.max_in_flight)

            async def one(n: int, scheduled: float) -> None:
                async with gate:
                    try:
                        await bare.round_trip(client, rng.choice(ids), first + n,
                                              task_queue=queue)
                        latencies.append(loop.time() - scheduled)
                    except Exception as exc:  # noqa: BLE001 - every failure is a figure here
                        errors[type(exc).__name__] += 1

            t0 = loop.time()
            for n in range(round(rate * seconds)):
                delay = t0 + n / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(n, t0 + n / rate))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            if inflight:
                await asyncio.wait(set(inflight))
            return latencies, errors

        if args.warmup > 0:
            print(f"bare: warm-up {args.rate:g} updates/s for {args.warmup:g} s…", flush=True)
            await drive(args.warmup, 10_000_000)
        print(f"bare: {args.rate:g} updates/s for {args.seconds:g} s…", flush=True)
        before = (proc_stat(worker.pid) or (0, 0, 0, 0))[3]
        latencies, errors = await drive(args.seconds, 0)
        ticks = (proc_stat(worker.pid) or (0, 0, 0, 0))[3] - before
        summary = latency_summary(latencies)
        cpu_ms = ticks / CpuMeter.HZ * 1000 / max(1, len(latencies))
        print(f"bare: p50 {summary.get('p50_ms')} ms, p99 {summary.get('p99_ms')} ms, worker CPU "
              f"{cpu_ms:.2f} ms per update, errors {dict(errors) or 0}", flush=True)
        swept = None
        if args.bare_sweep:  # as `sweep` does for ours: the first rate that fails ends it
            rows = []
            for k, rate in enumerate(args.bare_sweep, start=1):
                sweep_latencies, sweep_errors = await drive(args.sweep_seconds, 20_000_000 * k,
                                                            rate)
                sent = round(rate * args.sweep_seconds)
                row = {"rate_per_s": rate, "steps": sent, "ok": len(sweep_latencies),
                       "errors": sum(sweep_errors.values()), **latency_summary(sweep_latencies)}
                rows.append(row)
                print(f"  bare sweep {rate:g}/s: p50 {row.get('p50_ms')} ms, p99 "
                      f"{row.get('p99_ms')} ms (from schedule), {row['ok']}/{sent} ok", flush=True)
                if (row.get("p99_ms") or 1e9) >= 1000 or row["ok"] < sent:
                    break
            good = [r["rate_per_s"] for r in rows
                    if (r.get("p99_ms") or 1e9) < 1000 and r["ok"] == r["steps"]]
            swept = {"seconds_each": args.sweep_seconds, "rows": rows,
                     "highest_rate_p99_under_1s": max(good) if good else None}
        await bare.finish_all(client, ids, parallel=args.parallel)
        return {"workflows": workflows, "rate_per_s": args.rate, "seconds": args.seconds,
                "warmup_s": args.warmup, "first_tasks_drained_s": round(time.perf_counter() - drained, 1),
                "updates": len(latencies), "errors": dict(errors), "latency_from_schedule": summary,
                "bare_worker_cpu_ms_per_step": round(cpu_ms, 2), "sweep": swept}
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()


def print_tail(figures: dict[str, Any]) -> None:
    bare_figures = figures.get("bare")
    if bare_figures:
        print(f"  ours vs bare at {bare_figures['rate_per_s']:g}/s on {bare_figures['workflows']} "
              f"open workflows: p99 {bare_figures.get('ours_p99_ms')} ms vs "
              f"{bare_figures['latency_from_schedule'].get('p99_ms')} ms; worker CPU per step "
              f"{bare_figures['ours_worker_cpu_ms_per_step']} ms vs "
              f"{bare_figures['bare_worker_cpu_ms_per_step']} ms")
    if figures.get("sweep"):
        print(f"  highest steady rate with p99 < 1 s: "
              f"{figures['sweep']['highest_rate_p99_under_1s']}/s")
    if (bare_figures or {}).get("sweep"):
        print(f"  bare Temporal's highest steady rate with p99 < 1 s: "
              f"{bare_figures['sweep']['highest_rate_p99_under_1s']}/s")
    warm = figures.get("warmup") or {}
    before = warm.get("rss_before_mib") or {}
    if warm.get("steps"):
        print(f"  warm-up: {warm['steps']} steps in {warm['seconds']:g} s, {warm['ok']} accepted, "
              f"errors {warm['errors'] or 0}; p50 {warm['latency_from_send'].get('p50_ms')} ms, "
              f"p99 {warm['latency_from_send'].get('p99_ms')} ms")
    for key, label in (("worker", "worker"), ("server", "server")):
        end = figures.get("memory", {}).get(key, {}).get("end_mib")
        if before.get(key) and end:
            growth = (end - before[key]) / before[key] * 100
            figures["memory"][key]["growth_from_before_warmup_pct"] = round(growth, 1)
            print(f"  {label} RSS before the warm-up {before[key]:.1f} MiB → end {end:.1f} MiB "
                  f"({growth:+.1f} %, warm-up included)")
    logged = figures.get("worker_log_during_load") or {}
    events = logged.get("events", {})
    print(f"  worker log during the load: {events.get('step accepted', 0)} steps accepted, "
          f"{events.get('due item', 0)} system notes, levels "
          f"{logged.get('levels', {})}")
    pauses = logged.get("gc_pauses", [])
    print(f"  garbage-collector pauses of 100 ms or more during the load: {len(pauses)}"
          + (f", longest {max(p['ms'] for p in pauses)} ms" if pauses else ""))
    for line in logged.get("warning_examples", []) + logged.get("not_json_examples", []):
        print(f"      {line[:200]}")
    for key in ("projection_after_import", "projection_after_load"):
        p = (figures.get("setup", {}) if key == "projection_after_import" else figures).get(key)
        if p:
            print(f"  read models {key.split('_', 2)[2].replace('_', ' ')}: event {p['position']} of "
                  f"{p['head']} ({p['behind']} behind)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="open cases to set up")
    parser.add_argument("--rate", type=float, default=20.0, help="steps per second")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the load phase")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=16, help="as `import --parallel`")
    parser.add_argument("--step-timeout", type=float, default=60.0,
                        help="a step without an answer after this long counts as an error")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds of the same load before the measured one, not counted")
    parser.add_argument("--sweep", type=lambda t: [float(r) for r in t.split(",")], default=None,
                        help="after the load, these rates (e.g. 20,40,80) for --sweep-seconds "
                             "each: the highest whose p99 stays under 1 s")
    parser.add_argument("--bare-sweep", type=lambda t: [float(r) for r in t.split(",")],
                        default=None, help="the same for the bare workflows, after their load "
                        "(e.g. 20,40,60,80)")
    parser.add_argument("--sweep-seconds", type=float, default=60.0)
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the worker process through the load; the top frames are "
                             "printed and written to the results")
    parser.add_argument("--bare-only", action="store_true",
                        help="only the bare comparison (on an idle `up`, --cases workflows)")
    parser.add_argument("--no-bare", action="store_true",
                        help="skip the bare-Temporal comparison at the same rate")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.cases <= 0 or args.max_in_flight <= 0:
        parser.error("--rate, --seconds, --cases and --max-in-flight must be above zero")
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
