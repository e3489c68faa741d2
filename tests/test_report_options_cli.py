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
    (["waiting-times", "--programme", "hf"], "--programme: 'hf' is not a programme; known: "),
    (["waiting-times", "--district", "Nowhere"], "--district: 'Nowhere' is not a district; "),
])
def test_a_report_refuses_what_it_does_not_take_with_exit_code_2(tmp_path, args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOUSING_CHAIN_", "TEMPORAL_"))}
    env.update(HOUSING_CHAIN_DATA=str(tmp_path), COLUMNS="200")
    done = subprocess.run([*CLI, "report", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr


def test_the_report_tables_speak_the_terminals_language(tmp_path):
    """Column headers and stage names from the catalogues under a Swedish or Norwegian locale;
    under any other the report's own keys, as the JSON and the CSV have them."""
    from application.store import HousingChain
    from config.settings import Settings
    from tests.test_worklist import granted, recorder

    app = HousingChain(env=Settings(data=tmp_path).event_store_env("events"))
    recorder(app, "l")(*granted("l-1", "2026-06-01", "2026-06-10"))
    app.close()

    def queue(lang: str) -> str:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HOUSING_CHAIN_", "TEMPORAL_", "LC_", "LANG"))}
        env.update(HOUSING_CHAIN_DATA=str(tmp_path), COLUMNS="250", LANG=lang)
        done = subprocess.run([*CLI, "report", "queue", "--as-of", "2026-11-01"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    swedish = queue("sv_SE.UTF-8")
    assert "Ärende" in swedish and "Tremånadersgräns" in swedish and "l-1" in swedish
    assert "Tremånedersfrist" in queue("nb_NO.UTF-8")
    english = queue("C.UTF-8")
    assert "days_waiting" in english and "deadline" in english and "Ärende" not in english


def test_a_stage_is_named_in_the_terminals_language():
    from interfaces.cli.labels import stage_name, terminal_language

    assert terminal_language({"LANG": "sv_SE.UTF-8"}) == "sv"
    assert terminal_language({"LC_ALL": "nn_NO", "LANG": "sv_SE"}) == "nb"
    assert terminal_language({}) == terminal_language({"LANG": "de_DE"}) == "en"
    assert stage_name("training", "in a training apartment", "sv") == "Träningsfas"
    assert stage_name("training", "in a training apartment", "en") == "in a training apartment"
