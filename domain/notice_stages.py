"""The stages of an eviction-prevention notice and which steps each allows, as plain data.

Pure (no eventsourcing), so the workflow's update validator refuses a step with the same
words the aggregate would use (DOMAIN.md, "eviction prevention").

A notice is one of two kinds:

* `eviction`: a tenant risks eviction (notice from the landlord or the enforcement
  authority). The caseworker tries to reach the person; if nobody has reached them by the end
  of the policy's working day (`reach_within_working_days`), outreach is required and a
  housing pilot has `outreach_hours` (48, clock time) to be at the door.
* `outreach`: an outreach assignment (uppsök). It starts where an unreached eviction notice
  is when its reach deadline passes: outreach required, the 48 hours running from
  registration. There is no reach phase.

The path:

```
reaching ──(not reached by the deadline: OutreachRequired)──► outreach_required
   │  └──assign_outreach──► outreach_assigned ◄──assign_outreach──┘
   └──contact reached / visit reached / outcome contact_made──► in_contact
any open stage ──outcome eviction_averted | eviction_executed──► closed
```

Outcomes, and which may follow which:

* `contact_made`, `meeting_booked`, `support_granted` are progress: each may be recorded once
  and only after lower ones (a later outcome may skip rungs — support granted straight after
  contact — but never go back: a meeting booked after support was granted is no outcome).
* `contact_made` may be recorded from any open stage (it is how contact made otherwise —
  the tenant called in — is recorded) and puts the notice in contact; `meeting_booked` and
  `support_granted` need the person reached.
* `eviction_averted` and `eviction_executed` close the notice, from any open stage: an
  eviction can be averted (the tenant paid, the landlord withdrew) or executed whether or not
  the social services reached the person.
* A housing case may be opened from an open notice once (`open_case`: the person has lost,
  or is about to lose, the home); record it before closing the notice with
  `eviction_executed`.
"""

from __future__ import annotations

from enum import StrEnum

from domain.errors import N_


class NoticeKind(StrEnum):
    EVICTION = "eviction"
    OUTREACH = "outreach"


class NoticeSource(StrEnum):
    LANDLORD = "landlord"
    ENFORCEMENT_AUTHORITY = "enforcement_authority"  # Kronofogden / namsmannen
    OTHER = "other"


class ContactChannel(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    LETTER = "letter"
    EMAIL = "email"
    HOME_VISIT = "home_visit"
    OTHER = "other"


class NoticeOutcome(StrEnum):
    CONTACT_MADE = "contact_made"
    MEETING_BOOKED = "meeting_booked"
    SUPPORT_GRANTED = "support_granted"
    EVICTION_AVERTED = "eviction_averted"
    EVICTION_EXECUTED = "eviction_executed"


class NoticeStage(StrEnum):
    REACHING = "reaching"
    OUTREACH_REQUIRED = "outreach_required"
    OUTREACH_ASSIGNED = "outreach_assigned"
    IN_CONTACT = "in_contact"
    CLOSED = "closed"


NOTICE_STAGE_LABELS = {
    NoticeStage.REACHING: N_("awaiting contact with the tenant"),
    NoticeStage.OUTREACH_REQUIRED: N_("awaiting outreach: no housing pilot assigned"),
    NoticeStage.OUTREACH_ASSIGNED: N_("assigned to a housing pilot for outreach"),
    NoticeStage.IN_CONTACT: N_("in contact with the tenant"),
    NoticeStage.CLOSED: N_("closed"),
}

OPEN_STAGES = (
    NoticeStage.REACHING,
    NoticeStage.OUTREACH_REQUIRED,
    NoticeStage.OUTREACH_ASSIGNED,
    NoticeStage.IN_CONTACT,
)

NOTICE_ALLOWED: dict[NoticeStage, tuple[str, ...]] = {
    NoticeStage.REACHING: ("contact_attempt", "assign_outreach", "outcome", "open_case"),
    NoticeStage.OUTREACH_REQUIRED: ("contact_attempt", "assign_outreach", "outcome", "open_case"),
    NoticeStage.OUTREACH_ASSIGNED: (
        "outreach_visit", "contact_attempt", "assign_outreach", "outcome", "open_case",
    ),
    NoticeStage.IN_CONTACT: ("outcome", "open_case"),
    NoticeStage.CLOSED: (),
}

NOTICE_NEEDS = {
    "register": N_("needs a new notice id"),
    "contact_attempt": N_("needs an open notice whose tenant is not yet reached"),
    "assign_outreach": N_("needs an open notice whose tenant is not yet reached"),
    "outreach_visit": N_("needs an outreach assignment to a housing pilot"),
    "outcome": N_("needs an open notice"),
    "open_case": N_("needs an open notice with no housing case opened from it yet"),
}

PROGRESS = (
    NoticeOutcome.CONTACT_MADE,
    NoticeOutcome.MEETING_BOOKED,
    NoticeOutcome.SUPPORT_GRANTED,
)
CLOSING = (NoticeOutcome.EVICTION_AVERTED, NoticeOutcome.EVICTION_EXECUTED)


def outcomes_allowed(stage: NoticeStage | str, last_outcome: str | None) -> tuple[str, ...]:
    """The outcomes that may be recorded now (see the module's rules)."""
    stage = NoticeStage(stage)
    if stage is NoticeStage.CLOSED:
        return ()
    rank = PROGRESS.index(NoticeOutcome(last_outcome)) + 1 if last_outcome else 0
    allowed = [
        o.value for i, o in enumerate(PROGRESS, start=1)
        if i > rank and (o is NoticeOutcome.CONTACT_MADE or stage is NoticeStage.IN_CONTACT)
    ]
    return (*allowed, *(o.value for o in CLOSING))


def outcome_needs(outcome: str, stage: NoticeStage | str, last_outcome: str | None) -> str:
    """Why `outcome` may not be recorded now (call only when it is not allowed)."""
    if NoticeStage(stage) is NoticeStage.CLOSED:
        return N_("needs an open notice")
    if outcome not in {o.value for o in NoticeOutcome}:
        return N_("is not an outcome")
    if last_outcome and PROGRESS.index(NoticeOutcome(outcome)) <= PROGRESS.index(
        NoticeOutcome(last_outcome)
    ):
        return N_("may not follow {last_outcome}").format(last_outcome=last_outcome)
    return N_("needs the tenant reached (a successful contact attempt or visit, or contact_made)")


def closed_notice_refusal(notice: str, outcome: str | None) -> str:
    """A step on a notice whose workflow has ended with the notice."""
    return N_("notice {notice} is closed ({outcome}): no further steps are allowed").format(
        notice=notice, outcome=outcome)
