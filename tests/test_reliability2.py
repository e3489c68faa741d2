"""Reliability, round two: command ids per target, duplicate JSON keys, repairing a case's
workflow, importer outages."""

from __future__ import annotations

from pathlib import Path

import pytest

from application.errors import Refused
from application.store import ProcessedCommand, _UnitOfWork
from domain.case import case_uuid
from domain.stages import Stage
from tests.builders import POLICY, TODAY, Chain


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    return Chain(tmp_path / "events.sqlite")


def case_events(chain: Chain, case: str) -> list[str]:
    return [row["event"] for row in chain.app.history(case)]


# --- 1. a command id belongs to its case ------------------------------------------------------


def test_the_same_command_id_on_another_case_is_another_command(chain):
    chain.drive("c-a", Stage.WAITING)
    chain.drive("c-b", Stage.WAITING)
    [on_a] = chain.run(chain.step("course_session", "c-a", session=2, id="X"))
    [on_b] = chain.run(chain.step("course_session", "c-b", session=2, id="X"))
    assert on_a.accepted and not on_a.duplicate
    assert on_b.accepted and not on_b.duplicate
    assert chain.app.get_case("c-b").course_sessions == {2}
    assert case_events(chain, "c-b").count("CourseSessionAttended") == 1
    assert chain.app.processed("X", case_uuid("c-b")) == on_b


def test_the_same_command_id_on_the_same_case_is_still_recorded_once(chain):
    chain.drive("c-a", Stage.WAITING)
    step = chain.step("course_session", "c-a", session=2, id="X")
    [first] = chain.run(step)
    [again] = chain.run(step)
    assert again == first.model_copy(update={"duplicate": True})
    assert case_events(chain, "c-a").count("CourseSessionAttended") == 1


