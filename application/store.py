"""The application service: one method per use case, get → command → save.

Every command has an id, and the id belongs to its target (case, apartment or notice): the
same id on another case is another command. Applying a command whose id was already applied
to the same target records nothing and returns the first result: a `ProcessedCommand` marker
is saved in the same atomic save as the events it caused, so a Temporal activity retried
after a lost reply never doubles a step. A batch of lines (one import update) is saved
atomically too, with a `ProcessedBatch` marker holding every line's result, so a retried batch
answers exactly as the first run did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import structlog
from eventsourcing.application import AggregateNotFoundError, Application, Repository
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import ApplicationRecorder, JSONTranscoder, Transcoding

from application.free_text import check_sealed, text_context
from application.keys import DecryptionError, KeyRing, blind_index
from config import postgres
from domain.apartment import Apartment, Status, apartment_uuid
from domain.case import Case, Stage, case_uuid
from domain.commands import (
    Apply,
    CourseSession,
    Decide,
    Exit,
    LandlordDecision,
    MoveIn,
    Offer,
    RecordVisit,
    RegisterApartment,
    RentArrears,
    ReturnApartment,
)
from domain.due import CASE_FILE_KINDS, CASE_FILE_PREFIXES
from domain.errors import N_, DomainError
from domain.identity import ClientIdentity, IdentityTombstone, PersonalNumberClaim, identity_uuid
from domain.notice import notice_uuid
from domain.personal_number import parse_personal_number
from domain.policy import Policy
from domain.steps import missing_fields, target_of
from domain.text import is_sealed
from domain.views import CaseSnapshot, LineResult

MARKER_NAMESPACE = uuid5(NAMESPACE_URL, "urn:housing-chain:command")


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


log = structlog.get_logger("store")


class ProcessedCommand(Aggregate):
    """Marks a command id as applied to one target (a case, apartment or notice), with the
    result its first run gave.

    A command id belongs to its target: the same id sent to another case is another command.
    Markers saved before this rule are keyed by the command id alone (`target=None`); see
    `_UnitOfWork.previous_result` for when such a legacy marker still counts.
    """

    @staticmethod
    def create_id(command_id: str, target: UUID | str | None = None) -> UUID:
        if target is None:
            return uuid5(MARKER_NAMESPACE, f"command:{command_id}")
        key = target.hex if isinstance(target, UUID) else target
        return uuid5(MARKER_NAMESPACE, f"command:{key}:{command_id}")

    @event("Processed")
    def __init__(self, command_id: str, result: dict[str, Any], target: str | None = None) -> None:
        self.command_id = command_id
        self.result = result
        self.target = target  # the target aggregate's id (hex); None on a legacy marker


class ProcessedBatch(Aggregate):
    @staticmethod
    def create_id(batch_id: str) -> UUID:
        return uuid5(MARKER_NAMESPACE, f"batch:{batch_id}")

    @event("Processed")
    def __init__(self, batch_id: str, results: list[dict[str, Any]]) -> None:
        self.batch_id = batch_id
        self.results = results


def marker_target(step: Any) -> UUID:
    """The aggregate a step's command id belongs to: its notice, else its case, else its
    apartment (a notice's `open_case` names a case too, but it is the notice's step)."""
    notice = getattr(step, "notice", None)
    if notice:
        return notice_uuid(notice)
    case = getattr(step, "case", None)
    if case:
        return case_uuid(case)
    return apartment_uuid(getattr(step, "apartment", None) or "")


def _mutate_each(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's `project_aggregate` without its `assert isinstance(event,
    CanMutateProtocol)` per event: an isinstance against a runtime-checkable Protocol walks the
    protocol's attributes every time, and was a third of a step's time in the store (every
    event stored here is one of our aggregates' events, and each has `mutate`)."""
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class _Repository(Repository[UUID]):
    def get(self, aggregate_id: UUID, **options: Any) -> Any:
        options.setdefault("projector_func", _mutate_each)
        return super().get(aggregate_id, **options)


class _Transcoded(Application[UUID]):
    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def construct_recorder(self) -> ApplicationRecorder:
        if self.factory.env_create_table() and type(self.factory).__module__.endswith("postgres"):
            with postgres.creating_tables(self.env):
                return super().construct_recorder()
        return super().construct_recorder()

    def construct_repository(self) -> Repository[UUID]:
        repository = super().construct_repository()
        repository.__class__ = _Repository  # the same repository; `get` projects with _mutate_each
        return repository


