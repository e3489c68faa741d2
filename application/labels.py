"""What the people who read them call things shown by more than one interface: the stages,
the due items (the worklist's reasons, the reminder mails' subjects) and the reports'
columns (the web tables, the CLI's report tables). English message ids, translated by the
catalogues (application/i18n.py)."""

from __future__ import annotations

from application.i18n import N_

STAGES = {
    "applied": N_("Registered application"), "assessment": N_("Under assessment"),
    "waiting": N_("Waiting for an apartment"),
    "offered": N_("Offered an apartment, awaiting the landlord"),
    "approved": N_("Approved by the landlord, awaiting move-in"),
    "training": N_("Training phase"), "takeover_review": N_("Referred for takeover"),
    "takeover_approved": N_("Approved for takeover of the lease"), "closed": N_("Closed"),
}
COLUMNS = {
    "case": N_("Case"), "client": N_("Client"), "target_group": N_("Target group"),
    "district": N_("District"), "programme": N_("Programme"),
    "decision_date": N_("Decision date"), "days_waiting": N_("Days waiting"),
    "status": N_("Status"), "executed_on": N_("Executed on"), "group": N_("Period"),
    "count": N_("Count"), "mean_days": N_("Mean (days)"), "median_days": N_("Median (days)"),
    "p90_days": N_("90th percentile (days)"), "applications": N_("Applications"),
    "grants": N_("Grants"), "active_at_end": N_("Active at end"),
    "net_change": N_("Net change"), "permanent_share": N_("Share to permanent housing"),
    "takeovers": N_("Takeovers"), "pilot": N_("Housing pilot"), "cases": N_("Cases"),
    "overdue_visits": N_("Overdue visits"), "notices": N_("Notices"),
    "reached_within_48_hours": N_("Reached within 48 h"),
    "share_reached_within_48_hours": N_("Share reached within 48 h"),
    "escalated": N_("Escalated"), "evictions_averted": N_("Evictions averted"),
    "evictions_executed": N_("Evictions executed"),
    "housing_cases_opened": N_("Housing cases opened"), "quarter": N_("Quarter"),
    "ivo_count": N_("Unexecuted decisions"), "recorded": N_("Recorded"),
    "subject": N_("Who"), "action": N_("Action"), "outcome": N_("Outcome"),
    "relation": N_("Relation"), "roles": N_("Roles"), "at": N_("When"),
    "outflow": N_("Outflow (all exits)"), "change": N_("Change from the previous quarter"),
    "trend": N_("Trend"), "landlord": N_("Landlord"), "vacated": N_("Vacated"),
    "relet": N_("Let again"), "reuse_percent": N_("Reuse rate (%)"), "year": N_("Year"),
    "new_tenants": N_("New tenants"), "completed": N_("Completed the course"),
    "completion_percent": N_("Completion (%)"), "deadline": N_("Three-month limit"),
}

DUE = {
    "unexecuted_decision": N_("Granted decision not executed: the three months end"),
    "home_visit": N_("Support visit"), "support_visit": N_("Support visit"),
    "follow_up": N_("Quarterly follow-up meeting"),
    "monthly_checklist": N_("Monthly checklist: rent, home insurance, housing queues"),
    "takeover_eligible": N_("Minimum training period reached: consider takeover"),
    "arrears_without_plan": N_("Rent arrears without a repayment plan"),
    "stalled": N_("Stalled in a stage"),
    "pilot_missing": N_("No housing pilot assigned"),
    "plan_missing": N_("No individual plan yet"), "sub_goal": N_("Follow up a sub-goal"),
    "support_interrupted": N_("Support interrupted: report to the inspectorate"),
    "lease_renewal": N_("Time-limited lease: renew it"),
    "instalment_missed": N_("Repayment plan: instalment missed"),
    "inspection": N_("Technical inspection of the apartment"),
    "coordinator_meeting": N_("Coordinator meeting"),
}


def due_key(kind: str) -> str:
    """The label of a due item's kind: `stalled:waiting` and `sub_goal:rent` under their
    family, an escalation under the item it escalates."""
    kind = kind.removeprefix("escalation:")
    return kind.split(":", 1)[0] if kind.startswith(("stalled:", "sub_goal:")) else kind
