"""What the people who get them call the due items: the worklist's and case page's reasons and
the reminder mails' subjects (English message ids, translated by the catalogues)."""

from __future__ import annotations

from application.i18n import N_

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
