from __future__ import annotations

import pytest

from tests.builders import Chain


@pytest.fixture
def chain(tmp_path):
    """A HousingChain on a fresh SQLite file."""
    c = Chain(tmp_path / "events.sqlite")
    yield c
    c.app.close()


# Workflow fixtures (time-skipping server, worker, harness) live in their own module.
pytest_plugins = ["tests.harness", "tests.backends"]