def legacy_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Markers as they were saved before ids belonged to their case: keyed by the id alone."""

    def mark(self, command_id, target, result, step_type=None, sent=None):  # noqa: ANN001
        self.markers.append(ProcessedCommand(command_id=command_id, result=result.model_dump()))
        self.seen_commands[f"{target.hex}:{command_id}"] = result

    monkeypatch.setattr(_UnitOfWork, "mark", mark)


def test_a_legacy_marker_still_answers_a_retry_on_its_own_case(chain, monkeypatch):
    chain.drive("c-a", Stage.WAITING)
    step = chain.step("course_session", "c-a", session=2, id="X")
    with monkeypatch.context() as patch:
        legacy_marks(patch)
        [first] = chain.run(step)
    stored = chain.stored()
    [retry] = chain.run(step)
    assert retry == first.model_copy(update={"duplicate": True})
    assert chain.stored() == stored


def test_a_legacy_marker_of_another_case_does_not_swallow_the_command(chain, monkeypatch):
    chain.drive("c-a", Stage.WAITING)
    chain.drive("c-b", Stage.WAITING)
    with monkeypatch.context() as patch:
        legacy_marks(patch)
        chain.accept(chain.step("course_session", "c-a", session=2, id="X"))
    [on_b] = chain.run(chain.step("course_session", "c-b", session=2, id="X"))
    assert on_b.accepted and not on_b.duplicate
    assert chain.app.get_case("c-b").course_sessions == {2}


def test_the_import_looks_up_an_earlier_result_on_the_lines_own_case(chain):
    chain.drive("c-a", Stage.WAITING)
    chain.drive("c-b", Stage.WAITING)
    step_a = chain.step("course_session", "c-a", session=2, id="X")
    chain.accept(step_a)
    step_b = step_a.model_copy(update={"case": "c-b"})
    assert chain.app.processed_step(step_a).accepted
    assert chain.app.processed_step(step_b) is None
    assert chain.app.execute(step_b, today=TODAY, policy=POLICY).accepted


def test_the_same_batch_id_on_another_case_is_another_batch(chain):
    chain.drive("c-a", Stage.WAITING)
    chain.drive("c-b", Stage.WAITING)
    chain.run(chain.step("course_session", "c-a", session=1, id="X"), batch_id="X+1")
    [on_b] = chain.run(chain.step("course_session", "c-b", session=1, id="X"), batch_id="X+1")
    assert on_b.accepted and not on_b.duplicate
    assert chain.app.get_case("c-b").course_sessions == {1}


# --- 2. duplicate keys in an import line -------------------------------------------------------


def test_an_import_line_naming_a_key_twice_is_refused_naming_the_key():
    from datetime import date

    from application.importer import parse

    lines = [
        '{"type": "course_session", "case": "c-1", "session": 1, "session": 2}',
        '{"type": "apply", "case": "c-2", "client": {"id": "k-2", "district": "A", "district": "B"}}',
        '{"type": "course_session", "case": "c-3", "session": 1}',
    ]
    parsed, refused = parse(lines, source="f.jsonl", actor="import", today=date(2026, 1, 5))
    assert [(r.line, r.reason) for r in refused] == [
        (1, "duplicate key 'session': each field may appear once"),
        (2, "duplicate key 'district': each field may appear once"),
    ]
    assert [line.number for line in parsed] == [3]


# --- 3. repair: a terminated workflow starts again from the event store ------------------------


async def granted(h, case: str) -> None:
    await h.apply(case)
    await h.step(type="start_assessment", case=case)
    await h.step(type="decide", case=case, outcome="granted", programme="training_apartment")


@pytest.mark.slow
async def test_a_step_after_the_workflow_was_terminated_repairs_it_and_is_recorded_once(harness):
    h = harness
    h.chain.recorded = h.store.recorded
    await granted(h, "r-1")
    await h.step(type="register_apartment", apartment="apt-r1", landlord="Framtiden", rooms=2)
    await h.handle("r-1").terminate("by hand, outside the engine")
    offer = await h.step(type="offer", case="r-1", apartment="apt-r1")
    assert offer.accepted and offer.stage == "offered"
    status = await h.chain.status("r-1")
    assert status.stage == "offered" and "landlord_decision" in status.allowed
    await h.step(type="landlord_decision", case="r-1", approved=True)
    assert h.events("r-1") == ["Applied", "AssessmentStarted", "Granted", "Offered",
                               "LandlordApproved"]


@pytest.mark.slow
async def test_repair_starts_a_terminated_case_again_at_its_stage_and_a_retry_is_a_duplicate(harness):
    h = harness
    await granted(h, "r-2")
    decide_id = h.store.recorded("r-2")[1][-1]
    await h.handle("r-2").terminate("by hand")
    with pytest.raises(Refused, match="does not exist"):  # no store at hand: not repaired
        await h.step(type="start_assessment", case="r-2")
    assert await h.chain.repair("r-2", *h.store.recorded("r-2")) == "restarted"
    assert await h.chain.repair("r-2", *h.store.recorded("r-2")) == "running"
    assert (await h.chain.status("r-2")).stage == "waiting"
    again = await h.step(type="decide", case="r-2", outcome="granted",
                         programme="training_apartment", id=decide_id)
    assert again.duplicate
    assert h.events("r-2").count("Granted") == 1


async def test_only_an_admin_may_repair_a_case_and_the_refusal_is_recorded(tmp_path):
    from application.use_cases import UseCases
    from config.settings import Settings
    from domain.access import Forbidden, Principal

    cases = UseCases(Settings(data=tmp_path))
    who = Principal(subject="cw-anna", roles=frozenset({"caseworker"}), units=frozenset({"A"}))
    with pytest.raises(Forbidden, match="may not repair case workflows: needs the role admin"):
        await cases.repair(who, "c-1")
    [record] = cases.audit.for_case("c-1")
    assert (record.subject, record.action, record.outcome) == ("cw-anna", "case.repair", "denied")


# --- 4. `up` supervises the dev server ---------------------------------------------------------


@pytest.mark.slow
def test_up_starts_cleanly_after_the_previous_up_was_killed(tmp_path):
    import os
    import signal

    from tests.stack import Stack

    first = Stack.on_free_ports(tmp_path / "data")
    first.start()
    assert (tmp_path / "data" / "temporal-server.pid").exists()
    os.kill(first.process.pid, signal.SIGKILL)  # the `up` process only, not its group
    first.process.wait()
    second = Stack(data=first.data, env=first.env)
    second.start()
    try:
        ok = second.run("apply", "k-1", "--client", "p-k1", "--target-group", "young_adults",
                        "--district", "Farsta")
        assert ok.returncode == 0, ok.stderr
    finally:
        second.stop()


@pytest.mark.slow
def test_a_second_up_on_the_same_data_directory_is_refused_and_leaves_the_running_stack_alone(
        tmp_path):
    """The second `up` once took the live stack's dev server for one an earlier `up` had left,
    SIGTERMed it and only then refused on the API port: the first `up` ran on without Temporal.
    `up` holds the data directory (a lock) before it cleans up or checks a port."""
    import os
    import signal

    import httpx

    from runtime.stack import command_line, listening, split_address
    from tests.stack import Stack

    first = Stack.on_free_ports(tmp_path / "data")
    first.start()
    try:
        server = int((first.data / "temporal-server.pid").read_text())
        second = first.run("up", timeout=60)
        said = " ".join((second.stdout + second.stderr).split())
        assert second.returncode == 1, said
        assert (f"another `housing-chain up` (pid {first.process.pid}) is running on this data "
                f"directory ({first.data}); stop it first") in said
        assert "Traceback" not in said
        assert "stopping the Temporal dev server" not in said
        os.kill(server, 0)  # still there, still the first stack's dev server
        assert "start-dev" in command_line(server)
        assert int((first.data / "temporal-server.pid").read_text()) == server
        assert listening(*split_address(first.env["TEMPORAL_ADDRESS"]))
        api = f"http://127.0.0.1:{first.env['HOUSING_CHAIN_API_PORT']}"
        assert httpx.get(f"{api}/healthz", timeout=5).status_code == 200
        assert first.process.poll() is None
    finally:
        first.stop()
    assert first.process.returncode == 0, "".join(first.output[-30:])
    assert not (first.data / "temporal-server.pid").exists()
    try:
        os.kill(server, 0)
    except ProcessLookupError:
        pass
    else:
        os.kill(server, signal.SIGKILL)
        raise AssertionError("the first stack's dev server outlived its `up`")


def test_a_dev_server_left_by_a_killed_up_is_stopped_by_the_next(tmp_path):
    import subprocess
    import sys

    from config.settings import Settings
    from runtime.stack import EmbeddedStack

    stack = EmbeddedStack(Settings(data=tmp_path))
    db = str(tmp_path / "temporal.sqlite")
    # stands in for the dev server: the same command-line words, a process that lingers
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "start-dev",
                             "--db-filename", db])
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stack.pid_file.write_text(f"{left.pid}\n")
        stack.stop_stale_server()
        assert left.wait(timeout=10) == -15
        assert not stack.pid_file.exists()
        stack.pid_file.write_text(f"{stray.pid}\n")  # a pid reused by another program
        stack.stop_stale_server()
        assert stray.poll() is None
    finally:
        left.kill()
        stray.kill()


def test_up_refuses_when_the_temporal_ui_port_is_taken(tmp_path):
    import socket

    from tests.stack import Stack

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = Stack.on_free_ports(tmp_path / "data", {"HOUSING_CHAIN_UI_PORT": str(port)})
        up = stack.run("up", timeout=60)
    assert up.returncode == 1
    assert (f"the Temporal UI port {port} is taken by another program: stop it or set "
            "HOUSING_CHAIN_UI_PORT") in " ".join(up.stderr.split())


def test_up_refuses_when_the_api_port_is_taken_before_starting_the_dev_server(tmp_path):
    import socket

    from tests.stack import Stack

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = Stack.on_free_ports(tmp_path / "data", {"HOUSING_CHAIN_API_PORT": str(port)})
        up = stack.run("up", timeout=60)
    assert up.returncode == 1
    assert (f"the API port 127.0.0.1:{port} is taken by another program: stop it, or set "
            "HOUSING_CHAIN_API_PORT to a free port") in " ".join(up.stderr.split())
    assert "temporal dev server starting" not in up.stderr + up.stdout
    assert not (tmp_path / "data" / "temporal.sqlite").exists()


def test_the_api_port_is_held_while_the_dev_server_starts(tmp_path):
    """The dev server binds internal ports of its own choosing: `up` holds the API's port
    from before it starts the dev server, so none of them can be it (a restart after a
    crash once failed that way)."""
    import signal
    import socket
    import subprocess
    import time

    from tests.stack import CLI, Stack

    stack = Stack.on_free_ports(tmp_path / "data")
    port = int(stack.env["HOUSING_CHAIN_API_PORT"])
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        up = subprocess.Popen([*CLI, "up"], env=stack.env, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "temporal dev server starting" not in log.read_text():
            assert up.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)


def test_the_api_socket_up_reserves_answers_without_waiting_for_a_delayed_ack(tmp_path):
    """asyncio turns Nagle's algorithm off only on connections of a socket created as TCP:
    on the socket `up` reserved with protocol 0, each response waited ~40 ms for the
    client's delayed ACK. The connections the API accepts have TCP_NODELAY set."""
    import asyncio
    import socket

    from config.settings import Settings
    from runtime.stack import EmbeddedStack
    from tests.stack import free_port

    settings = Settings(data=tmp_path, api_port=free_port())
    sock = EmbeddedStack(settings).reserve_api_port()

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection("127.0.0.1", settings.api_port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0


# --- 5. listening beyond this machine needs saying so ------------------------------------------


@pytest.mark.parametrize("address", [("TEMPORAL_ADDRESS", "0.0.0.0:7233"),
                                     ("TEMPORAL_ADDRESS", "192.168.1.20:7233"),
                                     ("HOUSING_CHAIN_API_HOST", "0.0.0.0")])
def test_up_refuses_a_non_loopback_address_unless_public_bind_is_allowed(tmp_path, address):
    from tests.stack import Stack

    stack = Stack.on_free_ports(tmp_path / "data", dict([address]))
    up = stack.run("up", timeout=60)
    assert up.returncode == 1
    said = " ".join(up.stderr.split())
    assert "refusing to listen on a non-loopback address" in said
    assert "HOUSING_CHAIN_ALLOW_PUBLIC_BIND=1" in said
    assert not (tmp_path / "data" / "temporal-server.pid").exists()  # nothing was started


def test_public_bind_allowed_is_a_warning_not_a_refusal():
    from config.settings import Settings
    from runtime.stack import check_bind

    settings = Settings(temporal_address="0.0.0.0:7233", allow_public_bind=True)
    assert check_bind(settings) == ["TEMPORAL_ADDRESS 0.0.0.0"]
    assert check_bind(Settings(temporal_address="localhost:7233", api_host="::1")) == []


# --- 6. an outage during an import is not a refusal -------------------------------------------


class FlakyChain:
    """Stands in for the gateway (outside our system): away for some calls or some cases."""

    def __init__(self, away_calls: int = 0, away_cases: tuple[str, ...] = (),
                 error: Exception | None = None) -> None:
        self.away_calls = away_calls
        self.away_cases = away_cases
        self.error = error
        self.sent: list[tuple[str, str]] = []

    def answer(self, step):
        from application.errors import Unavailable
        from domain.views import LineResult

        self.sent.append((step.case, step.id))
        if self.away_calls > 0:
            self.away_calls -= 1
            raise Unavailable("no Temporal server at 127.0.0.1:7233")
        if step.case in self.away_cases:
            raise self.error or Unavailable("no Temporal server at 127.0.0.1:7233")
        return LineResult(accepted=True, command_id=step.id, stage="waiting")

    async def send(self, step, recorded_by=None):
        return self.answer(step)

    async def send_batch(self, case, steps, batch_id, recorded_by=None):
        results = []
        for step in steps:
            results.append(self.answer(step))
        return results

    async def send_stock(self, step):
        raise AssertionError("no stock lines here")


def import_lines(*cases: str):
    from datetime import date

    from application.importer import parse

    raw = [f'{{"type": "course_session", "case": "{case}", "session": {n % 4 + 1}}}'
           for n, case in enumerate(cases)]
    lines, refused = parse(raw, source="f.jsonl", actor="import", today=date(2026, 1, 5))
    assert not refused
    return lines


async def test_an_outage_during_an_import_is_retried_and_never_reported_as_a_refusal():
    from application.importer import ImportReport, run_import

    chain = FlakyChain(away_calls=2)
    report = await run_import(chain, import_lines("c-1", "c-2"), ImportReport(), parallel=1,
                              outage_for=30)
    assert (report.accepted, report.refused, report.outage, report.not_sent) == (2, [], None, 0)


async def test_when_the_stack_stays_away_the_import_stops_and_counts_the_lines_not_sent():
    from application.importer import ImportReport, run_import

    chain = FlakyChain(away_cases=("c-1",))
    lines = import_lines("c-1", "c-2", "c-1", "c-2", "c-1")
    report = await run_import(chain, lines, ImportReport(), outage_for=1)
    assert report.refused == [] and report.stopped_early
    assert report.accepted == 2 and report.not_sent == 3
    assert "the stack did not answer for 1 s" in report.outage
    assert "the import stopped with 3 lines not sent" in report.outage
    assert report.as_json()["not_sent"] == 3


async def test_a_case_s_later_lines_never_run_after_one_failed_for_a_reason_not_the_domains():
    from application.importer import ImportReport, run_import

    chain = FlakyChain(away_cases=("c-1",), error=RuntimeError("the worker crashed"))
    lines = import_lines("c-1", "c-1", "c-2")
    report = await run_import(chain, lines, ImportReport(), parallel=1, strict=True)
    assert report.refused == [] and report.accepted == 0
    assert [case for case, _ in chain.sent] == ["c-1"]  # neither c-1's next line nor another
    assert report.not_sent == 3 and "line 1 failed" in report.outage


@pytest.mark.slow
async def test_an_apply_sent_again_after_a_terminate_does_not_leave_the_case_unrepairable(harness):
    h = harness
    h.chain.recorded = h.store.recorded
    await granted(h, "r-3")
    await h.handle("r-3").terminate("by hand")
    with pytest.raises(Refused, match="already exists"):
        await h.apply("r-3")  # starts an empty run, refused by the store
    await h.step(type="register_apartment", apartment="apt-r3", landlord="Framtiden", rooms=2)
    offer = await h.step(type="offer", case="r-3", apartment="apt-r3")
    assert offer.accepted and offer.stage == "offered"
    assert h.events("r-3") == ["Applied", "AssessmentStarted", "Granted", "Offered"]


async def test_a_connection_broken_mid_call_is_retried_never_reported_as_a_refusal():
    """The core's `Unknown: transport error` (a server killed with the call in flight) once
    came back as 'case X: transport error' on every line of the batch (tests/test_crash_up)."""
    from temporalio.service import RPCError, RPCStatusCode

    from application.importer import ImportReport, run_import

    class BrokenOnce(FlakyChain):
        def answer(self, step):
            if not self.sent:
                self.sent.append((step.case, step.id))
                raise RPCError("transport error", RPCStatusCode.UNKNOWN, b"")
            return super().answer(step)

    report = await run_import(BrokenOnce(), import_lines("c-1", "c-2"), ImportReport(),
                              outage_for=30)
    assert (report.accepted, report.refused, report.outage) == (2, [], None)


# --- 7. `up` reports the dev server's own reason; `repair` and steps after a terminate ----------


def test_up_fails_at_once_with_the_dev_servers_own_reason_when_it_exits_during_start_up(tmp_path):
    import time

    from tests.stack import Stack

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "temporal.sqlite").write_text("not a database, whatever its name says\n" * 20)
    stack = Stack.on_free_ports(data)
    began = time.monotonic()
    up = stack.run("up", timeout=60)
    assert up.returncode == 1
    said = " ".join(up.stderr.split())
    assert "the Temporal dev server exited during start-up (exit code 1)" in said
    assert "file is not a database" in said  # the dev server's own words, from its log
    assert "Traceback" not in up.stderr
    assert time.monotonic() - began < 30  # not the 60 s wait for a server that never comes
    assert not (data / "temporal-server.pid").exists()


