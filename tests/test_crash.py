"""Crash tests with real processes: the Temporal dev server, the worker (`python worker.py`) and
the importer (`housing-chain import`) each in its own process, one of them SIGKILLed in the
middle of importing the demo municipality, restarted, and the result compared with an
uninterrupted reference run of the same file: every case's history (event, effective date,
actor, command id, details; not the recorded time) and every apartment's final state must be
identical, with no step lost and none recorded twice.

The policy sets `catch_up_delay_seconds` to an hour so that no timer raises a system note
(an overdue visit, an unexecuted decision) while a run is in progress: those depend on how
long a case has been quiet, which differs between a crashed run and the reference.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from application.importer import Line, parse, read_lines
from runtime import demo
from runtime.binaries import temporal_cli
from tests.stack import CLI, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CASES = 155  # demo.write(cases=155) gives 5,118 lines: 5,046 case steps, 72 stock steps
FILE_NAME = "crash.jsonl"  # command ids derive from the file name: the same in every run
POLICY = {"catch_up_delay_seconds": 3600}
KILL_AT = 0.3  # the crash comes once this share of the reference's domain events is stored
STARTUP_TIMEOUT = 120.0
IMPORT_TIMEOUT = 300.0
STORE_ENV_VARIABLES = ("PERSISTENCE_MODULE", "SQLITE_DBNAME", "SQLITE_LOCK_TIMEOUT", "CREATE_TABLE")


# --- processes -------------------------------------------------------------------------------

def listening(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def kill_group(pid: int) -> None:
    """SIGKILL a process started in its own session, with everything in its group."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"--- {path.name}: (none)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return f"--- {path.name} (last {min(lines, len(text))} of {len(text)} lines)\n" + "\n".join(
        line[:400] for line in text[-lines:])