@dataclass
class _UnitOfWork:
    """Aggregates loaded and changed during one call, saved together at the end."""

    app: HousingChain
    loaded: dict[UUID, Aggregate] = field(default_factory=dict)
    markers: list[Aggregate] = field(default_factory=list)
    seen_commands: dict[str, LineResult] = field(default_factory=dict)

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self.loaded:
            try:
                self.loaded[aggregate_id] = self.app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        return self.loaded[aggregate_id]

    def case(self, case_id: str) -> Case:
        case = self.get(case_uuid(case_id))
        if case is None:
            raise DomainError(N_("case {case} does not exist: apply first").format(case=case_id))
        assert isinstance(case, Case)
        return case

    def apartment(self, apartment_id: str) -> Apartment:
        apartment = self.get(apartment_uuid(apartment_id))
        if apartment is None:
            raise DomainError(N_("apartment {apartment} is not registered in the stock").format(
                apartment=apartment_id))
        assert isinstance(apartment, Apartment)
        return apartment

    def previous_result(self, command_id: str, target: UUID) -> LineResult | None:
        """The first result of this command on this target, or None.

        A legacy marker (keyed by the command id alone, saved before ids belonged to their
        target) counts only when the target's own events carry that command id: then the
        step really was applied here. Otherwise it was another case's command (or a system
        note that recorded nothing, whose domain check refuses a repeat anyway)."""
        seen = self.seen_commands.get(f"{target.hex}:{command_id}")
        if seen is not None:
            return seen
        for key in (ProcessedCommand.create_id(command_id, target), None):
            try:
                marker = self.app.repository.get(key or ProcessedCommand.create_id(command_id))
            except AggregateNotFoundError:
                continue
            if key is None and not self._carries(target, command_id):
                return None
            return LineResult.model_validate(marker.result)
        return None

    def _carries(self, target: UUID, command_id: str) -> bool:
        events = self.app.events.get(target)
        return any(getattr(e, "command_id", None) == command_id for e in events)

    def mark(self, command_id: str, target: UUID, result: LineResult,
             step_type: str | None = None, sent: dict[str, str | None] | None = None) -> None:
        """The marker of an applied command, saved with its events; with the step's type and
        (`sent`) the digest of the request that sent it and who sent it, so that the same
        command id sent again for another step, by another person or with other fields can
        be told apart from a retry."""
        saved = result.model_dump()
        if step_type:
            saved["step_type"] = step_type  # LineResult ignores these when the marker is read
        saved.update({k: v for k, v in (sent or {}).items() if v})
        self.markers.append(ProcessedCommand(command_id=command_id, result=saved,
                                             target=target.hex))
        self.seen_commands[f"{target.hex}:{command_id}"] = result

    def pending(self) -> list[Aggregate]:
        return [a for a in self.loaded.values() if a.pending_events] + self.markers

    def loaded_case(self, steps: Sequence[Any]) -> Case | None:
        """The case of the steps (one case: a batch holds the lines of one) if it was loaded;
        after the save, the aggregate holds exactly what a read from the store would give."""
        case_id = getattr(steps[0], "case", None) if steps else None
        case = self.loaded.get(case_uuid(case_id)) if case_id else None
        return case if isinstance(case, Case) else None


