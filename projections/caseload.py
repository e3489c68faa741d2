"""The caseload per housing pilot, kept between reads and brought up to date case by case.

The supervisor's dashboard shows the caseload, and a home visit changes it: computed from
scratch it reads every tenancy (about 10,000 of 50,000 cases) and works out each one's next
visit, 75–120 ms, after every step anybody takes. Kept, a step costs the rows of the cases
it changed: each tenancy's (pilot, next visit, days overdue) is kept by case, each pilot's
row is made again only when one of their cases changed, and the order of the rows only when
a row did.

For the latest facts only (a past date reads the dated steps: `reports.caseload`). Another
day, another policy, or a view that went back (a rebuild) computes everything again. The
rows are those of `reports.caseload` for the same view (tests/test_caseload.py compares
them after each kind of step).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any

from domain.policy import Policy
from projections.reports import (
    IN_TENANCY,
    TENANCY_COLUMNS,
    DueAfter,
    latest_facts,
    pilot_order,
    pilot_row,
    tenancy_load,
)
from projections.view import ChainView

Load = tuple[str, str, str, int | None]  # pilot, case, next visit due, days overdue or None


class KeptCaseload:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: tuple[int, date, Policy] | None = None
        self._due_after: DueAfter = {}
        self._of_case: dict[str, Load] = {}
        self._members: dict[str, dict[str, tuple[str, str, int | None]]] = {}
        self._rows: dict[str, dict[str, Any]] = {}
        self._ordered: list[dict[str, Any]] | None = None

    def clear(self) -> None:
        with self._lock:
            self._at = None

    def rows(self, view: ChainView, position: int,
             changed: Callable[[int, int], set[str] | None], as_of: date,
             policy: Policy) -> list[dict[str, Any]] | None:
        """`reports.caseload(view, as_of, policy)["rows"]` at `position`, or None when
        `as_of` is before the latest facts. `changed(start, stop)` names the case rows the
        events in (start, stop] touched (None when too many: everything is read again). The
        rows are handed out as they are kept: callers must not change them."""
        if not latest_facts(view, as_of.isoformat()):
            return None
        with self._lock:
            at = self._at
            cases = None
            if at is not None and at[1] == as_of and at[2] == policy and at[0] <= position:
                cases = changed(at[0], position) if at[0] < position else set()
            if cases is None:
                self._read_all(view, as_of, policy)
            elif cases:
                self._read_cases(view, sorted(cases), as_of, policy)
            self._at = (position, as_of, policy)
            if self._ordered is None:
                self._ordered = pilot_order(self._rows.values())
            return self._ordered

    def _read_all(self, view: ChainView, as_of: date, policy: Policy) -> None:
        self._due_after = {}
        self._of_case, self._members = {}, {}
        for row in view.rows(f"SELECT {TENANCY_COLUMNS}, case_uuid FROM rm_cases "
                             f"WHERE {IN_TENANCY}"):
            self._add(row[6], tenancy_load(row, as_of, policy, self._due_after))
        self._rows = {pilot: pilot_row(pilot, loads.values())
                      for pilot, loads in self._members.items()}
        self._ordered = None

    def _read_cases(self, view: ChainView, cases: list[str], as_of: date,
                    policy: Policy) -> None:
        touched = set()
        for uuid in cases:
            old = self._of_case.pop(uuid, None)
            if old is not None:
                del self._members[old[0]][uuid]
                touched.add(old[0])
        for row in view.rows(f"SELECT {TENANCY_COLUMNS}, case_uuid, {IN_TENANCY} FROM rm_cases "
                             f"WHERE case_uuid IN ({', '.join('?' * len(cases))})", cases):
            if row[7]:
                load = tenancy_load(row, as_of, policy, self._due_after)
                self._add(row[6], load)
                touched.add(load[0])
        for pilot in touched:
            loads = self._members.get(pilot)
            if loads:
                self._rows[pilot] = pilot_row(pilot, loads.values())
            else:
                self._members.pop(pilot, None)
                self._rows.pop(pilot, None)
        if touched:
            self._ordered = None

    def _add(self, uuid: str, load: Load) -> None:
        self._of_case[uuid] = load
        self._members.setdefault(load[0], {})[uuid] = load[1:]
