"""Scale-out by configuration only: two API processes and two workers on one PostgreSQL
database and one Temporal server. A worker killed with SIGKILL mid-run loses no step and
doubles none: every step sent through either API is accepted exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from application.tokens import LocalIssuer
from runtime.binaries import temporal_cli
from tests.backends import PG, create_database, drop_database, skip_or_fail_without_postgres
from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[1]
CASES = 12
SESSIONS = (1, 2, 3, 4)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def wait(self, name: str, predicate, timeout: float) -> None:
        """Wait for the process to be ready; if it is not, say why in its own words."""
        try:
            wait_until(predicate, timeout, name)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (exit code {self.procs[name].poll()}):\n"
                                 f"{self.log(name)[-3000:]}") from None

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def api_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_two_apis_and_two_workers_accept_every_step_exactly_once_when_a_worker_is_killed(tmp_path):
    skip_or_fail_without_postgres()
    dbname = create_database()
    procs = Processes(tmp_path)
    temporal_port = free_port()
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "SQLITE_"))}
    env.update(PG, PERSISTENCE_MODULE="eventsourcing.postgres", POSTGRES_DBNAME=dbname,
               TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}", HOUSING_CHAIN_DATA=str(data),
               HOUSING_CHAIN_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    later = dict(env, CREATE_TABLE="n")  # tables are created once, by the first worker
    try:
        procs.start("temporal", [temporal_cli(), "server", "start-dev", "--headless",
                                 "--db-filename", str(tmp_path / "temporal.sqlite"),
                                 "--ip", "127.0.0.1", "--port", str(temporal_port),
                                 "--log-level", "warn"], env)
        procs.start("worker-1", [sys.executable, "worker.py"], env)
        procs.wait("worker-1", lambda: "worker started" in procs.log("worker-1"), 90)
        procs.start("worker-2", [sys.executable, "worker.py"], later)
        # chosen once the dev server has bound its own internal ports, which it picks free
        # as it starts: a port chosen before could be one of them
        api_ports = (free_port(), free_port())
        for i, port in enumerate(api_ports, start=1):
            procs.start(f"api-{i}", [sys.executable, "-m", "interfaces.cli.main", "serve",
                                     "--port", str(port)], later)
        procs.wait("worker-2", lambda: "worker started" in procs.log("worker-2"), 90)
        for i, port in enumerate(api_ports, start=1):
            procs.wait(f"api-{i}", lambda port=port: api_ready(port), 60)

        issuer = LocalIssuer(data)
        admin = issuer.mint("ops.admin", ["admin"])
        caseworker = issuer.mint("handlaggare.lind", ["caseworker"], ["Farsta"])
        results = asyncio.run(drive(api_ports, admin, caseworker, kill=procs.procs["worker-1"]))
        assert procs.procs["worker-1"].poll() == -signal.SIGKILL

        refused = [r for r in results if r[2] != 200]
        assert not refused, refused[:5]
        asyncio.run(check_histories(api_ports[0], admin))
    finally:
        procs.stop_all()
        drop_database(dbname)


def plan(case: str) -> list[dict]:
    return [
        {"type": "apply", "client": {"id": f"kl-{case}", "target_group": "elderly",
                                     "district": "Farsta"}, "on": "2026-11-02"},
        {"type": "start_assessment", "on": "2026-11-03"},
        {"type": "decide", "outcome": "granted", "programme": "training_apartment",
         "on": "2026-11-04"},
        *({"type": "course_session", "session": s, "on": "2026-11-05"} for s in SESSIONS),
    ]


async def drive(ports: tuple[int, int], admin: str, caseworker: str,
                kill: subprocess.Popen) -> list[tuple[str, str, int]]:
    """Every case's steps in order, cases in parallel, each step through one of the two APIs
    in turn; the first worker is killed when a third of the steps are in."""
    total = CASES * len(plan("x"))
    sent = 0
    results: list[tuple[str, str, int]] = []
    async with httpx.AsyncClient(timeout=120) as http:
        async def run_case(n: int) -> None:
            nonlocal sent
            case = f"so-{n:03d}"
            for i, step in enumerate(plan(case)):
                port = ports[(n + i) % 2]
                token = admin if step["type"] == "apply" else caseworker
                key = f"{case}:{i}"
                response = await http.post(
                    f"http://127.0.0.1:{port}/api/cases/{case}/steps", json=step,
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
                results.append((case, key, response.status_code))
                sent += 1
                if sent == total // 3 and kill.poll() is None:
                    kill.send_signal(signal.SIGKILL)

        await asyncio.gather(*(run_case(n) for n in range(CASES)))
    return results


async def check_histories(port: int, admin: str) -> None:
    expected = ["Applied", "AssessmentStarted", "Granted"] + ["CourseSessionAttended"] * len(SESSIONS)
    async with httpx.AsyncClient(timeout=60,
                                 headers={"Authorization": f"Bearer {admin}"}) as http:
        for n in range(CASES):
            case = f"so-{n:03d}"
            rows = (await http.get(f"http://127.0.0.1:{port}/api/cases/{case}/history")).json()["rows"]
            steps = [r for r in rows if r["event"] in set(expected)]
            assert [r["event"] for r in steps] == expected, case
            commands = Counter(r["command_id"] for r in steps)
            assert all(count == 1 for count in commands.values()), (case, commands)
            assert {r["actor"] for r in steps[1:]} == {"handlaggare.lind"}
