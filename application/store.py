"""The application service: one method per use case, get → command → save.

Every command has an id. Applying a command whose id was already applied records nothing and
returns the first result: a `ProcessedCommand` marker is saved in the same atomic save as the
events it caused, so a Temporal activity retried after a lost reply never doubles a step. A
batch of lines (one import update) is saved atomically too, with a `ProcessedBatch` marker
holding every line's result, so a retried batch answers exactly as the first run did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import JSONTranscoder, Transcoding

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
from domain.errors import DomainError
from domain.identity import ClientIdentity, identity_uuid
from domain.policy import Policy
from domain.steps import missing_fields, target_of
from domain.views import CaseSnapshot, LineResult

MARKER_NAMESPACE = uuid5(NAMESPACE_URL, "urn:housing-chain:command")


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class ProcessedCommand(Aggregate):
    """Marks a command id as applied, with the result its first run gave."""

    @staticmethod
    def create_id(command_id: str) -> UUID:
        return uuid5(MARKER_NAMESPACE, f"command:{command_id}")

    @event("Processed")
    def __init__(self, command_id: str, result: dict[str, Any]) -> None:
        self.command_id = command_id
        self.result = result


class ProcessedBatch(Aggregate):
    @staticmethod
    def create_id(batch_id: str) -> UUID:
        return uuid5(MARKER_NAMESPACE, f"batch:{batch_id}")

    @event("Processed")
    def __init__(self, batch_id: str, results: list[dict[str, Any]]) -> None:
        self.batch_id = batch_id
        self.results = results


class _Transcoded(Application[UUID]):
    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())


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
            raise DomainError(f"case {case_id} does not exist: apply first")
        assert isinstance(case, Case)
        return case

    def apartment(self, apartment_id: str) -> Apartment:
        apartment = self.get(apartment_uuid(apartment_id))
        if apartment is None:
            raise DomainError(f"apartment {apartment_id} is not registered in the stock")
        assert isinstance(apartment, Apartment)
        return apartment

    def previous_result(self, command_id: str) -> LineResult | None:
        if command_id in self.seen_commands:
            return self.seen_commands[command_id]
        try:
            marker = self.app.repository.get(ProcessedCommand.create_id(command_id))
        except AggregateNotFoundError:
            return None
        return LineResult.model_validate(marker.result)

    def pending(self) -> list[Aggregate]:
        return [a for a in self.loaded.values() if a.pending_events] + self.markers


class HousingChain(_Transcoded):
    """Cases and the apartment stock."""

    name = "HousingChain"

    def run(
        self,
        steps: Sequence[Any],
        *,
        today: date,
        policy: Policy,
        batch_id: str | None = None,
    ) -> list[LineResult]:
        """Apply steps in order, each accepted or refused on its own; save once."""
        if batch_id is not None:
            try:
                batch = self.repository.get(ProcessedBatch.create_id(batch_id))
                return [
                    LineResult.model_validate(r).model_copy(update={"duplicate": r["accepted"]})
                    for r in batch.results
                ]
            except AggregateNotFoundError:
                pass
        unit = _UnitOfWork(self)
        results = [self._run_one(step, unit, today, policy) for step in steps]
        if batch_id is not None:
            unit.markers.append(
                ProcessedBatch(batch_id=batch_id, results=[r.model_dump() for r in results])
            )
        self.save(*unit.pending())
        return results

    def execute(self, step: Any, *, today: date, policy: Policy) -> LineResult:
        """One step; raises DomainError when refused (nothing recorded)."""
        unit = _UnitOfWork(self)
        result = self._run_one(step, unit, today, policy, raise_refusal=True)
        self.save(*unit.pending())
        return result

    def _run_one(
        self, step: Any, unit: _UnitOfWork, today: date, policy: Policy,
        raise_refusal: bool = False,
    ) -> LineResult:
        command_id = step.id
        previous = unit.previous_result(command_id)
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
        result = LineResult(accepted=True, command_id=command_id, stage=stage, events=events)
        unit.markers.append(ProcessedCommand(command_id=command_id, result=result.model_dump()))
        unit.seen_commands[command_id] = result
        return result

    def _dispatch(self, step: Any, unit: _UnitOfWork, today: date, policy: Policy) -> Aggregate:
        missing = missing_fields(step)
        if missing:
            raise DomainError(f"{step.type} {target_of(step)}: needs {', '.join(missing)}")
        kw = {"on": step.on, "actor": step.actor, "command_id": step.id, "today": today}
        if isinstance(step, RegisterApartment):
            if unit.get(apartment_uuid(step.apartment)) is not None:
                raise DomainError(f"apartment {step.apartment} is already registered")
            apartment = Apartment.register(step.apartment, step.landlord, step.rooms, **kw)
            unit.loaded[apartment.id] = apartment
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
                raise DomainError(
                    f"case {step.case} already exists ({existing.stage_label}); "
                    "a new application needs a new case id"
                )
            c = step.client
            case = Case.register(
                step.case, c.id, c.target_group.value, c.district, c.household.adults,
                c.household.children, c.housing_situation.value, step.referral.value, **kw,
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
            case.landlord_decision(step.approved, step.reason, **kw)
            if not step.approved:
                apartment.withdraw_offer(case=step.case, **ev)
        elif isinstance(step, MoveIn):
            case.check_step("move_in", step.on, today)
            apartment = unit.apartment(step.apartment)
            apartment.check_held_by("move_in", step.case, step.on, Status.OFFERED)
            case.move_in(step.apartment, **kw)
            apartment.occupy(case=step.case, **ev)
        elif isinstance(step, Exit):
            self._exit(case, step, unit, today, kw, ev)
        elif isinstance(step, Decide):
            programme = step.programme.value if step.programme else None
            case.decide(step.outcome, programme, step.reason, **kw)
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
            case.repayment_plan(**kw)
        elif step.type == "complaint":
            case.complaint(step.note, **kw)
        elif step.type == "refer_takeover":
            case.refer_takeover(policy.takeover_minimum(case.programme or ""), **kw)
        elif step.type == "takeover_decision":
            case.takeover_decision(step.approved, step.reason, **kw)
        elif step.type == "assign":
            case.assign(step.role, step.to, **kw)
        else:  # pragma: no cover - the command models are a closed union
            raise DomainError(f"unknown step {step.type}")
        return case

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
        if unit.previous_result(command_id) is not None:
            return False
        case = unit.case(case_id)
        if kind == "unexecuted_decision":
            noted = case.note_unexecuted(quarter, command_id=command_id)
        elif kind == "takeover_eligible":
            noted = case.note_takeover_eligible(due, command_id=command_id)
        elif kind.startswith("stalled:"):
            noted = case.note_stalled(kind.split(":", 1)[1], case.stage_since, due,
                                      command_id=command_id)
        elif kind.startswith("escalation:"):
            noted = case.note_escalated(kind.split(":", 1)[1], due, today or due,
                                        command_id=command_id)
        else:
            noted = case.note_overdue(kind, due, command_id=command_id)
        result = LineResult(accepted=noted, command_id=command_id, stage=case.stage.value)
        unit.markers.append(ProcessedCommand(command_id=command_id, result=result.model_dump()))
        self.save(*unit.pending())
        return noted

    # --- queries -----------------------------------------------------------------------

    def processed(self, command_id: str) -> LineResult | None:
        """The first result of a command already applied, or None."""
        return _UnitOfWork(self).previous_result(command_id)

    def get_case(self, case_id: str) -> Case:
        try:
            case = self.repository.get(case_uuid(case_id))
        except AggregateNotFoundError:
            raise DomainError(f"case {case_id} does not exist") from None
        assert isinstance(case, Case)
        return case

    def snapshot(self, case_id: str) -> CaseSnapshot:
        return snapshot_of(self.get_case(case_id))

    def get_apartment(self, apartment_id: str) -> Apartment:
        try:
            apartment = self.repository.get(apartment_uuid(apartment_id))
        except AggregateNotFoundError:
            raise DomainError(f"apartment {apartment_id} is not registered") from None
        assert isinstance(apartment, Apartment)
        return apartment

    def history(self, case_id: str) -> list[dict[str, Any]]:
        """The case's domain events, as a supervisor reads them."""
        self.get_case(case_id)
        rows = []
        for e in self.events.get(case_uuid(case_id)):
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
                "details": data,
            })
        return rows


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
    )