def wait_until(what: str, predicate: Callable[[], Any], timeout: float,
               watch: Callable[[], str | None] = lambda: None, every: float = 0.1) -> Any:
    """Poll `predicate` until truthy; fail when `watch` names a reason or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        problem = watch()
        if problem:
            pytest.fail(f"while waiting for {what}: {problem}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


@dataclass
class Run:
    """One run's temp directory, free ports, processes and logs."""

    dir: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)
    groups: set[int] = field(default_factory=set)  # process groups found, not started, here
    logs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    imports: dict[int, int] = field(default_factory=dict)  # importer pid -> its number
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(exist_ok=True)
        policy = self.dir / "policy.json"
        policy.write_text(json.dumps(POLICY), encoding="utf-8")
        env = {k: v for k, v in os.environ.items()
               if k not in STORE_ENV_VARIABLES and not k.startswith("POSTGRES_")}
        env.update({
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}",
            "HOUSING_CHAIN_DATA": str(self.data),
            "HOUSING_CHAIN_UI_PORT": str(self.ui_port),
            "HOUSING_CHAIN_API_PORT": str(self.api_port),
            "HOUSING_CHAIN_POLICY_FILE": str(policy),  # the importer's policy goes to the cases
            "HOUSING_CHAIN_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        })
        self.env = env

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def events_db(self) -> Path:
        return self.data / "events.sqlite"

    def note(self, message: str) -> None:
        line = f"[{self.dir.name} +{time.monotonic() - self.started:6.1f}s] {message}"
        self.notes.append(line)
        print(line, flush=True)

    def _log(self, name: str) -> Path:
        path = self.dir / name
        if path not in self.logs:
            self.logs.append(path)
        return path

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        """A process in a session of its own (killed with its group), output to `log`."""
        with open(self._log(log), "ab") as out:
            proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.processes.append(proc)
        return proc

    # the Temporal dev server, as `housing-chain up` starts it

    def start_server(self) -> subprocess.Popen:
        server = self._spawn([
            temporal_cli(), "server", "start-dev",
            "--db-filename", str(self.data / "temporal.sqlite"),
            "--ip", "127.0.0.1", "--port", str(self.port), "--ui-port", str(self.ui_port),
            "--namespace", "default", "--log-level", "warn",
        ], "temporal-server.log")
        wait_until(f"the Temporal server on port {self.port}", lambda: listening(self.port),
                   STARTUP_TIMEOUT, watch=lambda: server.poll() is not None
                   and f"the server exited with {server.returncode}")
        self.note(f"Temporal server up (pid {server.pid}, port {self.port})")
        return server

    def start_worker(self) -> subprocess.Popen:
        n = sum(1 for p in self.logs if p.name.startswith("worker-")) + 1
        log = self._log(f"worker-{n}.log")
        worker = self._spawn([sys.executable, "worker.py"], log.name)
        wait_until(f"worker {n} to start", lambda: "worker started" in log.read_text(errors="replace"),
                   STARTUP_TIMEOUT, watch=lambda: worker.poll() is not None
                   and f"worker {n} exited with {worker.returncode}")
        self.note(f"worker {n} started (pid {worker.pid})")
        return worker

    def start_up(self) -> tuple[subprocess.Popen, int]:
        """`housing-chain up`; returns it and the pid of the dev server it started."""
        n = sum(1 for p in self.logs if p.name.startswith("up-")) + 1
        log = self._log(f"up-{n}.log")
        up = self._spawn([*CLI, "up"], log.name)
        wait_until(f"housing-chain up ({n}) to be ready",
                   lambda: "housing-chain ready" in log.read_text(errors="replace"),
                   STARTUP_TIMEOUT, watch=lambda: up.poll() is not None
                   and f"`up` exited with {up.returncode}")
        server = self.server_pid()
        assert server is not None, "no dev server process found for this data directory"
        self.groups.add(server)  # `up` starts the server in a session of its own
        self.note(f"housing-chain up {n} ready (pid {up.pid}, its dev server pid {server})")
        return up, server

    def is_our_server(self, pid: int) -> bool:
        """A live dev server on this run's temporal.sqlite (a path only this run uses)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        marker = str(self.data / "temporal.sqlite").encode()
        return b"start-dev" in cmdline and marker in cmdline and alive(pid)

    def server_pid(self) -> int | None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self.is_our_server(int(entry.name)):
                return int(entry.name)
        return None

    def kill_server(self, pid: int) -> None:
        """SIGKILL a dev server this run found (not started) and its process group."""
        if self.is_our_server(pid):
            kill_group(pid)

    def start_import(self, path: Path) -> subprocess.Popen:
        """`housing-chain import FILE --json`: the report to import-N.out, logs to import-N.err."""
        n = sum(1 for p in self.logs if p.name.startswith("import-") and p.suffix == ".err") + 1
        with open(self._log(f"import-{n}.out"), "wb") as out, \
                open(self._log(f"import-{n}.err"), "ab") as err:
            proc = subprocess.Popen([*CLI, "import", str(path), "--json"], env=self.env, cwd=ROOT,
                                    stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.processes.append(proc)
        self.imports[proc.pid] = n
        self.note(f"import {n} started (pid {proc.pid})")
        return proc

    def finish_import(self, proc: subprocess.Popen, timeout: float = IMPORT_TIMEOUT,
                      tend: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """Wait for the import (calling `tend` meanwhile); its JSON report."""
        n = self.imports[proc.pid]

        def done() -> bool:
            tend()
            return proc.poll() is not None

        wait_until(f"import {n} to finish", done, timeout, every=0.5)
        out = (self.dir / f"import-{n}.out").read_text(encoding="utf-8").splitlines()
        report = report_in(out)
        self.note(f"import {n} exited with {proc.returncode}: {json.dumps(report)[:300]}")
        if len(out) > 1:
            self.note(f"import {n} printed {len(out) - 1} more lines on stdout besides its report, "
                      f"e.g. {out[0][:200]!r}")
        assert report is not None, f"import {n} printed no report (exit {proc.returncode})"
        return report

    def domain_events(self) -> int | None:
        """Domain events stored so far (read-only; None while the store is not readable)."""
        if not self.events_db.exists():
            return 0
        try:
            with closing(sqlite3.connect(f"file:{self.events_db}?mode=ro", uri=True,
                                         timeout=2)) as db:
                return db.execute(
                    "SELECT count(*) FROM stored_events WHERE topic LIKE 'domain.%'").fetchone()[0]
        except sqlite3.OperationalError:
            return None

    def workflow_ids(self) -> str:
        """The ids of some workflows the server knows (the `temporal` CLI's JSON answer)."""
        try:
            return subprocess.run(
                [temporal_cli(), "workflow", "list", "--address", f"127.0.0.1:{self.port}",
                 "--limit", "5", "--output", "json"],
                capture_output=True, text=True, timeout=30, cwd=ROOT).stdout
        except subprocess.TimeoutExpired:
            return ""

    def retried_steps(self) -> int:
        """Steps the worker logs found already recorded (a retried activity or update)."""
        return sum(log.read_text(errors="replace").count('"duplicate": true')
                   for log in self.logs if log.name.startswith(("worker-", "up-")))

    def diagnostics(self) -> str:
        parts = [f"=== diagnostics of {self.dir}", *self.notes]
        parts += [tail(log) for log in self.logs]
        return "\n".join(parts)

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                kill_group(proc.pid)
        for pid in self.groups:
            self.kill_server(pid)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass


def report_in(stdout: list[str]) -> dict[str, Any] | None:
    """The import's JSON report: its last stdout line that is a JSON object.

    The Temporal SDK's core logs its own warnings (`gRPC call ... retried N times`) to stdout
    while the server is away, ahead of the report (see test_import_json_output_...).
    """
    for line in reversed(stdout):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


@contextmanager
def running(directory: Path) -> Iterator[Run]:
    run = Run(directory)
    try:
        yield run
    except BaseException:
        print(run.diagnostics(), flush=True)
        raise
    finally:
        run.close()


# --- what a run recorded ---------------------------------------------------------------------

@dataclass
class Recorded:
    histories: dict[str, list[tuple] | None]  # case -> (event, on, actor, command_id, details)
    apartments: dict[str, dict[str, Any] | None]  # apartment -> final state and its events
    domain_events: int


def demo_file(directory: Path) -> tuple[Path, list[Line]]:
    path = directory / "in" / FILE_NAME
    count = demo.write(path, cases=CASES)
    lines, refused = parse(read_lines(path), source=path.stem, actor="import", today=date.today())
    assert not refused and len(lines) == count
    return path, lines


def cases_of(lines: list[Line]) -> list[str]:
    return sorted({line.case for line in lines if line.case})


def apartments_of(lines: list[Line]) -> list[str]:
    return sorted({line.step.apartment for line in lines if line.step.type == "register_apartment"})


def recorded(run: Run, lines: list[Line]) -> Recorded:
    from application.store import HousingChain
    from domain.apartment import apartment_uuid
    from domain.errors import DomainError

    app = HousingChain(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": str(run.events_db), "SQLITE_LOCK_TIMEOUT": "30"})
    meta = ("originator_id", "originator_version", "timestamp", "originator_topic")
    try:
        histories: dict[str, list[tuple] | None] = {}
        for case in cases_of(lines):
            try:
                histories[case] = [(r["event"], r["on"], r["actor"], r["command_id"], r["details"])
                                   for r in app.history(case)]
            except DomainError:
                histories[case] = None
        apartments: dict[str, dict[str, Any] | None] = {}
        for apartment in apartments_of(lines):
            try:
                state = vars(app.get_apartment(apartment))
            except DomainError:
                apartments[apartment] = None
                continue
            apartments[apartment] = {
                **{k: v for k, v in state.items()
                   if k not in ("_created_on", "_modified_on", "_pending_events")},
                "events": [(type(e).__name__, {k: v for k, v in e.__dict__.items() if k not in meta})
                           for e in app.events.get(apartment_uuid(apartment))],
            }
    finally:
        app.close()
    return Recorded(histories, apartments,
                    wait_until("the count of domain events", run.domain_events, 60))


def assert_nothing_lost_or_doubled(rec: Recorded, lines: list[Line]) -> None:
    """Every case line is exactly one event on its case; no event comes from anywhere else."""
    expected: dict[str, Counter] = {}
    for line in lines:
        if line.case:
            expected.setdefault(line.case, Counter())[line.step.id] += 1
    problems = []
    for case, wanted in expected.items():
        history = rec.histories[case]
        if history is None:
            problems.append(f"{case}: no case at all (lost apply)")
            continue
        got = Counter(row[3] for row in history)
        lost = sorted(set(wanted) - set(got))
        doubled = sorted(c for c, n in got.items() if n > 1)
        foreign = sorted(str(c) for c in set(got) - set(wanted))
        if lost or doubled or foreign:
            problems.append(f"{case}: lost {lost[:5]}, doubled {doubled[:5]}, "
                            f"not from the file {foreign[:5]}")
    assert not problems, f"{len(problems)} cases differ from the file:\n" + "\n".join(problems[:10])


def assert_same_as_reference(rec: Recorded, ref: Recorded) -> None:
    differ = [case for case in ref.histories if rec.histories.get(case) != ref.histories[case]]
    details = []
    for case in differ[:5]:
        mine, theirs = rec.histories.get(case) or [], ref.histories[case] or []
        first = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                     min(len(mine), len(theirs)))
        details.append(f"{case}: {len(mine)} events here, {len(theirs)} in the reference; first "
                       f"difference at {first}: here {mine[first:first + 2]!r} reference "
                       f"{theirs[first:first + 2]!r}")
    assert not differ, f"{len(differ)} case histories differ from the reference:\n" + "\n".join(details)
    apartments = [a for a in ref.apartments if rec.apartments.get(a) != ref.apartments[a]]
    assert not apartments, "apartments differ from the reference: " + "; ".join(
        f"{a}: here {rec.apartments.get(a)!r} reference {ref.apartments[a]!r}"
        for a in apartments[:3])
    assert rec.domain_events == ref.domain_events


def assert_all_accepted(report: dict[str, Any], lines: list[Line]) -> None:
    assert report["refused"] == [], f"{len(report['refused'])} refused: {report['refused'][:5]}"
    assert report["accepted"] == len(lines)


def crash_when_part_stored(run: Run, importer: subprocess.Popen, ref: Recorded) -> int:
    """Wait until some, not all, of the import's domain events are stored; how many."""
    threshold = max(50, int(ref.domain_events * KILL_AT))
    seen = [0]

    def enough() -> bool:
        seen[0] = run.domain_events() or seen[0]
        return seen[0] >= threshold

    wait_until(f"{threshold} domain events stored", enough, IMPORT_TIMEOUT,
               watch=lambda: importer.poll() is not None
               and f"the import exited ({importer.returncode}) before the crash", every=0.05)
    return seen[0]


# --- the reference: the same file imported without a crash ---------------------------------

@dataclass
class Reference:
    lines: list[Line]
    recorded: Recorded
    seconds: float


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    with running(tmp_path_factory.mktemp("crash") / "reference") as run:
        path, lines = demo_file(run.dir)
        run.note(f"{path.name}: {len(lines)} lines, {len(cases_of(lines))} cases, "
                 f"{len(apartments_of(lines))} apartments")
        run.start_server()
        run.start_worker()
        began = time.monotonic()
        report = run.finish_import(run.start_import(path))
        seconds = time.monotonic() - began
        assert_all_accepted(report, lines)
        rec = recorded(run, lines)
        assert_nothing_lost_or_doubled(rec, lines)
        run.note(f"reference: {rec.domain_events} domain events in {seconds:.1f} s")
        return Reference(lines, rec, seconds)


# --- the tests -------------------------------------------------------------------------------

def test_killing_the_worker_mid_import_loses_and_doubles_nothing(reference, tmp_path):
    with running(tmp_path / "worker-killed") as run:
        path, lines = demo_file(run.dir)
        assert [line.step.id for line in lines] == [line.step.id for line in reference.lines]
        run.start_server()
        worker = run.start_worker()
        importer = run.start_import(path)

        stored = crash_when_part_stored(run, importer, reference.recorded)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        run.note(f"worker SIGKILLed with {stored} of {reference.recorded.domain_events} "
                 "domain events stored")
        assert importer.poll() is None, "the import finished before the worker was killed"
        assert stored < reference.recorded.domain_events
        time.sleep(1.5)
        run.start_worker()

        report = run.finish_import(importer)
        assert importer.returncode == 0
        assert_all_accepted(report, lines)
        run.note(f"steps the worker found already recorded: {run.retried_steps()}")
        rec = recorded(run, lines)
        assert_nothing_lost_or_doubled(rec, lines)
        assert_same_as_reference(rec, reference.recorded)


def test_killing_the_temporal_server_mid_import_resumes_with_the_same_result(reference, tmp_path):
    with running(tmp_path / "server-killed") as run:
        path, lines = demo_file(run.dir)
        server = run.start_server()
        workers = [run.start_worker()]
        importer = run.start_import(path)

        stored = crash_when_part_stored(run, importer, reference.recorded)
        kill_group(server.pid)
        server.wait(timeout=30)
        run.note(f"Temporal server SIGKILLed with {stored} of "
                 f"{reference.recorded.domain_events} domain events stored")
        assert importer.poll() is None, "the import finished before the server was killed"
        wait_until(f"port {run.port} to close", lambda: not listening(run.port), 30)
        time.sleep(2)
        run.start_server()  # the same --db-filename and port

        # The worker is kept running and should reconnect by itself. Should it die of the
        # outage anyway, it is restarted (as a process supervisor would) and that is noted;
        # the test's subject is that no step is lost or doubled and that the importer rides
        # the outage out.
        def tend() -> None:
            if workers[-1].poll() is not None:
                assert len(workers) < 5, "the worker keeps dying"
                run.note(f"worker {len(workers)} died (exit {workers[-1].returncode}) after "
                         "the server outage: starting another")
                workers.append(run.start_worker())

        report = run.finish_import(importer, tend=tend)
        tend()
        run.note(f"worker restarts needed: {len(workers) - 1}")
        assert importer.returncode == 0
        assert_all_accepted(report, lines)
        run.note(f"steps the worker found already recorded: {run.retried_steps()}")
        rec = recorded(run, lines)
        assert_nothing_lost_or_doubled(rec, lines)
        assert_same_as_reference(rec, reference.recorded)


def test_killing_the_embedded_stack_mid_import_and_importing_again_gives_the_same_result(
        reference, tmp_path):
    with running(tmp_path / "stack-killed") as run:
        path, lines = demo_file(run.dir)
        up, server = run.start_up()
        importer = run.start_import(path)

        stored = crash_when_part_stored(run, importer, reference.recorded)
        # everything dies at once: `up` (worker and projection are in it), the dev server it
        # started in a session of its own, and the importer talking to them
        kill_group(up.pid)
        run.kill_server(server)
        kill_group(importer.pid)
        up.wait(timeout=30)
        importer.wait(timeout=30)
        wait_until("the dev server to die", lambda: not alive(server), 30)
        run.note(f"`up` and its dev server SIGKILLed with {stored} of "
                 f"{reference.recorded.domain_events} domain events stored")
        assert stored < reference.recorded.domain_events
        wait_until(f"port {run.port} to close", lambda: not listening(run.port), 30)

        run.start_up()  # the same data directory and ports
        again = run.start_import(path)
        report = run.finish_import(again)
        assert again.returncode == 0
        assert_all_accepted(report, lines)  # lines recorded before the crash count as accepted
        run.note(f"steps the worker found already recorded: {run.retried_steps()}")
        rec = recorded(run, lines)
        assert_nothing_lost_or_doubled(rec, lines)
        assert_same_as_reference(rec, reference.recorded)


class NotOnlyTheReport(AssertionError):
    """`import --json` printed more than its report on stdout."""


def test_import_json_output_is_only_the_report_through_a_server_outage(tmp_path):
    with running(tmp_path / "json-outage") as run:
        path = run.dir / "in" / "outage.jsonl"
        demo.write(path, cases=3)
        lines, _ = parse(read_lines(path), source=path.stem, actor="import", today=date.today())
        server = run.start_server()
        importer = run.start_import(path)  # no worker yet: the first updates wait for one
        wait_until("the import to send its first update",
                   lambda: "workflowId" in run.workflow_ids(), STARTUP_TIMEOUT)
        kill_group(server.pid)
        server.wait(timeout=30)
        run.note("Temporal server SIGKILLed while the import waits")
        time.sleep(8)  # an outage long enough for the core's retries to give up and log
        run.start_server()
        run.start_worker()
        report = run.finish_import(importer)
        assert_all_accepted(report, lines)
        stdout = (run.dir / "import-1.out").read_text(encoding="utf-8")
        if stdout.splitlines() != [json.dumps(report)]:
            raise NotOnlyTheReport(f"{len(stdout.splitlines())} lines on stdout:\n{stdout[:1500]}")
