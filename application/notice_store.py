"""Eviction-prevention notices in the application service: get → command → save.

These functions work on the `HousingChain` application (the same event store as the cases)
and keep its guarantees: every step has a command id, and a `ProcessedCommand` marker is
saved in the same atomic save as the events it caused, so a retried activity never records a
step twice and answers as the first run did.

`open_case_from_notice` opens the housing case through the ordinary Case path (the `apply`
step with its own marker, command id `<step id>:apply`) and records `HousingCaseOpened` on
the notice — both aggregates and both markers in one save.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from application.free_text import check_sealed, note_context
from application.keys import DecryptionError, KeyRing
from application.store import ERASED, HousingChain, _UnitOfWork
from domain.commands import Apply, Client
from domain.errors import N_, DomainError
from domain.notice import Notice, notice_uuid
from domain.notice_commands import (
    AssignOutreach,
    ContactAttempt,
    OpenCase,
    OutreachVisit,
    RecordOutcome,
    RegisterNotice,
    case_apply_id,
)
from domain.notice_deadlines import reach_deadline
from domain.notice_stages import NoticeKind
from domain.notice_views import NoticeSnapshot
from domain.policy import Policy
from domain.steps import missing_fields
from domain.text import is_sealed
from domain.views import LineResult

NOTICE_EVENT_FIELDS = ("originator_id", "originator_version", "timestamp", "on", "actor",
                       "command_id", "originator_topic")


def execute_notice_step(
    app: HousingChain, step: Any, *, today: date, policy: Policy, now: datetime | None = None,
    sent: dict[str, str | None] | None = None,
) -> LineResult:
    """Apply one notice step; raises DomainError when refused (nothing recorded).

    `now` is the moment of registration (an outreach assignment's 48 hours start then);
    the workflow passes its own clock. `sent`: what the marker keeps of the request that
    sent the step (`_UnitOfWork.mark`).
    """
    unit = _UnitOfWork(app)
    target = notice_uuid(step.notice)
    previous = unit.previous_result(step.id or "", target)
    if previous is not None:
        return previous.model_copy(update={"duplicate": True})
    notice = _dispatch(app, step, unit, today, policy, now or datetime.now(UTC))
    pending = sorted((e for a in unit.loaded.values() for e in a.pending_events),
                     key=lambda e: e.timestamp)  # as they happened: Applied, then the notice's
    events = [type(e).__name__ for e in pending]
    result = LineResult(
        accepted=True, command_id=step.id, stage=notice.stage.value, events=events
    )
    unit.mark(step.id, target, result, step.type, sent=sent)
    app.save(*unit.pending())
    return result


def open_case_from_notice(
    app: HousingChain, step: OpenCase, *, today: date, policy: Policy
) -> LineResult:
    """Open a housing case from the notice (one atomic save); raises DomainError."""
    return execute_notice_step(app, step, today=today, policy=policy)


def _notice(unit: _UnitOfWork, notice_id: str) -> Notice:
    notice = unit.get(notice_uuid(notice_id))
    if notice is None:
        raise DomainError(N_("notice {notice} does not exist: register it first").format(
            notice=notice_id))
    assert isinstance(notice, Notice)
    return notice


def _dispatch(
    app: HousingChain, step: Any, unit: _UnitOfWork, today: date, policy: Policy, now: datetime
) -> Notice:
    missing = missing_fields(step)
    if missing:
        raise DomainError(N_("notice {notice}: {command} needs {fields}").format(
            notice=step.notice, command=step.type, fields=", ".join(missing)))
    kw = {"on": step.on, "actor": step.actor, "command_id": step.id, "today": today}
    if isinstance(step, RegisterNotice):
        existing = unit.get(notice_uuid(step.notice))
        if existing is not None:
            assert isinstance(existing, Notice)
            raise DomainError(N_("notice {notice} already exists ({stage}); a new notice needs a "
                                 "new notice id").format(notice=step.notice,
                                                         stage=existing.stage_label))
        notice = Notice.register(
            step.notice, step.kind.value, step.source.value, step.client, step.district,
            step.eviction_date, step.pilot, at=now, outreach_hours=policy.outreach_hours,
            reach_by=reach_deadline(step.on, policy) if step.kind == NoticeKind.EVICTION else None,
            **kw,
        )
        unit.loaded[notice.id] = notice
        return notice
    notice = _notice(unit, step.notice)
    if isinstance(step, ContactAttempt):
        notice.contact_attempt(step.reached, step.channel.value, **kw)
    elif isinstance(step, AssignOutreach):
        notice.assign_outreach(step.pilot, **kw)
    elif isinstance(step, OutreachVisit):
        notice.outreach_visit(step.reached, seal_note(app, notice, step.note), **kw)
    elif isinstance(step, RecordOutcome):
        notice.record_outcome(step.outcome.value, **kw)
    elif isinstance(step, OpenCase):
        _open_case(app, notice, step, unit, today, policy)
    else:  # pragma: no cover - the command models are a closed union
        raise DomainError(f"unknown notice step {step.type}")
    return notice


def _open_case(
    app: HousingChain, notice: Notice, step: OpenCase, unit: _UnitOfWork, today: date,
    policy: Policy,
) -> None:
    notice.check_step("open_case", step.on, today)  # refuse before the case is created
    apply = Apply(
        case=step.case,
        client=Client(
            id=notice.client_id, target_group=step.target_group,
            district=step.district or notice.district, household=step.household,
            housing_situation=step.housing_situation,
        ),
        referral=step.referral, on=step.on, actor=step.actor, id=case_apply_id(step.id),
    )
    # The ordinary Case path: the existing-case check, Case.register and the apply's own
    # ProcessedCommand marker, all pending in `unit` until the one save.
    app._run_one(apply, unit, today, policy, raise_refusal=True)
    notice.case_opened(step.case, on=step.on, actor=step.actor, command_id=step.id, today=today)


# --- system notes, raised by the workflow's timers --------------------------------------


def note_unreached(
    app: HousingChain, notice_id: str, deadline: datetime, outreach_due: datetime, *,
    at: datetime, on: date, command_id: str,
) -> bool:
    """Record that nobody reached the tenant by `deadline` (outreach required)."""
    return _note(app, notice_id, command_id, lambda n: n.note_unreached(
        deadline, outreach_due, at=at, on=on, command_id=command_id))


def note_escalated(
    app: HousingChain, notice_id: str, deadline: datetime, *, on: date, command_id: str
) -> bool:
    """Record that no outreach visit was made by `deadline` (the escalation)."""
    return _note(app, notice_id, command_id, lambda n: n.note_escalated(
        deadline, on=on, command_id=command_id))


def _note(app: HousingChain, notice_id: str, command_id: str, note) -> bool:
    unit = _UnitOfWork(app)
    previous = unit.previous_result(command_id, notice_uuid(notice_id))
    if previous is not None:
        return previous.accepted
    notice = _notice(unit, notice_id)
    noted = note(notice)
    result = LineResult(accepted=noted, command_id=command_id, stage=notice.stage.value,
                        events=[type(e).__name__ for e in notice.pending_events])
    unit.mark(command_id, notice_uuid(notice_id), result)
    app.save(*unit.pending())
    return noted


# --- queries -----------------------------------------------------------------------------


def get_notice(app: HousingChain, notice_id: str) -> Notice:
    try:
        notice = app.repository.get(notice_uuid(notice_id))
    except AggregateNotFoundError:
        raise DomainError(N_("notice {notice} does not exist").format(notice=notice_id)) from None
    assert isinstance(notice, Notice)
    return notice


def notice_snapshot(app: HousingChain, notice_id: str) -> NoticeSnapshot:
    return notice_snapshot_of(get_notice(app, notice_id))


def notice_snapshot_of(notice: Notice) -> NoticeSnapshot:
    return NoticeSnapshot(
        notice=notice.notice_id,
        kind=notice.kind,
        stage=notice.stage.value,
        stage_label=notice.stage_label,
        allowed=notice.allowed(),
        outcomes=notice.allowed_outcomes(),
        notice_date=notice.notice_date,
        last_on=notice.last_on,
        eviction_date=notice.eviction_date,
        reached_on=notice.reached_on,
        reach_by=notice.reach_by,
        pilot=notice.pilot,
        visits=notice.visits,
        unreached_deadline=notice.unreached_deadline,
        outreach_from=notice.outreach_from,
        outreach_due=notice.outreach_due,
        escalated=notice.escalated,
        last_outcome=notice.last_outcome,
        outcome=notice.outcome,
        closed_on=notice.closed_on,
        case=notice.case_id,
    )


def seal_note(app: HousingChain, notice: Notice, text: str) -> str:
    """A note from an outreach visit is about the tenant, like a case's free text: encrypted
    with the client's data key, so erasing the client erases it too. Empty stays empty."""
    if not text or app.keyring is None:
        return text
    if is_sealed(text):  # sealed at the front door (application/free_text.py)
        return check_sealed(app.keyring, notice.client_id, text, note_context(notice.notice_id),
                            f"notice {notice.notice_id}")
    return app.keyring.encrypt(notice.client_id, text, note_context(notice.notice_id))


def _open_note(app: HousingChain, notice: Notice, value: Any) -> Any:
    if not KeyRing.is_token(value):
        return value
    if app.keyring is None:
        return "[encrypted]"
    try:
        text = app.keyring.decrypt(notice.client_id, value, note_context(notice.notice_id))
    except DecryptionError:  # a destroyed key made anew: erased
        text = None
    return ERASED if text is None else text




def notice_history(app: HousingChain, notice_id: str) -> list[dict[str, Any]]:
    """The notice's domain events, as a supervisor reads them (like HousingChain.history):
    notes decrypted, or "[erased]" once the client's data key is destroyed."""
    notice = get_notice(app, notice_id)
    rows = []
    for e in app.events.get(notice_uuid(notice_id)):
        rows.append({
            "version": e.originator_version,
            "event": type(e).__name__,
            "on": getattr(e, "on", None),
            "recorded": e.timestamp,
            "actor": getattr(e, "actor", None),
            "command_id": getattr(e, "command_id", None),
            "details": {k: _open_note(app, notice, v) for k, v in e.__dict__.items()
                        if k not in NOTICE_EVENT_FIELDS},
        })
    return rows
