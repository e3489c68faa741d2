"""When is what due: pure functions from a case snapshot and the policy.

The one place for the due rules: the workflow sets its timers and answers its status query
with them, and the worklist (projections/worklist.py) lists what is due with them. Deadlines and reminders
come from the effective dates of the case (decision date, move-in, last visit), never from
when things were recorded.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from domain.calendar import add_months, unexecuted_deadline
from domain.policy import Policy, ProgrammeRules
from domain.stages import GRANTED_NOT_MOVED_IN, IN_HOME
from domain.views import CaseSnapshot, DueItem


def local_date(moment: datetime, policy: Policy) -> date:
    """The municipality's calendar date at a moment (workflow code calls this, not ZoneInfo)."""
    return moment.astimezone(ZoneInfo(policy.time_zone)).date()


def start_of(day: date, policy: Policy) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(policy.time_zone))


def rules_of(policy: Policy, programme: str | None, by_programme: bool) -> ProgrammeRules:
    """The visit rules a case follows: its programme's (policy `programmes`; workflows patched
    "case-file-v3" and the worklist), else the policy's global settings (workflows started
    before, until they continue as new)."""
    return policy.rules(programme) if by_programme else policy.global_rules()


def visit_interval_after(anchor: date, move_in: date, policy: Policy | ProgrammeRules) -> date:
    """The next home visit after one on `anchor`: weekly at first, then monthly (`policy`: the
    global settings, or a programme's rules, which carry the same names)."""
    if anchor < add_months(move_in, policy.weekly_visits_months):
        return anchor + timedelta(days=policy.weekly_visit_days)
    return add_months(anchor, policy.monthly_visit_months)


def next_visit(move_in: date, last_visit: date | None, policy: Policy | ProgrammeRules) -> date:
    """When the next support visit is due, from the move-in and the last home visit."""
    anchor = max(filter(None, [move_in, last_visit]))
    return visit_interval_after(anchor, move_in, policy)


def next_follow_up(move_in: date, last_follow_up: date | None,
                   policy: Policy | ProgrammeRules) -> date:
    """The quarterly (policy) follow-up meeting after the last one, or after move-in."""
    return add_months(max(filter(None, [move_in, last_follow_up])), policy.follow_up_months)


def next_inspection(move_in: date, last_inspection: date | None,
                    rules: ProgrammeRules) -> date | None:
    """The programme's technical inspection of the apartment (Housing First: every three
    months) after the last one, or after move-in; None when the programme has none."""
    if rules.inspection_months is None:
        return None
    return add_months(max(filter(None, [move_in, last_inspection])), rules.inspection_months)


def next_coordinator_meeting(move_in: date, last_meeting: date | None,
                             rules: ProgrammeRules) -> date | None:
    """The programme's coordinator meeting (Housing First: weekly, for the whole tenancy)
    after the last one, or after move-in; None when the programme has none."""
    if rules.coordinator_meeting_days is None:
        return None
    return (max(filter(None, [move_in, last_meeting]))
            + timedelta(days=rules.coordinator_meeting_days))


def next_checklist(move_in: date, last_checklist: date | None) -> date:
    """The monthly checklist (rent receipt, home insurance, housing queues)."""
    return add_months(max(filter(None, [move_in, last_checklist])), 1)


def takeover_eligible_date(move_in: date, programme: str | None, policy: Policy) -> date:
    """The end of the programme's minimum period before a takeover referral."""
    return add_months(move_in, policy.takeover_minimum(programme or ""))


def stall_due(stage: str, stage_since: date | None, policy: Policy) -> date | None:
    """The last day a stage may stay open (policy `stall_days`; None: no rule or no date)."""
    limit = policy.stall_days.get(stage)
    if limit is None or stage_since is None:
        return None
    return stage_since + timedelta(days=limit)


PILOT_KINDS = frozenset({"home_visit", "support_visit", "follow_up", "monthly_checklist",
                         "coordinator_meeting"})


