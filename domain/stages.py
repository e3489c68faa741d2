"""The stages of a case and which steps each allows: the transition table as plain data.

Pure (no eventsourcing), so the workflow's update validator refuses a step with the same
words the aggregate would use.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    APPLIED = "applied"
    ASSESSMENT = "assessment"
    WAITING = "waiting"
    OFFERED = "offered"
    APPROVED = "approved"
    TRAINING = "training"
    TAKEOVER_REVIEW = "takeover_review"
    TAKEOVER_APPROVED = "takeover_approved"
    CLOSED = "closed"


STAGE_LABELS = {
    Stage.APPLIED: "registered as an application",
    Stage.ASSESSMENT: "under assessment",
    Stage.WAITING: "waiting for an apartment",
    Stage.OFFERED: "offered an apartment, awaiting the landlord's approval",
    Stage.APPROVED: "approved by the landlord, awaiting move-in",
    Stage.TRAINING: "in the training phase",
    Stage.TAKEOVER_REVIEW: "referred to the landlord for takeover",
    Stage.TAKEOVER_APPROVED: "approved for takeover of the lease",
    Stage.CLOSED: "closed",
}

IN_HOME = (Stage.TRAINING, Stage.TAKEOVER_REVIEW, Stage.TAKEOVER_APPROVED)
GRANTED_NOT_MOVED_IN = (Stage.WAITING, Stage.OFFERED, Stage.APPROVED)
ROLES = ("caseworker", "housing_pilot")

ALLOWED: dict[Stage, tuple[str, ...]] = {
    Stage.APPLIED: ("start_assessment", "assign", "exit"),
    Stage.ASSESSMENT: ("decide", "assign", "exit"),
    Stage.WAITING: ("offer", "course_session", "assign", "exit"),
    Stage.OFFERED: ("landlord_decision", "course_session", "assign", "exit"),
    Stage.APPROVED: ("move_in", "course_session", "assign", "exit"),
    Stage.TRAINING: (
        "record_visit", "course_session", "rent_arrears", "repayment_plan", "complaint",
        "refer_takeover", "assign", "exit",
    ),
    Stage.TAKEOVER_REVIEW: (
        "takeover_decision", "record_visit", "course_session", "rent_arrears",
        "repayment_plan", "complaint", "assign", "exit",
    ),
    Stage.TAKEOVER_APPROVED: (
        "record_visit", "course_session", "rent_arrears", "repayment_plan", "complaint",
        "assign", "exit",
    ),
    Stage.CLOSED: (),
}

LEAVING = ("own_housing", "withdrawn", "deceased", "moved_away")
EXITS: dict[Stage, tuple[str, ...]] = {
    Stage.APPLIED: LEAVING,
    Stage.ASSESSMENT: LEAVING,
    Stage.WAITING: LEAVING,
    Stage.OFFERED: LEAVING,
    Stage.APPROVED: LEAVING,
    Stage.TRAINING: ("terminated", *LEAVING),
    Stage.TAKEOVER_REVIEW: ("terminated", *LEAVING),
    Stage.TAKEOVER_APPROVED: ("first_hand_lease", "terminated", *LEAVING),
    Stage.CLOSED: (),
}

NEEDS = {
    "apply": "needs a new case id",
    "start_assessment": "needs a registered application",
    "decide": "needs an assessment",
    "offer": "needs a granted decision and no open offer",
    "landlord_decision": "needs an open offer",
    "move_in": "needs an offer approved by the landlord",
    "record_visit": "needs the client to live in the training apartment",
    "course_session": "needs a granted decision",
    "rent_arrears": "needs a tenancy in the training apartment",
    "repayment_plan": "needs a tenancy in the training apartment",
    "complaint": "needs a tenancy in the training apartment",
    "refer_takeover": "needs the training phase",
    "takeover_decision": "needs a referral for takeover",
    "assign": "needs an open case",
    "exit": "needs an open case",
}