class IdentityRegistry(_Transcoded):
    """Client identities, in a store of their own (see domain.identity)."""

    name = "Identities"

    def record(self, client_id: str, name: str | None, personal_number: str | None) -> None:
        try:
            identity = self.repository.get(identity_uuid(client_id))
        except AggregateNotFoundError:
            self.save(ClientIdentity(client_id=client_id, name=name, personal_number=personal_number))
            return
        if (identity.name, identity.personal_number) != (name, personal_number):
            identity.correct(name=name, personal_number=personal_number)
            self.save(identity)

    def erase(self, client_id: str) -> bool:
        """Delete every stored event of the client's identity (GDPR art. 17).

        Appending an 'Erased' event would keep the name in the earlier events; this store is
        separate from the case histories precisely so that its rows can be deleted outright.
        """
        aggregate_id = identity_uuid(client_id)
        recorder: Any = self.recorder
        table = recorder.events_table_name
        if type(recorder).__module__.endswith("postgres"):
            sql, arg = f"DELETE FROM {table} WHERE originator_id = %s", aggregate_id
        else:
            sql, arg = f"DELETE FROM {table} WHERE originator_id = ?", aggregate_id.hex
        sqlite = not type(recorder).__module__.endswith("postgres")
        with recorder.datastore.transaction(commit=True) as cursor:
            if sqlite:
                cursor.execute("PRAGMA secure_delete = ON")  # overwrite the freed pages
            cursor.execute(sql.replace("DELETE", "SELECT COUNT(*) AS n", 1), (arg,))
            row = cursor.fetchone()
            erased = (row["n"] if isinstance(row, dict) else row[0]) > 0
            cursor.execute(sql, (arg,))
        if sqlite:
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # and the old WAL frames
        return erased

    def lookup(self, client_id: str) -> ClientIdentity | None:
        try:
            return self.repository.get(identity_uuid(client_id))
        except AggregateNotFoundError:
            return None