class HousingChain(_Transcoded):
    """Cases and the apartment stock."""

    name = "HousingChain"
    # set by whoever opens the store with settings: reasons and notes typed by caseworkers are
    # then stored encrypted with the client's data key; without one (unit tests) as typed
    keyring: KeyRing | None = None

    def run(self, steps: Sequence[Any], **options: Any) -> list[LineResult]:
        """Apply steps in order, each accepted or refused on its own; save once (`run_loaded`,
        whose keyword options these are)."""
        return self.run_loaded(steps, **options)[0]

    def run_loaded(
        self,
        steps: Sequence[Any],
        *,
        today: date,
        policy: Policy,
        batch_id: str | None = None,
        recorded_by: str | None = None,
    ) -> tuple[list[LineResult], Case | None]:
        """Apply steps in order, each accepted or refused on its own; save once. Answers the
        results and the steps' case as saved (None when no step loaded one), so that the
        workflow's snapshot needs no second read of the case.

        A batch id, like a command id, belongs to its case: the batch marker is keyed by the
        first step's target too (a batch holds the lines of one case). A batch retried across
        this change finds no marker and is answered line by line from the command markers."""
        if batch_id is not None and steps:
            batch_id = f"{marker_target(steps[0]).hex}:{batch_id}"
        if batch_id is not None:
            try:
                batch = self.repository.get(ProcessedBatch.create_id(batch_id))
                return [
                    LineResult.model_validate(r).model_copy(update={"duplicate": r["accepted"]})
                    for r in batch.results
                ], None
            except AggregateNotFoundError:
                pass
        unit = _UnitOfWork(self)
        results = [self._run_one(step, unit, today, policy, recorded_by=recorded_by)
                   for step in steps]
        if batch_id is not None:
            unit.markers.append(
                ProcessedBatch(batch_id=batch_id, results=[r.model_dump() for r in results])
            )
        self.save(*unit.pending())
        return results, unit.loaded_case(steps)

    def execute(self, step: Any, *, today: date, policy: Policy,
                recorded_by: str | None = None, request: str | None = None,
                sent_as: str | None = None) -> LineResult:
        """One step; raises DomainError when refused (nothing recorded)."""
        return self.execute_loaded(step, today=today, policy=policy, recorded_by=recorded_by,
                                   request=request, sent_as=sent_as)[0]

    def execute_loaded(self, step: Any, *, today: date, policy: Policy,
                       recorded_by: str | None = None, request: str | None = None,
                       sent_as: str | None = None) -> tuple[LineResult, Case | None]:
        """`execute`, and the step's case as saved (None for a step on no case). `request`:
        the digest of the request that sent it, kept in its marker with who sent it and the
        request's own id (`sent_as`)."""
        unit = _UnitOfWork(self)
        result = self._run_one(step, unit, today, policy, raise_refusal=True,
                               recorded_by=recorded_by, request=request, sent_as=sent_as)
        self.save(*unit.pending())
        return result, unit.loaded_case([step])

    def _run_one(
        self, step: Any, unit: _UnitOfWork, today: date, policy: Policy,
        raise_refusal: bool = False, recorded_by: str | None = None,
        request: str | None = None, sent_as: str | None = None,
    ) -> LineResult:
        """One step; its marker remembers the result and, when the person who recorded the
        step is not its actor (older records imported on someone's behalf), who recorded it."""
        command_id = step.id
        target = marker_target(step)
        previous = unit.previous_result(command_id, target)
        if previous is not None:
            return previous.model_copy(update={"duplicate": True})
        before = {k: len(a.pending_events) for k, a in unit.loaded.items()}
        try:
            touched = self._dispatch(step, unit, today, policy)
        except DomainError as exc:
            if raise_refusal:
                raise
            return LineResult(accepted=False, command_id=command_id, reason=str(exc))
        events = [
            type(e).__name__
            for k, a in unit.loaded.items()
            for e in a.pending_events[before.get(k, 0):]
        ]
        stage = touched.stage.value if isinstance(touched, Case) else touched.status.value
        result = LineResult(accepted=True, command_id=command_id, stage=stage, events=events,
                            recorded_by=recorded_by if recorded_by != step.actor else None)
        unit.mark(command_id, target, result, step.type,
                  sent={"request": request, "sent_by": recorded_by, "sent_as": sent_as}
                  if request else None)
        return result

    def _dispatch(self, step: Any, unit: _UnitOfWork, today: date, policy: Policy) -> Aggregate:
        missing = missing_fields(step)
        if missing:
            raise DomainError(N_("{command} {target}: needs {fields}").format(
                command=step.type, target=target_of(step), fields=", ".join(missing)))
        kw = {"on": step.on, "actor": step.actor, "command_id": step.id, "today": today}
        if isinstance(step, RegisterApartment):
            if unit.get(apartment_uuid(step.apartment)) is not None:
                raise DomainError(N_("apartment {apartment} is already registered").format(
                    apartment=step.apartment))
            apartment = Apartment.register(step.apartment, step.landlord, step.rooms, **kw,
                                           accessible=step.accessible,
                                           landlord_type=step.landlord_type)
            unit.loaded[apartment.id] = apartment
            return apartment
        if step.type in ("apartment_to_repair", "apartment_repaired"):
            apartment = unit.apartment(step.apartment)
            apartment.check_repair(step.type, step.on)
            change = apartment.to_repair if step.type == "apartment_to_repair" else apartment.repaired
            change(on=step.on, actor=step.actor, command_id=step.id)
            return apartment
        if isinstance(step, ReturnApartment):
            apartment = unit.apartment(step.apartment)
            apartment.check_return(step.on)
            apartment.return_to_landlord(on=step.on, actor=step.actor, command_id=step.id)
            return apartment
        if isinstance(step, Apply):
            existing = unit.get(case_uuid(step.case))
            if existing is not None:
                assert isinstance(existing, Case)
                raise DomainError(N_("case {case} already exists ({stage}); a new application needs "
                                     "a new case id").format(case=step.case,
                                                             stage=existing.stage_label))
            c = step.client
            case = Case.register(
                step.case, c.id, c.target_group.value, c.district, c.household.adults,
                c.household.children, c.housing_situation.value, step.referral.value, **kw,
                sex=c.sex.value if c.sex else None, birth_year=c.birth_year,
            )
            unit.loaded[case.id] = case
            return case

        case = unit.case(step.case)
        ev = {"on": step.on, "actor": step.actor, "command_id": step.id}
        if isinstance(step, Offer):
            case.check_step("offer", step.on, today)
            apartment = unit.apartment(step.apartment)
            apartment.check_offer(step.case, step.on)
            case.offer(step.apartment, **kw)
            apartment.offer_to(case=step.case, **ev)
        elif isinstance(step, LandlordDecision):
            case.check_step("landlord_decision", step.on, today)
            apartment = unit.apartment(case.apartment or "")
            apartment.check_held_by("landlord_decision", step.case, step.on, Status.OFFERED)
            case.landlord_decision(step.approved, self._seal(case, step.reason), **kw,
                                   reason_code=step.reason_code,
                                   reason_codes=policy.reason_codes_for("landlord"))
            if not step.approved:
                apartment.withdraw_offer(case=step.case, **ev)
        elif isinstance(step, MoveIn):
            case.check_step("move_in", step.on, today)
            apartment = unit.apartment(step.apartment)
            apartment.check_held_by("move_in", step.case, step.on, Status.OFFERED)
            case.move_in(step.apartment, **kw, pilot_at_move_in=policy.pilot_at_move_in,
                         lease_end=step.lease_end)
            apartment.occupy(case=step.case, **ev)
        elif isinstance(step, Exit):
            self._exit(case, step, unit, today, kw, ev)
        elif isinstance(step, Decide):
            programme = step.programme.value if step.programme else None
            case.decide(step.outcome, programme, self._seal(case, step.reason), **kw,
                        reason_code=step.reason_code,
                        reason_codes=policy.reason_codes_for("denial"))
        elif isinstance(step, RecordVisit):
            checklist = step.checklist.model_dump() if step.checklist else None
            case.record_visit(step.kind.value, checklist, **kw)
        elif isinstance(step, CourseSession):
            case.course_session(step.session, **kw)
        elif isinstance(step, RentArrears):
            case.rent_arrears(step.amount, **kw)
        elif step.type == "start_assessment":
            case.start_assessment(**kw)
        elif step.type == "repayment_plan":
            case.repayment_plan(**kw, instalments=[
                {"amount": str(i.amount), "due": i.due.isoformat()} for i in step.instalments])
        elif step.type == "support_level":
            case.support_level(step.level, policy.support_levels, **kw)
        elif step.type == "rent_payment":
            case.rent_payment(step.amount, **kw)
        elif step.type == "complaint":
            case.complaint(self._seal(case, step.note), **kw, kind=step.kind.value)
        elif step.type == "refer_takeover":
            case.refer_takeover(
                policy.takeover_minimum(case.programme or ""), **kw,
                warnings_within_months=policy.refuse_referral_with_warnings_within_months)
        elif step.type == "takeover_decision":
            case.takeover_decision(
                step.approved, self._seal(case, step.reason), **kw, reason_code=step.reason_code,
                reason_codes=policy.reason_codes_for("takeover"),
                credit_check=step.credit_check.model_dump() if step.credit_check else None,
                references=step.references.model_dump() if step.references else None)
        elif step.type == "renew_lease":
            case.renew_lease(step.lease_end, **kw)
        elif step.type == "assign":
            case.assign(step.role, step.to, **kw)
        elif step.type == "plan":
            case.plan(self._seal(case, step.goal) or "", [
                {"id": g.id, "goal": self._seal(case, g.goal) or "", "responsible": g.responsible,
                 "follow_up": g.follow_up.isoformat()} for g in step.sub_goals], **kw)
        elif step.type == "temporary_placement":
            case.temporary_placement(step.placement, step.kind.value, step.start or step.on,
                                     step.end, step.cost_per_night, **kw)
        elif step.type == "placement_ended":
            case.placement_ended(step.placement, step.end or step.on, **kw)
        elif step.type == "move_apartment":
            case.check_step("move_apartment", step.on, today)
            old = unit.apartment(case.apartment or "")
            old.check_held_by("move_apartment", step.case, step.on, Status.OCCUPIED)
            new = unit.apartment(step.apartment)
            if new is not old:
                new.check_move_into(step.on)
            moved_from = case.apartment
            case.move_apartment(step.apartment, **kw)
            old.vacate(case=step.case, **ev)
            new.move_into(case=step.case, from_apartment=moved_from, **ev)
        elif step.type == "support_interrupted":
            case.support_interrupted(step.kind.value, **kw)
        elif step.type == "support_resumed":
            case.support_resumed(**kw)
        elif step.type == "plan_review":
            case.plan_review([
                {"sub_goal": r.sub_goal, "result": r.result, "note": self._seal(case, r.note) or "",
                 "next_follow_up": r.next_follow_up.isoformat() if r.next_follow_up else None}
                for r in step.reviews], **kw)
        else:  # pragma: no cover - the command models are a closed union
            raise DomainError(f"unknown step {step.type}")
        return case

    def _seal(self, case: Case, text: str | None) -> str | None:
        """Free text belongs to the client: encrypted with their data key (forgettable payload),
        so erasing the client erases it in every event. Empty text stays empty, so the case's
        own checks (a denial needs a reason) still see whether there is any."""
        if not text or self.keyring is None:
            return text
        if is_sealed(text):  # sealed at the front door (application/free_text.py)
            return check_sealed(self.keyring, case.client_id, text, text_context(case.case_id),
                                f"case {case.case_id}")
        return self.keyring.encrypt(case.client_id, text, text_context(case.case_id))

    def _open(self, owner: str, case_id: str, value: Any) -> Any:
        if isinstance(value, list):  # a plan's sub-goals, a review's notes
            return [self._open(owner, case_id, v) for v in value]
        if isinstance(value, dict):
            return {k: self._open(owner, case_id, v) for k, v in value.items()}
        if not KeyRing.is_token(value):
            return value
        if self.keyring is None:
            return "[encrypted]"
        text = None
        with contextlib.suppress(DecryptionError):  # a destroyed key made anew reads as erased
            text = self.keyring.decrypt(owner, value, text_context(case_id))
        return ERASED if text is None else text

    def _exit(
        self, case: Case, step: Exit, unit: _UnitOfWork, today: date,
        kw: dict[str, Any], ev: dict[str, Any],
    ) -> None:
        case.check_step("exit", step.on, today)
        stage = case.stage
        apartment = unit.apartment(case.apartment) if case.apartment else None
        if apartment is not None:
            held = Status.OFFERED if stage in (Stage.OFFERED, Stage.APPROVED) else Status.OCCUPIED
            apartment.check_held_by("exit", case.case_id, step.on, held)
        case.exit(step.destination.value, **kw)
        if apartment is None:
            return
        if stage in (Stage.OFFERED, Stage.APPROVED):
            apartment.withdraw_offer(case=case.case_id, **ev)
        elif step.destination.value == "first_hand_lease":
            apartment.hand_over(case=case.case_id, **ev)
        else:
            apartment.vacate(case=case.case_id, **ev)

    # --- system notes, raised by the workflow's timers --------------------------------

    def note_due(self, case_id: str, kind: str, due: date, quarter: int, command_id: str,
                 today: date | None = None) -> bool:
        """Record a deadline or overdue item; False when it no longer applies."""
        unit = _UnitOfWork(self)
        if unit.previous_result(command_id, case_uuid(case_id)) is not None:
            return False
        case = unit.case(case_id)
        if kind == "unexecuted_decision":
            noted = case.note_unexecuted(quarter, command_id=command_id)
        elif kind == "takeover_eligible":
            noted = case.note_takeover_eligible(due, command_id=command_id)
        elif kind.startswith("stalled:"):
            noted = case.note_stalled(kind.split(":", 1)[1], case.stage_since, due,
                                      command_id=command_id)
        elif kind in CASE_FILE_KINDS or kind.startswith(CASE_FILE_PREFIXES):
            noted = case.note_case_file_due(kind, due, command_id=command_id)
        elif kind.startswith("escalation:"):
            noted = case.note_escalated(kind.split(":", 1)[1], due, today or due,
                                        command_id=command_id)
        else:
            noted = case.note_overdue(kind, due, command_id=command_id)
        result = LineResult(accepted=noted, command_id=command_id, stage=case.stage.value)
        unit.mark(command_id, case_uuid(case_id), result)
        self.save(*unit.pending())
        return noted

    # --- queries -----------------------------------------------------------------------

    def processed(self, command_id: str, target: UUID) -> LineResult | None:
        """The first result of a command already applied to this target, or None."""
        return _UnitOfWork(self).previous_result(command_id, target)

    def processed_step(self, step: Any) -> LineResult | None:
        """The first result of this step's command id on its own case, apartment or notice."""
        return self.processed(step.id, marker_target(step))

    def first_sent(self, step: Any) -> dict[str, Any]:
        """What the marker of this step's command id on its target says of the step first
        taken under it: `step_type` (markers since 2026-12-03), `request` and `sent_by`
        (since 2026-12-04, for a step sent through the front door), `sent_as` (since
        2026-12-05); {} without a marker."""
        try:
            marker = self.repository.get(ProcessedCommand.create_id(step.id, marker_target(step)))
        except AggregateNotFoundError:
            return {}
        return {k: marker.result[k] for k in ("step_type", "request", "sent_by", "sent_as")
                if marker.result.get(k)}

    def get_case(self, case_id: str) -> Case:
        try:
            case = self.repository.get(case_uuid(case_id))
        except AggregateNotFoundError:
            raise DomainError(N_("case {case} does not exist").format(case=case_id)) from None
        assert isinstance(case, Case)
        return case

    def snapshot(self, case_id: str) -> CaseSnapshot:
        return snapshot_of(self.get_case(case_id))

    def recorded(self, case_id: str) -> tuple[CaseSnapshot, list[str]] | None:
        """What a repaired workflow starts from: the case's snapshot and the command ids its
        events carry, oldest first (None when the store has no such case)."""
        try:
            case = self.get_case(case_id)
        except DomainError:
            return None
        ids = [getattr(e, "command_id", None) for e in self.events.get(case_uuid(case_id))]
        return snapshot_of(case), list(dict.fromkeys(i for i in ids if i))

    def get_apartment(self, apartment_id: str) -> Apartment:
        try:
            apartment = self.repository.get(apartment_uuid(apartment_id))
        except AggregateNotFoundError:
            raise DomainError(N_("apartment {apartment} is not registered").format(
                apartment=apartment_id)) from None
        assert isinstance(apartment, Apartment)
        return apartment

    def history(self, case_id: str) -> list[dict[str, Any]]:
        """The case's domain events, as a supervisor reads them: free text decrypted, or
        "[erased]" once the client's data key is destroyed."""
        owner = self.get_case(case_id).client_id
        target = case_uuid(case_id)
        recorded_by: dict[str, str | None] = {}
        rows = []
        for e in self.events.get(target):
            data = {
                k: v for k, v in e.__dict__.items()
                if k not in ("originator_id", "originator_version", "timestamp", "on", "actor",
                             "command_id", "originator_topic")
            }
            rows.append({
                "version": e.originator_version,
                "event": type(e).__name__,
                "on": getattr(e, "on", None),
                "recorded": e.timestamp,
                "actor": getattr(e, "actor", None),
                "command_id": getattr(e, "command_id", None),
                "details": {k: self._open(owner, case_id, v) for k, v in data.items()
                            if not (v is None and k in _NOTED_WHEN_GIVEN)},
            })
            command = rows[-1]["command_id"]
            if command and command not in recorded_by:
                recorded_by[command] = self._recorded_by(command, target)
            if command and recorded_by[command]:
                rows[-1]["recorded_by"] = recorded_by[command]
        return rows

    def _recorded_by(self, command_id: str, target: UUID) -> str | None:
        """Who recorded a command on someone else's behalf (markers since they belong to
        their target carry it; older ones never do)."""
        try:
            marker = self.repository.get(ProcessedCommand.create_id(command_id, target))
        except AggregateNotFoundError:
            return None
        return marker.result.get("recorded_by")


