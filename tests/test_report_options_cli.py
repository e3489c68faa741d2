"""`housing-chain report` refuses what a report does not take, naming it, with exit code 2 and
no traceback: an option, a case for a report that is not a case's history, an option for
the history. A real CLI process on an empty installation (no stack needed for a refusal)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "interfaces.cli.main"]


@pytest.mark.parametrize(("args", "message"), [
    (["stock", "--year", "2026"], "report stock does not take --year"),
    (["stock", "--by", "district"], "--by must be landlord or landlord-type for the stock"),
    (["caseload", "--by", "month"], "report caseload does not take --by"),
    (["kpis"], "report kpis needs --year"),
    (["stock", "c-1"], "report stock does not take a case ('c-1'); only history does"),
    (["history", "c-1", "--as-of", "2026-01-01"], "report history does not take --as-of"),
])
def test_a_report_refuses_what_it_does_not_take_with_exit_code_2(tmp_path, args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOUSING_CHAIN_", "TEMPORAL_"))}
    env.update(HOUSING_CHAIN_DATA=str(tmp_path), COLUMNS="200")
    done = subprocess.run([*CLI, "report", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr
