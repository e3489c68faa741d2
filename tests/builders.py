"""Test builders: import lines with `on`, `actor` and `id` set, and a driver that walks
cases through the real application service (real SQLite files, no mocks).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from application.store import HousingChain, IdentityRegistry
from domain.calendar import add_months
from domain.commands import ApplyLine, import_line_adapter
from domain.errors import DomainError
from domain.policy import Policy
from domain.stages import Stage
from domain.views import LineResult

START = date(2025, 1, 1)


def unique_id(prefix: str) -> str:
    """A fresh id without digits: a uuid's own digits can read as a valid personal identity
    number (`fe640814-5057` did), which every id field refuses."""
    return f"{prefix}-" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex)
TODAY = date(2027, 6, 30)
POLICY = Policy()

# The stages in the order the chain reaches them (CLOSED is reached by an exit).
PATH = (
    Stage.APPLIED,
    Stage.ASSESSMENT,
    Stage.WAITING,
    Stage.OFFERED,
    Stage.APPROVED,
    Stage.TRAINING,
    Stage.TAKEOVER_REVIEW,
    Stage.TAKEOVER_APPROVED,
)


def sqlite_env(path: Path | str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


def new_chain(path: Path | str) -> HousingChain:
    return HousingChain(env=sqlite_env(path))


def new_registry(path: Path | str) -> IdentityRegistry:
    return IdentityRegistry(env=sqlite_env(path))


def client(client_id: str = "k-1", **extra: Any) -> dict[str, Any]:
    return {"id": client_id, "target_group": "psychiatric_disability", "district": "Norrmalm",
            **extra}


class Lines:
    """Builds parsed import lines; every line gets `on`, `actor` and a unique `id`."""

    def __init__(self, prefix: str = "line") -> None:
        self.prefix = prefix
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        return f"{self.prefix}-{next(self._ids)}"

    def __call__(
        self, type_: str, *, on: date, actor: str = "cw-anna", id: str | None = None,
        **fields: Any,
    ) -> Any:
        data = {"type": type_, "on": on, "actor": actor, "id": id or self.next_id(), **fields}
        line = import_line_adapter.validate_python(data)
        if isinstance(line, ApplyLine):
            line = line.without_identity()
        return line


class Chain:
    """A HousingChain on a real SQLite file, with a clock that only moves forward."""

    def __init__(self, path: Path | str, today: date = TODAY, policy: Policy = POLICY) -> None:
        self.app = new_chain(path)
        self.line = Lines()
        self.today = today
        self.policy = policy
        self.day = START

    # --- time ---------------------------------------------------------------------------

    def next_day(self) -> date:
        self.day += timedelta(days=1)
        return self.day

    # --- running lines ------------------------------------------------------------------

    def run(self, *steps: Any, batch_id: str | None = None) -> list[LineResult]:
        return self.app.run(list(steps), today=self.today, policy=self.policy, batch_id=batch_id)

    def accept(self, *steps: Any) -> list[LineResult]:
        results = self.run(*steps)
        refused = [r.reason for r in results if not r.accepted]
        assert not refused, refused
        return results

    def refuse(self, step: Any) -> str:
        [result] = self.run(step)
        assert not result.accepted, result
        assert result.reason
        return result.reason

    def stored(self) -> int:
        """How many events (of every aggregate and marker) the store holds."""
        return self.app.recorder.max_notification_id() or 0

    def notifications(self) -> list[Any]:
        return list(self.app.recorder.select_notifications(start=1, limit=10_000))

    # --- building state -------------------------------------------------------------------

    def register(self, apartment: str, landlord: str = "Framtiden", rooms: int = 2) -> None:
        self.accept(
            self.line("register_apartment", on=self.day, apartment=apartment, landlord=landlord,
                      rooms=rooms)
        )

    def step(self, type_: str, case: str, **fields: Any) -> Any:
        """A line for `case` dated the next day."""
        return self.line(type_, on=self.next_day(), case=case, **fields)

    def drive(self, case: str, stage: Stage, apartment: str = "apt-1") -> None:
        """Apply `case` and walk it to `stage` (registering `apartment` when needed)."""
        if stage is Stage.CLOSED:
            raise ValueError("drive to a stage, then exit")
        self.accept(self.line("apply", on=self.next_day(), case=case,
                              client=client(f"k-{case}")))
        target = PATH.index(stage)
        if target >= PATH.index(Stage.OFFERED):
            try:
                self.app.get_apartment(apartment)
            except DomainError:
                self.register(apartment)
        moves: list[tuple[str, dict[str, Any]]] = [
            ("start_assessment", {}),
            ("decide", {"outcome": "granted", "programme": "training_apartment"}),
            ("offer", {"apartment": apartment}),
            ("landlord_decision", {"approved": True}),
            ("move_in", {"apartment": apartment}),
            ("refer_takeover", {}),
            ("takeover_decision", {"approved": True}),
        ]
        for type_, fields in moves[:target]:
            if type_ == "refer_takeover":
                move_in = self.app.get_case(case).move_in_date
                assert move_in is not None
                self.day = max(self.day, add_months(move_in, 12) - timedelta(days=1))
            self.accept(self.step(type_, case, **fields))
        assert self.app.get_case(case).stage is stage