def owner_of(kind: str, caseworker: str | None, pilot: str | None,
             responsible: str | None = None) -> str | None:
    """Whose item it is: the housing pilot's for visits, follow-ups and the checklist when one
    is assigned, and for a sub-goal of the plan the pilot is responsible for; everything else,
    and anything whose role has nobody, the caseworker's (a sub-goal whose responsible is the
    client or another agency too: the caseworker holds the follow-up meeting)."""
    base = kind.split(":", 1)[1] if kind.startswith("escalation:") else kind
    if base in PILOT_KINDS and pilot:
        return pilot
    if base.startswith("sub_goal:") and pilot and responsible == pilot:
        return pilot
    return caseworker


def sub_goal_of(kind: str) -> str | None:
    """The sub-goal id of a `sub_goal:<id>` item (or of its escalation)."""
    base = kind.split(":", 1)[1] if kind.startswith("escalation:") else kind
    return base.split(":", 1)[1] if base.startswith("sub_goal:") else None


def _chain(first: date, step, reminded: date | None, today: date) -> date:
    """The due date to wait for, given the last one already reminded about.

    After a reminder, the next is one interval later; when several intervals have passed
    (a case imported late, a worker down for days) only the latest passed one is raised.
    """
    due = first
    if reminded is not None and reminded >= due:
        due = step(reminded)
    while step(due) < today:
        due = step(due)
    return due


def due_items(
    snapshot: CaseSnapshot | None, policy: Policy, reminded: dict[str, date], today: date,
    stalls_and_escalations: bool = False, unanswered: dict[str, date] | None = None,
    case_file: bool = False, case_file_v2: bool = False, case_file_v3: bool = False,
) -> list[DueItem]:
    """What the case has due; with `stalls_and_escalations` (workflows patched for issue #4
    and later) also stalled stages and, for each kind, the first unanswered reminder to
    escalate; with `case_file` (workflows patched "case-file-v1") the case file's items
    (`case_file_due`), each raised once per due date; with `case_file_v3` visits and
    follow-ups by the case's programme's rules, and its inspections and coordinator meetings."""
    items = _due(snapshot, policy, reminded, today, by_programme=case_file_v3)
    if case_file:
        items += [i for i in case_file_due(snapshot, policy) if reminded.get(i.kind) != i.due]
    if case_file_v2:  # workflows patched "case-file-v2": interruptions, leases, rent, ...
        items += [i for i in case_file_due_v2(snapshot, policy) if reminded.get(i.kind) != i.due]
    if stalls_and_escalations and snapshot is not None and snapshot.stage != "closed":
        stall = _stall(snapshot, policy)
        if stall is not None and reminded.get(stall.kind) != stall.due:
            items.append(stall)
        for kind, due in (unanswered or {}).items():
            if reminded.get(f"escalation:{kind}") != due:
                at = due + timedelta(days=1 + policy.escalate_after_days)
                items.append(DueItem(kind=f"escalation:{kind}", due=due,
                                     fires_at=start_of(at, policy)))
    return items


ESCALATING = ("unexecuted_decision", "home_visit", "follow_up")


def answered(snapshot: CaseSnapshot | None, policy: Policy, kind: str, due: date,
             today: date, by_programme: bool = False) -> bool:
    """Whether the reminder about `kind` due on `due` has been answered by a step since."""
    if snapshot is None or snapshot.stage == "closed":
        return True
    if kind == "unexecuted_decision":
        return snapshot.stage not in GRANTED_NOT_MOVED_IN
    if kind.startswith("stalled:"):
        stall = _stall(snapshot, policy)
        return stall is None or stall.kind != kind or stall.due > due
    fresh = {i.kind: i.due for i in _due(snapshot, policy, {}, today, by_programme)}
    return kind not in fresh or fresh[kind] > due


CASE_FILE_KINDS = ("pilot_missing", "plan_missing", "support_interrupted", "lease_renewal")
CASE_FILE_PREFIXES = ("sub_goal:",)  # kinds with an id after the prefix


