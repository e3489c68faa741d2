"""Read-model answers remembered for as long as nothing they read has changed.

A report or a worklist is a function of the read models' state, the question (its name and
options) and the day it is asked on. The read models only change when the projection moves
their position, so an answer computed at position P is still the answer while the position
is P: the supervisor's dashboard (six answers) opened again, or by a colleague, is served
without scanning 50,000 cases again.

When the position moves, an answer given `changed` outlives the move if the pages between
changed none of the columns it read: each page records the `table.column` names it changed
(projections/view.py, `rm_changes`), and the answer the `table.column` names its SQL named
(`columns_read`). A home visit changes a case's last visit and contact dates and adds a
step: the waiting times, the flows, the IVO counts and the stock read none of those and are
served as they were; the caseload, which reads the last visit, is computed again. Whatever
is unknown (changes no longer kept, a position that went back) computes afresh, so
read-your-writes holds exactly as without this. An answer without `changed` (the worklists:
projections/worklist.py keeps those) lives at its position only.

One per process (API processes share nothing; a miss only costs the computation). At most
`size` answers, least recently used out first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from projections.view import ReadLog, columns_read

Changes = Callable[[int, int], "frozenset[str] | None"]


@dataclass
class _Kept:
    position: int
    reads: frozenset[str] | None  # None: valid at `position` only
    answer: Any


class ByPosition:
    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._answers: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._changes: OrderedDict[tuple[int, int], frozenset[str] | None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def clear(self) -> None:
        """Forget every answer (after a rebuild the position starts over)."""
        with self._lock:
            self._answers.clear()
            self._changes.clear()

    def get(self, position: int, question: Hashable, compute: Callable[[], Any],
            changed: Changes | None = None) -> Any:
        """The answer to `question` at `position`: remembered, or computed now. Without
        `changed`, `compute()` returns the answer; with it, (the answer, the `table.column`
        names it read), and `changed(a, b)` gives what the read models changed between the
        positions a and b (None: not known). An answer is handed out as is, so callers must
        not change it."""
        with self._lock:
            kept = self._answers.get(question)
        if kept is not None and self._still(kept, position, changed):
            with self._lock:
                if kept.position < position:
                    kept.position = position  # the next check starts from here
                if question in self._answers:
                    self._answers.move_to_end(question)
                self.hits += 1
            return kept.answer
        with self._lock:
            self.misses += 1
        # outside the lock: other questions do not wait for this one
        if changed is None:
            answer, reads = compute(), None
        else:
            answer, reads = compute()
        with self._lock:
            now = self._answers.get(question)
            if now is None or now.position <= position:
                self._answers[question] = _Kept(position, reads, answer)
                self._answers.move_to_end(question)
                while len(self._answers) > self.size:
                    self._answers.popitem(last=False)
        return answer

    def _still(self, kept: _Kept, position: int, changed: Changes | None) -> bool:
        if kept.position == position:
            return True
        if kept.position > position or changed is None or kept.reads is None:
            return False
        between = self._between(kept.position, position, changed)
        return between is not None and kept.reads.isdisjoint(between)

    def _between(self, start: int, stop: int, changed: Changes) -> frozenset[str] | None:
        """`changed(start, stop)`, asked once for the answers kept at the same position."""
        key = (start, stop)
        with self._lock:
            if key in self._changes:
                return self._changes[key]
        found = changed(start, stop)
        with self._lock:
            self._changes[key] = found
            while len(self._changes) > 16:
                self._changes.popitem(last=False)
        return found


def read_logged(view: Any, compute: Callable[[Any], Any]) -> tuple[Any, frozenset[str]]:
    """`compute(view)` and the `table.column` names its SQL read: for `ByPosition.get`."""
    log = ReadLog(view)
    answer = compute(log)
    return answer, columns_read(log.statements)