@pytest.fixture(scope="module")
def stack_up(tmp_path_factory):
    from tests.stack import Stack

    stack = Stack.on_free_ports(tmp_path_factory.mktemp("repair") / "data")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def terminate(stack, case: str) -> None:
    """By hand, outside the engine: the `temporal` CLI an operator would use."""
    import subprocess

    from runtime.binaries import temporal_cli

    done = subprocess.run([temporal_cli(), "workflow", "terminate", "--workflow-id",
                           f"case-{case}", "--reason", "by hand", "--address",
                           stack.env["TEMPORAL_ADDRESS"]], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def granted_by_cli(stack, case: str) -> None:
    for args in (("apply", case, "--client", f"p-{case}", "--target-group", "young_adults",
                  "--district", "Farsta"),
                 ("start-assessment", case),
                 ("decide", case, "--outcome", "granted", "--programme", "housing_first")):
        done = stack.run(*args)
        assert done.returncode == 0, done.stderr


def cli_json(stack, *args: str) -> dict:
    import json

    done = stack.run(*args, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


@pytest.mark.slow
def test_the_repair_command_starts_a_terminated_case_again_and_then_finds_it_running(stack_up):
    granted_by_cli(stack_up, "rc-1")
    terminate(stack_up, "rc-1")
    assert cli_json(stack_up, "repair", "rc-1") == {"case": "rc-1", "stage": "waiting",
                                                    "workflow": "restarted"}
    assert cli_json(stack_up, "repair", "rc-1")["workflow"] == "running"
    said = " ".join(stack_up.run("repair", "rc-1").stdout.split())
    assert said == "case rc-1 (waiting): the workflow is running: nothing to repair"
    status = cli_json(stack_up, "status", "rc-1")
    assert status["stage"] == "waiting"


@pytest.mark.slow
def test_record_visit_after_the_workflow_was_terminated_is_recorded_once(stack_up):
    granted_by_cli(stack_up, "rv-1")
    for args in (("register-apartment", "apt-rv1", "--landlord", "Framtiden", "--rooms", "2"),
                 ("offer", "rv-1", "--apartment", "apt-rv1"),
                 ("landlord-decision", "rv-1", "--approved"),
                 ("move-in", "rv-1", "--apartment", "apt-rv1")):
        done = stack_up.run(*args)
        assert done.returncode == 0, done.stderr
    terminate(stack_up, "rv-1")
    visit = cli_json(stack_up, "record-visit", "rv-1", "--kind", "follow_up",
                     "--id", "visit-rv-1")
    assert visit["accepted"] and not visit["duplicate"]
    again = cli_json(stack_up, "record-visit", "rv-1", "--kind", "follow_up",
                     "--id", "visit-rv-1")
    assert again["accepted"] and again["duplicate"]
    events = [row["event"] for row in cli_json(stack_up, "history", "rv-1")]
    assert events.count("VisitRecorded") == 1, events


async def test_a_step_that_gets_no_answer_is_on_record_as_failed_once(tmp_path):
    """Temporal is down: the step allowed by the rules gets no answer, and the request is on
    record all the same (one record, `failed`, naming the error), before the error is said."""
    from application.errors import UseCaseError
    from application.use_cases import UseCases
    from config.settings import Settings
    from domain.access import Principal
    from tests.stack import free_port

    cases = UseCases(Settings(data=tmp_path, temporal_address=f"127.0.0.1:{free_port()}"))
    admin = Principal(subject="admin.ops", roles=frozenset({"admin"}))
    applied = cases.parse_step({"type": "apply", "case": "f-1", "client": {
        "id": "p-f1", "target_group": "young_adults", "district": "Farsta"}}, admin)
    [result] = cases.store.run([applied], today=cases.today(), policy=cases.policy)
    assert result.accepted, result
    who = Principal(subject="cw-anna", roles=frozenset({"caseworker"}),
                    units=frozenset({"Farsta"}))
    with pytest.raises(UseCaseError):
        await cases.submit_step(who, {"type": "start_assessment", "case": "f-1"})
    [record] = cases.audit.for_case("f-1")
    assert (record.subject, record.outcome, record.params["type"]) == (
        "cw-anna", "failed", "start_assessment")
    assert record.params["error"]
