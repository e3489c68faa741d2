"""The layers of docs/architecture.md, kept by import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_point_inward_only():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken" in result.stdout


def test_every_step_has_a_model_a_cli_command_and_a_dispatch():
    from domain.commands import import_line_adapter
    from domain.steps import STEPS
    from interfaces.cli.main import app

    models = set(import_line_adapter.json_schema()["discriminator"]["mapping"])
    commands = {c.name for c in app.registered_commands}
    for spec in STEPS:
        assert spec.type in models, spec.type
        assert spec.cli_name in commands, spec.cli_name
    assert models == {s.type for s in STEPS}