def pilot_missing_due(programme: str | None, stage: str, move_in: date | None,
                      pilot: str | None, policy: Policy) -> date | None:
    """From when a missing housing pilot is due: the move-in day, for a training apartment
    without an assigned pilot under `pilot_at_move_in: warn` (with refuse it cannot happen)."""
    if (policy.pilot_at_move_in != "warn" or programme != "training_apartment" or pilot
            or move_in is None or stage not in IN_HOME):
        return None
    return move_in


def plan_missing_due(stage: str, move_in: date | None, plan_on: date | None,
                     policy: Policy) -> date | None:
    """An individual plan is due `plan_within_days` after move-in while there is none."""
    if plan_on is not None or move_in is None or stage not in IN_HOME:
        return None
    return move_in + timedelta(days=policy.plan_within_days)


def case_file_due(snapshot: CaseSnapshot | None, policy: Policy) -> list[DueItem]:
    """The case file's due items (the issue "The case file the municipalities describe")."""
    if snapshot is None or snapshot.stage == "closed":
        return []
    items: list[DueItem] = []
    pilot = pilot_missing_due(snapshot.programme, snapshot.stage, snapshot.move_in_date,
                              snapshot.housing_pilot, policy)
    if pilot is not None:
        items.append(DueItem(kind="pilot_missing", due=pilot, fires_at=start_of(pilot, policy)))
    plan = plan_missing_due(snapshot.stage, snapshot.move_in_date, snapshot.plan_on, policy)
    if plan is not None:
        items.append(DueItem(kind="plan_missing", due=plan,
                             fires_at=start_of(plan + timedelta(days=1), policy)))
    for sub_goal, follow_up in sorted(snapshot.follow_ups.items()):
        items.append(DueItem(kind=f"sub_goal:{sub_goal}", due=follow_up,
                             fires_at=start_of(follow_up + timedelta(days=1), policy)))
    return items


def interruption_due(interrupted_on: date | None, noted: int) -> tuple[date, int] | None:
    """Support interrupted and not resumed: due (to the inspectorate, like an unexecuted
    decision) at three months, then each following quarter; the limit and its quarter."""
    if interrupted_on is None:
        return None
    return unexecuted_deadline(interrupted_on, noted + 1), noted + 1


def lease_renewal_due(stage: str, lease_end: date | None, policy: Policy) -> date | None:
    """A time-limited lease is due for renewal `lease_warning_days` before its last day."""
    if lease_end is None or stage not in IN_HOME:
        return None
    return lease_end - timedelta(days=policy.lease_warning_days)


def missed_instalment(instalments: list[dict[str, str]], paid: Decimal) -> dict[str, Any] | None:
    """The repayment plan's first instalment not covered by the payments since the plan (in
    due order, each covered once the payments add up to it and the ones before): its number,
    due date and what is still owed of the instalments due by then; None when all are."""
    owed = Decimal(0)
    for n, instalment in enumerate(sorted(instalments, key=lambda i: i["due"]), 1):
        owed += Decimal(instalment["amount"])
        if owed > paid:
            return {"n": n, "due": date.fromisoformat(instalment["due"]), "short": owed - paid}
    return None


def case_file_due_v2(snapshot: CaseSnapshot | None, policy: Policy) -> list[DueItem]:
    """The case file's due items that came with "case-file-v2" (workflows started before it
    keep their timers until they continue as new)."""
    if snapshot is None or snapshot.stage == "closed":
        return []
    items: list[DueItem] = []
    interruption = interruption_due(snapshot.interrupted_on, snapshot.interruption_noted)
    if interruption is not None:
        limit, quarter = interruption
        items.append(DueItem(kind="support_interrupted", due=limit, quarter=quarter,
                             fires_at=start_of(limit + timedelta(days=1), policy)))
    renewal = lease_renewal_due(snapshot.stage, snapshot.lease_end, policy)
    if renewal is not None:
        items.append(DueItem(kind="lease_renewal", due=renewal, fires_at=start_of(renewal, policy)))
    return items