ERASED = "[erased]"
# what an event carries only when it was given (a note on a grant or an approval)
_NOTED_WHEN_GIVEN = frozenset({"reason"})


def snapshot_of(case: Case) -> CaseSnapshot:
    return CaseSnapshot(
        case=case.case_id,
        stage=case.stage.value,
        stage_label=case.stage_label,
        allowed=case.allowed(),
        exits=case.allowed_exits(),
        last_on=case.last_on,
        programme=case.programme,
        decision_date=case.decision_date,
        move_in_date=case.move_in_date,
        stage_since=case.stage_since,
        caseworker=case.caseworker,
        housing_pilot=case.housing_pilot,
        last_checklist=case.last_checklist,
        last_home_visit=case.last_home_visit,
        last_follow_up=case.last_follow_up,
        unexecuted_noted=case.unexecuted_noted,
        takeover_eligible_on=case.takeover_eligible_on,
        outcome=case.outcome,
        closed_on=case.closed_on,
        plan_on=case.plan_on,
        follow_ups=dict(case.follow_ups),
        sub_goal_owners=dict(case.sub_goal_owners),
        interrupted_on=getattr(case, "interrupted_on", None),
        interruption_noted=getattr(case, "interruption_noted", 0),
        lease_end=getattr(case, "lease_end", None),
        last_inspection=case.last_inspection,
        last_coordinator_meeting=getattr(case, "last_coordinator_meeting", None),
    )


