"""Debian's Chromium for the browser tests (Playwright, `executable_path`; nothing is
downloaded). Without it they are skipped, unless HOUSING_CHAIN_REQUIRE_BROWSER=1 (CI sets it,
as `.ci/run` installs the package), when they fail: a browser test never goes silent there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def need_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("HOUSING_CHAIN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is not installed: apt-get install chromium")
    pytest.skip("needs Debian's chromium (apt-get install chromium)")
