"""The worklist: what each caseworker and housing pilot has due and overdue, per case.

Computed from the read model's facts (applied exactly once) with the same date rules as the
workflow timers (domain/due.py, domain/calendar.py) and the municipality's policy. An item
goes to the assigned housing pilot when it is theirs (visits, follow-ups, the monthly
checklist) and one is assigned; everything else, and anything whose role has nobody
assigned, goes to the case's responsible caseworker.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
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