class NumberClaimed(DomainError):
    """A personal identity number already registered under another client id. The message
    names that client, for the admin who imports records; a caseworker is told less
    (application.use_cases: the other client may belong to another unit)."""

    def __init__(self, client_id: str, other_client: str) -> None:
        super().__init__(f"client {client_id}: this personal identity number is already "
                         f"registered under client {other_client}")
        self.client_id = client_id
        self.other_client = other_client


def _number_key(personal_number: str) -> str:
    """A personal identity number in the one form it is compared and indexed in."""
    try:
        return parse_personal_number(personal_number).normalized
    except DomainError:
        return "".join(ch for ch in personal_number if ch.isalnum())


def _written_alike(name: str) -> str:
    """A name as compared with the registered one: case and spacing are how it was typed."""
    return " ".join(name.casefold().split())


class IdentityRegistry(_Transcoded):
    """Client identities, in a store of their own (see domain.identity)."""

    name = "Identities"
    # set by whoever opens the registry with settings: names and numbers are then stored
    # encrypted with the client's data key; without one (unit tests) they are stored as given
    keyring: KeyRing | None = None

    def check(self, client_id: str, name: str | None, personal_number: str | None) -> None:
        """Refuse an identity that must not be recorded, before anything is: one for a client
        that was erased (an old file imported again would bring the name back), or a personal
        number already registered under another client id (one person, two histories), a
        number other than the client's registered one, or another name without the client's
        number (the person in front of the caseworker): whoever opens a case for a known
        client would otherwise rewrite the identity another unit reveals."""
        if not (name or personal_number):
            return
        tombstone = self._get(IdentityTombstone.create_id(client_id))
        if tombstone is not None:
            raise DomainError(f"client {client_id} was erased on {tombstone.erased_at[:10]}: "
                              "its identity is not recorded again")
        index = self._blind_index(personal_number)
        claim = self._get(PersonalNumberClaim.create_id(index)) if index else None
        if claim is not None and claim.client_id != client_id:
            raise NumberClaimed(client_id, claim.client_id)
        current = self.lookup(client_id)
        if current is None:
            return
        own_number = bool(personal_number) and self._is_registered(current, personal_number)
        if personal_number and current.personal_number and not own_number:
            raise DomainError(N_("client {client}: another personal identity number is "
                                 "registered for this client; a new case does not change it")
                              .format(client=client_id))
        if (name and current.name and _written_alike(name) != _written_alike(current.name)
                and not own_number):
            raise DomainError(N_("client {client}: the client is registered under another "
                                 "name; give the client's personal identity number with the "
                                 "new name to correct it").format(client=client_id))

    def holds(self, client_id: str, personal_number: str | None) -> bool:
        """Whether this personal identity number is the one registered for this client (in
        any of its written forms: the blind index normalizes it)."""
        index = self._blind_index(personal_number)
        claim = self._get(PersonalNumberClaim.create_id(index)) if index else None
        return claim is not None and claim.client_id == client_id

    def record(self, client_id: str, name: str | None, personal_number: str | None) -> None:
        self.check(client_id, name, personal_number)
        current = self.lookup(client_id)
        if current is not None:  # what is registered stays (`check`), but for a name given
            # with the client's number (a correction); a missing part is added
            corrected = bool(name and personal_number) and self._is_registered(
                current, personal_number or "")
            name = name if corrected or not current.name else current.name
            personal_number = current.personal_number or personal_number
            if (current.name, current.personal_number) == (name, personal_number):
                return
        sealed = {"name": self._seal(client_id, "name", name),
                  "personal_number": self._seal(client_id, "personal_number", personal_number)}
        pending: list[Aggregate] = []
        index = self._blind_index(personal_number)
        if index and self._get(PersonalNumberClaim.create_id(index)) is None:
            pending.append(PersonalNumberClaim(blind_index=index, client_id=client_id))
        if current is None:
            pending.append(ClientIdentity(client_id=client_id, **sealed))
        else:
            identity = self.repository.get(identity_uuid(client_id))
            identity.correct(**sealed)
            pending.append(identity)
        self.save(*pending)

    def tombstone(self, client_id: str, erased_at: str) -> str:
        """Note that the client was erased (no personal data: the id and when); returns when
        it first was."""
        existing = self._get(IdentityTombstone.create_id(client_id))
        if existing is not None:
            return existing.erased_at
        self.save(IdentityTombstone(client_id=client_id, erased_at=erased_at))
        return erased_at

    def erase(self, client_id: str) -> bool:
        """Delete every stored event of the client's identity (GDPR art. 17), and the blind
        index of its personal number, so the person can be registered anew.

        Appending an 'Erased' event would keep the name in the earlier events; this store is
        separate from the case histories precisely so that its rows can be deleted outright.
        """
        current = self.lookup(client_id)
        index = self._blind_index(current.personal_number if current else None)
        ids = [identity_uuid(client_id)]
        if index:
            ids.append(PersonalNumberClaim.create_id(index))
        recorder: Any = self.recorder
        table = recorder.events_table_name
        sqlite = not type(recorder).__module__.endswith("postgres")
        erased = False
        for aggregate_id in ids:
            if not sqlite:
                sql, arg = f"DELETE FROM {table} WHERE originator_id = %s", aggregate_id
            else:
                sql, arg = f"DELETE FROM {table} WHERE originator_id = ?", aggregate_id.hex
            with recorder.datastore.transaction(commit=True) as cursor:
                if sqlite:
                    cursor.execute("PRAGMA secure_delete = ON")  # overwrite the freed pages
                cursor.execute(sql.replace("DELETE", "SELECT COUNT(*) AS n", 1), (arg,))
                row = cursor.fetchone()
                found = (row["n"] if isinstance(row, dict) else row[0]) > 0
                erased = erased or (found and aggregate_id == ids[0])
                cursor.execute(sql, (arg,))
        if sqlite:
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # and the old WAL frames
        return erased

    def erased_on(self, client_id: str) -> str | None:
        """When the client was erased (their tombstone), or None: the retention run skips
        clients already erased, so that a repeated run erases and logs nothing twice."""
        tombstone = self._get(IdentityTombstone.create_id(client_id))
        return tombstone.erased_at if tombstone is not None else None

    def vacuum(self) -> bool:
        """PostgreSQL keeps deleted rows as dead tuples until VACUUM: run it on the identity
        table after an erasure, so the ciphertext does not linger in the table's pages (its
        WAL and backups still hold it until they age out; the destroyed data key is what makes
        those copies unreadable). SQLite needs none: `erase` deletes with secure_delete and
        truncates the WAL. False when not done (SQLite, or the role may not VACUUM)."""
        recorder: Any = self.recorder
        if not type(recorder).__module__.endswith("postgres"):
            return False
        try:
            with recorder.datastore.cursor() as cursor:  # autocommit: VACUUM needs no transaction
                cursor.execute(f"VACUUM {recorder.events_table_name}")
        except Exception as exc:  # noqa: BLE001 - a missing right must not undo the erasure
            log.warning("VACUUM after erasure failed", table=recorder.events_table_name,
                        error=str(exc))
            return False
        return True

    def lookup(self, client_id: str) -> ClientIdentity | None:
        """The identity in the clear (identities recorded before encryption read as stored);
        a name whose data key was destroyed reads as None."""
        identity = self._get(identity_uuid(client_id))
        if identity is None:
            return None
        for field_name in ("name", "personal_number"):
            value = getattr(identity, field_name)
            if KeyRing.is_token(value):
                setattr(identity, field_name, self._open(client_id, field_name, value))
        return identity

    def _get(self, aggregate_id: UUID) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _seal(self, client_id: str, field_name: str, value: str | None) -> str | None:
        if not value or self.keyring is None:
            return value
        return self.keyring.encrypt(client_id, value, f"identity/{field_name}")

    def _open(self, client_id: str, field_name: str, token: str) -> str | None:
        if self.keyring is None:
            raise DomainError("this identity is encrypted: open the registry with its key ring")
        try:
            return self.keyring.decrypt(client_id, token, f"identity/{field_name}")
        except DecryptionError:
            return None  # the client's data key was destroyed and made anew: erased

    def _is_registered(self, current: ClientIdentity, personal_number: str) -> bool:
        """Whether the number is the client's registered one, however it was written."""
        return (_number_key(personal_number) == _number_key(current.personal_number or "")
                or self.holds(current.client_id, personal_number))

    def _blind_index(self, personal_number: str | None) -> str | None:
        if not personal_number or self.keyring is None:
            return None
        return blind_index(self.keyring, _number_key(personal_number))

