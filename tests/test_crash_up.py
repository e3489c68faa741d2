"""`housing-chain up` SIGKILLed at three points of importing the demo municipality — the `up`
process alone (its dev server follows by PDEATHSIG, the importer rides the outage out or
stops counting the lines not sent), and separately its whole process tree with the importer —
then started again and the file imported again: every case's history (without the recorded
times) and every report are those of an uninterrupted import.

The helpers (processes, what a run recorded, the comparisons) are tests/test_crash.py's; the
file is smaller (40 cases) so that both variants with three crashes each stay within a few
minutes on two cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from application.importer import Line, parse, read_lines
from runtime import demo
from tests.test_crash import (
    FILE_NAME,
    Recorded,
    Run,
    alive,
    assert_all_accepted,
    assert_nothing_lost_or_doubled,
    assert_same_as_reference,
    cases_of,
    kill_group,
    listening,
    recorded,
    running,
    wait_until,
)

pytestmark = pytest.mark.slow

CASES = 40
POINTS = (0.15, 0.45, 0.8)  # the crashes: once this share of the reference's events is stored
IMPORT_TIMEOUT = 240.0


def demo_file(directory: Path) -> tuple[Path, list[Line]]:
    path = directory / "in" / FILE_NAME
    count = demo.write(path, cases=CASES)
    lines, refused = parse(read_lines(path), source=path.stem, actor="import", today=date.today())
    assert not refused and len(lines) == count
    return path, lines


def reports(run: Run) -> dict[str, Any]:
    """Every report a supervisor reads, from this run's read models (caught up first)."""
    import asyncio

    from application.reporting import ReportOptions
    from config.settings import Settings
    from interfaces.cli.backend import backend_for

    today = date.today()
    quarter = f"{today.year}Q{(today.month - 1) // 3 + 1}"
    wanted = {
        "waiting-times": {"by": "year"}, "throughput": {"by": "year"}, "queue": {},
        "ivo": {"quarter": quarter}, "caseload": {}, "arrears": {}, "stock": {}, "returns": {},
        "by-name": {}, "kpis": {"year": today.year}, "refusals": {}, "placements": {},
        "supply": {}, "evictions": {},
    }
    settings = Settings(data=run.data, policy_file=run.dir / "policy.json",
                        temporal_address=f"127.0.0.1:{run.port}")

    async def all_of() -> dict[str, Any]:
        backend = backend_for(settings)
        return {name: await backend.report(name, ReportOptions(**options), None, 60.0)
                for name, options in wanted.items()}

    return asyncio.run(all_of())


def stop_up(run: Run, up: subprocess.Popen) -> None:
    """Ctrl-C, as an operator stops it: the worker, the projection and the dev server in order."""
    up.send_signal(signal.SIGINT)
    up.wait(timeout=60)
    wait_until(f"port {run.port} to close", lambda: not listening(run.port), 30)


class Reference:
    def __init__(self, lines: list[Line], rec: Recorded, report: dict[str, Any],
                 figures: dict[str, Any]) -> None:
        self.lines, self.recorded, self.report, self.figures = lines, rec, report, figures


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    with running(tmp_path_factory.mktemp("crash-up") / "reference") as run:
        path, lines = demo_file(run.dir)
        up, _ = run.start_up()
        report = run.finish_import(run.start_import(path), IMPORT_TIMEOUT)
        assert_all_accepted(report, lines)
        rec = recorded(run, lines)
        assert_nothing_lost_or_doubled(rec, lines)
        stop_up(run, up)
        run.note(f"reference: {len(lines)} lines, {len(cases_of(lines))} cases, "
                 f"{rec.domain_events} domain events")
        return Reference(lines, rec, report, reports(run))


def crash_at(run: Run, share: float, total: int, importer: subprocess.Popen) -> int:
    threshold = max(20, int(total * share))
    seen = [0]

    def enough() -> bool:
        seen[0] = run.domain_events() or seen[0]
        return seen[0] >= threshold

    wait_until(f"{threshold} domain events stored", enough, IMPORT_TIMEOUT,
               watch=lambda: importer.poll() is not None
               and f"the import exited ({importer.returncode}) before the crash", every=0.02)
    return seen[0]


@pytest.mark.parametrize("kill", ["up", "tree"])
def test_killing_up_at_three_points_of_an_import_and_importing_again_gives_the_uninterrupted_result(
        reference, tmp_path, kill):
    total = reference.recorded.domain_events
    with running(tmp_path / f"killed-{kill}") as run:
        path, lines = demo_file(run.dir)
        up, server = run.start_up()
        importer = run.start_import(path)
        for share in POINTS:
            stored = crash_at(run, share, total, importer)
            if kill == "up":  # `up` alone: its dev server dies of PDEATHSIG, the importer lives
                os.kill(up.pid, signal.SIGKILL)
            else:  # everything at once: `up`, its dev server's session, the importer
                kill_group(up.pid)
                run.kill_server(server)
                kill_group(importer.pid)
                importer.wait(timeout=30)
            up.wait(timeout=30)
            wait_until("the dev server to die", lambda s=server: not alive(s), 30)
            run.note(f"SIGKILL ({kill}) with {stored} of {total} domain events stored")
            assert stored < total
            up, server = run.start_up()  # the same data directory and ports
            if importer.poll() is not None:
                if kill == "up":  # it stopped on the outage: it must say so, with a count
                    stopped = run.finish_import(importer)
                    assert importer.returncode == 3 and stopped["not_sent"] > 0, stopped
                    assert "import the file again" in stopped["outage"]
                importer = run.start_import(path)
        report = run.finish_import(importer, IMPORT_TIMEOUT)
        assert importer.returncode == 0, report
        again = run.start_import(path)  # the re-run: everything answers as already recorded
        rerun = run.finish_import(again, IMPORT_TIMEOUT)
        assert again.returncode == 0
        for answer in (report, rerun):
            assert_all_accepted(answer, lines)
            # the same, but for the lines an earlier run recorded: "already recorded"
            assert ({k: v for k, v in answer.items() if k != "duplicates"}
                    == {k: v for k, v in reference.report.items() if k != "duplicates"})
        assert rerun["duplicates"] == len(lines) and reference.report["duplicates"] == 0
        rec = recorded(run, lines)
        assert_nothing_lost_or_doubled(rec, lines)
        assert_same_as_reference(rec, reference.recorded)
        stop_up(run, up)
        started = time.monotonic()
        figures = reports(run)
        run.note(f"reports compared ({time.monotonic() - started:.1f} s)")
        differ = [name for name in reference.figures if figures[name] != reference.figures[name]]
        assert not differ, "reports differ from the uninterrupted import: " + "; ".join(
            f"{name}: here {figures[name]!r:.300} reference {reference.figures[name]!r:.300}"
            for name in differ)