def _programme_due(snapshot: CaseSnapshot, rules: ProgrammeRules, policy: Policy,
                   reminded: dict[str, date], today: date) -> list[DueItem]:
    """The programme's own follow-ups ("case-file-v3"): the technical inspection and the
    coordinator meeting, each chained like the visits (only the latest passed one raised)."""
    assert snapshot.move_in_date is not None
    move_in = snapshot.move_in_date
    items: list[DueItem] = []
    inspection = next_inspection(move_in, snapshot.last_inspection, rules)
    if inspection is not None and rules.inspection_months is not None:
        months = rules.inspection_months
        due = _chain(inspection, lambda d: add_months(d, months), reminded.get("inspection"),
                     today)
        items.append(DueItem(kind="inspection", due=due,
                             fires_at=start_of(due + timedelta(days=1), policy)))
    meeting = next_coordinator_meeting(move_in, snapshot.last_coordinator_meeting, rules)
    if meeting is not None and rules.coordinator_meeting_days is not None:
        days = timedelta(days=rules.coordinator_meeting_days)
        due = _chain(meeting, lambda d: d + days, reminded.get("coordinator_meeting"), today)
        items.append(DueItem(kind="coordinator_meeting", due=due,
                             fires_at=start_of(due + timedelta(days=1), policy)))
    return items


def _stall(snapshot: CaseSnapshot, policy: Policy) -> DueItem | None:
    """A stage open longer than the policy allows (assessment, an unanswered offer, ...)."""
    due = stall_due(snapshot.stage, snapshot.stage_since, policy)
    if due is None:
        return None
    return DueItem(kind=f"stalled:{snapshot.stage}", due=due,
                   fires_at=start_of(due + timedelta(days=1), policy))


def responsible(snapshot: CaseSnapshot | None, kind: str) -> str:
    """Whose reminder it is: the housing pilot for visits if one is assigned, else the
    responsible caseworker."""
    if snapshot is None:
        return "unassigned"
    goal = sub_goal_of(kind)
    return owner_of(kind, snapshot.caseworker, snapshot.housing_pilot,
                    snapshot.sub_goal_owners.get(goal) if goal else None) or "unassigned"


def _due(
    snapshot: CaseSnapshot | None, policy: Policy, reminded: dict[str, date], today: date,
    by_programme: bool = False,
) -> list[DueItem]:
    if snapshot is None or snapshot.stage == "closed":
        return []
    items: list[DueItem] = []
    if snapshot.stage in GRANTED_NOT_MOVED_IN and snapshot.decision_date:
        quarter = snapshot.unexecuted_noted + 1
        deadline = unexecuted_deadline(snapshot.decision_date, quarter)
        items.append(
            DueItem(
                kind="unexecuted_decision", due=deadline, quarter=quarter,
                fires_at=start_of(deadline + timedelta(days=1), policy),
            )
        )
    if snapshot.stage in IN_HOME and snapshot.move_in_date:
        move_in = snapshot.move_in_date
        rules = rules_of(policy, snapshot.programme, by_programme)
        visit_due = _chain(
            next_visit(move_in, snapshot.last_home_visit, rules),
            lambda d: visit_interval_after(d, move_in, rules),
            reminded.get("home_visit"),
            today,
        )
        items.append(
            DueItem(kind="home_visit", due=visit_due,
                    fires_at=start_of(visit_due + timedelta(days=1), policy))
        )
        follow_due = _chain(
            next_follow_up(move_in, snapshot.last_follow_up, rules),
            lambda d: add_months(d, rules.follow_up_months),
            reminded.get("follow_up"),
            today,
        )
        items.append(
            DueItem(kind="follow_up", due=follow_due,
                    fires_at=start_of(follow_due + timedelta(days=1), policy))
        )
        if by_programme:
            items += _programme_due(snapshot, rules, policy, reminded, today)
        if snapshot.stage == "training" and snapshot.takeover_eligible_on is None:
            eligible = takeover_eligible_date(move_in, snapshot.programme, policy)
            items.append(
                DueItem(kind="takeover_eligible", due=eligible, fires_at=start_of(eligible, policy))
            )
    return items
