"""The worklist: what each caseworker and housing pilot has due and overdue, per case.

Computed from the read model's facts (applied exactly once) with the same date rules as the
workflow timers (domain/due.py, domain/calendar.py) and the municipality's policy. An item
goes to the assigned housing pilot when it is theirs (visits, follow-ups, the monthly
checklist) and one is assigned; everything else, and anything whose role has nobody
assigned, goes to the case's responsible caseworker.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from itertools import compress
from typing import Any

from domain.calendar import unexecuted_deadline
from domain.due import (
    lease_renewal_due,
    missed_instalment,
    next_checklist,
    next_coordinator_meeting,
    next_follow_up,
    next_inspection,
    next_visit,
    owner_of,
    pilot_missing_due,
    plan_missing_due,
    stall_due,
    sub_goal_of,
    takeover_eligible_date,
)
from domain.policy import Policy
from domain.stages import GRANTED_NOT_MOVED_IN, IN_HOME
from projections.view import ChainView

# the kinds of item `items_for_case` gives, `sub_goal:<id>` and `stalled:<stage>` by their
# family (`kind_family`): what a worklist is filtered by, and all a filter may ask for
KINDS = ("unexecuted_decision", "support_visit", "follow_up", "inspection",
         "coordinator_meeting", "monthly_checklist", "takeover_eligible", "pilot_missing",
         "plan_missing", "sub_goal", "support_interrupted", "lease_renewal",
         "instalment_missed", "arrears_without_plan", "stalled")


def cases_only(whole: dict[str, Any], keep: Callable[[str], bool],
               kind: str | None = None) -> dict[str, Any]:
    """A worklist (asked for without `kind`) with only the items of the cases `keep`
    accepts, its counts and kinds computed again from them, then the rows of `kind`: what a
    supervisor reading everyone's list, or another person's, may see of it."""
    rows = [i for i in whole["rows"] if keep(i["case"])]
    families = [kind_family(i["kind"]) for i in rows]
    overdue = sum(1 for i in rows if i["status"] == "overdue")
    return {**whole, "overdue": overdue, "due": len(rows) - overdue, "kinds": sorted(set(families)),
            "rows": [i for i, f in zip(rows, families, strict=True) if f == kind] if kind else rows}


def items_for_case(row: dict[str, Any], policy: Policy, as_of: date) -> list[dict[str, Any]]:
    d = date.fromisoformat
    items: list[tuple[str, date, str]] = []
    stage = row["stage"]
    if stage in GRANTED_NOT_MOVED_IN and row["decided_on"]:
        limit = unexecuted_deadline(d(row["decided_on"]))
        if as_of >= limit - timedelta(days=policy.decision_warning_days):
            items.append(("unexecuted_decision", limit,
                          "granted decision not executed: three months end on this day"))
    if stage in IN_HOME and row["move_in_on"]:
        move_in = d(row["move_in_on"])
        optional = lambda key: d(row[key]) if row.get(key) else None  # noqa: E731
        rules = policy.rules(row["programme"])  # the programme's follow-up rules
        items.append(("support_visit", next_visit(move_in, optional("last_home_visit"), rules),
                      "support visit"))
        items.append(("follow_up", next_follow_up(move_in, optional("last_follow_up"), rules),
                      "quarterly follow-up meeting"))
        inspection = next_inspection(move_in, optional("last_inspection"), rules)
        if inspection is not None:
            items.append(("inspection", inspection, "technical inspection of the apartment"))
        meeting = next_coordinator_meeting(move_in, optional("last_coordinator_meeting"), rules)
        if meeting is not None:
            items.append(("coordinator_meeting", meeting, "coordinator meeting"))
        items.append(("monthly_checklist", next_checklist(move_in, optional("last_checklist")),
                      "monthly checklist: rent receipt, home insurance, housing queues"))
        if stage == "training":
            eligible = takeover_eligible_date(move_in, row["programme"], policy)
            items.append(("takeover_eligible", eligible,
                          "minimum training period reached: consider a takeover referral"))
    pilot = pilot_missing_due(row["programme"], stage, d(row["move_in_on"]) if row["move_in_on"]
                              else None, row["assigned_pilot"], policy)
    if pilot is not None:
        items.append(("pilot_missing", pilot,
                      "moved into the training apartment without a housing pilot: assign one"))
    plan = plan_missing_due(stage, d(row["move_in_on"]) if row["move_in_on"] else None,
                            d(row["plan_on"]) if row.get("plan_on") else None, policy)
    if plan is not None:
        items.append(("plan_missing", plan,
                      f"no individual plan {policy.plan_within_days} days after move-in"))
    if stage != "closed":
        for sub_goal, follow_up in sorted(json.loads(row.get("follow_ups") or "{}").items()):
            items.append((f"sub_goal:{sub_goal}", d(follow_up),
                          f"individual plan: follow up sub-goal {sub_goal}"))
    if stage != "closed" and row.get("interrupted_on"):
        quarter = 1  # the latest quarterly limit passed, or the first one
        while unexecuted_deadline(d(row["interrupted_on"]), quarter + 1) < as_of:
            quarter += 1
        items.append(("support_interrupted", unexecuted_deadline(d(row["interrupted_on"]), quarter),
                      f"support interrupted since {row['interrupted_on']}: not resumed within "
                      "three months, reported to the inspectorate each quarter"))
    renewal = lease_renewal_due(stage, d(row["lease_end"]) if row.get("lease_end") else None,
                                policy)
    if renewal is not None:
        items.append(("lease_renewal", renewal,
                      f"the time-limited lease ends on {row['lease_end']}: renew it"))
    missed = (missed_instalment(json.loads(row["instalments"]),
                                Decimal(row.get("paid_since_plan") or "0"))
              if stage != "closed" and row.get("instalments") else None)
    if missed is not None and missed["due"] < as_of:  # its due date passed, not covered
        items.append(("instalment_missed", missed["due"],
                      f"repayment plan: instalment {missed['n']} due {missed['due']} not paid "
                      f"({missed['short']} SEK short)"))
    if row["arrears_without_plan"]:
        items.append(("arrears_without_plan", d(row["arrears_since"] or row["stage_since"]),
                      f"rent arrears of {row['arrears']} SEK without a repayment plan"))
    stalled = stall_due(stage, d(row["stage_since"]) if row["stage_since"] else None, policy)
    if stalled is not None:
        items.append((f"stalled:{stage}", stalled, f"in stage {stage} since {row['stage_since']}"))
    owners = json.loads(row.get("sub_goal_owners") or "{}")
    out = []
    for kind, due, what in items:
        goal = sub_goal_of(kind)
        out.append({"actor": owner_of(kind, row["caseworker"], row["assigned_pilot"],
                                      owners.get(goal) if goal else None),
                    "case": row["case_id"], "kind": kind, "due": due.isoformat(),
                    "status": "overdue" if due < as_of else "due", "what": what,
                    "days_overdue": max(0, (as_of - due).days)})
    return out


def worklist(view: ChainView, actor: str | None, policy: Policy, as_of: date,
             horizon_days: int = 14) -> dict[str, Any]:
    """Items due by `as_of + horizon_days`, overdue first; one actor's, or everyone's."""
    if actor is None:
        rows = view.query("SELECT * FROM rm_cases WHERE stage <> 'closed'")
    else:  # every item is the case's caseworker's or its pilot's (domain.due.owner_of)
        rows = view.query("SELECT * FROM rm_cases WHERE stage <> 'closed' "
                          "AND (caseworker = ? OR assigned_pilot = ?)", (actor, actor))
    until = as_of + timedelta(days=horizon_days)
    items = [item for row in rows for item in items_for_case(row, policy, as_of)
             if item["due"] <= until.isoformat() and (actor is None or item["actor"] == actor)]
    items.sort(key=lambda i: (i["status"] != "overdue", i["due"], i["case"], i["kind"]))
    return {
        "actor": actor,
        "as_of": as_of.isoformat(),
        "until": until.isoformat(),
        "overdue": sum(1 for i in items if i["status"] == "overdue"),
        "due": sum(1 for i in items if i["status"] == "due"),
        "rows": items,
    }


def _order(item: dict[str, Any]) -> tuple[bool, str, str, str]:
    return (item["status"] != "overdue", item["due"], item["case"], item["kind"])


def kind_family(kind: str) -> str:
    """`sub_goal:rent` → `sub_goal`: what the worklist is filtered by."""
    return kind.split(":", 1)[0]


class KeptWorklists:
    """Every open case's items for one day, kept between reads and brought up to date with
    the cases that changed since: after a step, one case's items are computed again, not
    50,000 cases' (everyone's worklist took 0.6 s to compute from scratch at that size).

    The items are kept once for everybody, in the worklist's order (overdue first, then by
    due date), each with its sort key, actor and kind family beside it in lists of their own:
    a horizon is then a prefix found by bisection, and an actor's or a kind's list that
    prefix filtered by a mask of names (`itertools.compress`), not computed again.
    `changed(start, stop)` names the case rows the events in (start, stop] touched (None
    when too many: everything is computed again).
    Another day, another policy or a view that went back (a rebuild) computes everything
    again. The answer is what `worklist` gives for the same view (tests/test_worklist.py
    compares them), plus the kind families in the actor's list (`kinds`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: tuple[int, date, Policy] | None = None
        self._by_case: dict[str, list[dict[str, Any]]] = {}
        self._keys: list[tuple[bool, str, str, str]] = []
        self._items: list[dict[str, Any]] = []
        self._actors: list[str | None] = []
        self._families: list[str] = []

    def clear(self) -> None:
        with self._lock:
            self._at = None

    @property
    def day(self) -> date | None:
        """The day the kept items are for (None: nothing kept)."""
        at = self._at
        return None if at is None else at[1]

    def worklist(self, view: ChainView, position: int,
                 changed: Callable[[int, int], set[str] | None], actor: str | None,
                 policy: Policy, as_of: date, horizon_days: int = 14,
                 kind: str | None = None) -> dict[str, Any]:
        until = (as_of + timedelta(days=horizon_days)).isoformat()
        with self._lock:
            self._bring_up_to(view, position, changed, policy, as_of)
            cut = bisect.bisect_right(self._keys, (True, until, "\U0010ffff", ""))
            overdue = bisect.bisect_left(self._keys, (True,), 0, cut)
            items, families = self._items[:cut], self._families[:cut]
            mine = None if actor is None else [a == actor for a in self._actors[:cut]]
        if mine is not None:
            overdue = sum(mine[:overdue])
            items = list(compress(items, mine))
            families = list(compress(families, mine))
        total = len(items)
        if kind:
            items = list(compress(items, [f == kind for f in families]))
        return {"actor": actor, "as_of": as_of.isoformat(), "until": until,
                "overdue": overdue, "due": total - overdue, "rows": items,
                "kinds": sorted(set(families))}

    def _bring_up_to(self, view: ChainView, position: int,
                     changed: Callable[[int, int], set[str] | None], policy: Policy,
                     as_of: date) -> None:
        at = self._at
        cases = None
        if at is not None and at[1] == as_of and at[2] == policy and at[0] <= position:
            cases = changed(at[0], position) if at[0] < position else set()
        if cases is None:
            self._by_case = {row["case_uuid"]: items_for_case(row, policy, as_of) for row in
                             view.query("SELECT * FROM rm_cases WHERE stage <> 'closed'")}
            self._items = sorted((i for items in self._by_case.values() for i in items),
                                 key=_order)
            self._keys = [_order(i) for i in self._items]
            self._actors = [i["actor"] for i in self._items]
            self._families = [kind_family(i["kind"]) for i in self._items]
        elif cases:
            rows = view.query("SELECT * FROM rm_cases WHERE case_uuid IN "
                              f"({', '.join('?' * len(cases))})", sorted(cases))
            for uuid in cases:
                for item in self._by_case.pop(uuid, ()):
                    at_index = bisect.bisect_left(self._keys, _order(item))
                    for kept in (self._keys, self._items, self._actors, self._families):
                        del kept[at_index]
            for row in rows:
                if row["stage"] == "closed":
                    continue
                self._by_case[row["case_uuid"]] = items = items_for_case(row, policy, as_of)
                for item in items:
                    key = _order(item)
                    at_index = bisect.bisect_left(self._keys, key)
                    self._keys.insert(at_index, key)
                    self._items.insert(at_index, item)
                    self._actors.insert(at_index, item["actor"])
                    self._families.insert(at_index, kind_family(item["kind"]))
        self._at = (position, as_of, policy)
