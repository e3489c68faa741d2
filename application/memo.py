"""Read-model answers remembered for as long as the read models stand still.

A report or a worklist is a function of the read models' state, the question (its name and
options) and the day it is asked on. The read models only change when the projection moves
their position, so an answer computed at position P is still the answer while the position
is P: the supervisor's dashboard (six answers) opened again, or by a colleague, is served
without scanning 50,000 cases again. Any step recorded since moves the position and the next
request computes afresh (a worklist only for the cases the step changed:
projections/worklist.py), so read-your-writes holds exactly as without this.

One per process (API processes share nothing; a miss only costs the computation). Only the
answers at the latest position are kept (the position never goes back, so older ones can
never be asked for again), at most `size` of them, least recently used out first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class ByPosition:
    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.position = -1
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def clear(self) -> None:
        """Forget every answer and the position (after a rebuild the position starts over)."""
        with self._lock:
            self._answers.clear()
            self.position = -1

    def get(self, position: int, question: Hashable, compute: Callable[[], Any]) -> Any:
        """The answer to `question` at `position`: remembered, or computed now. An answer is
        handed out as is, so callers must not change it."""
        key = (position, question)
        with self._lock:
            if position > self.position:  # the read models moved: every answer is old
                self._answers.clear()
                self.position = position
            if key in self._answers:
                self._answers.move_to_end(key)
                self.hits += 1
                return self._answers[key]
            self.misses += 1
        answer = compute()  # outside the lock: other questions do not wait for this one
        with self._lock:
            if position < self.position:  # moved on meanwhile: nobody will ask for this
                return answer
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)
        return answer
