"""Record workflow histories from a running stack as replay fixtures.

    python -m tests.record_histories CASE [CASE ...] [notice-NOTICE ...]

Run it against a stack that has imported the demo (`make run`), choosing cases in different
stages. The histories carry only pseudonymous ids. tests/test_replay.py replays them, so a
workflow change that breaks determinism fails CI; see the README on `workflow.patched`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from application.gateway import case_workflow_id, connect
from config.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "histories"


async def record(cases: list[str]) -> None:
    client = await connect(Settings())
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for case in cases:
        workflow_id = case if case.startswith("notice-") else case_workflow_id(case)
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        (FIXTURES / f"{case}.json").write_text(history.to_json(), encoding="utf-8")
        print(f"{case}: {len(history.events)} events")


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1:]))
