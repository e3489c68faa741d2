"""The application service on a real SQLite store: idempotency, atomic batches, dates,
personal data, system notes and the audit history.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import PersistenceError, TranscodingNotRegisteredError

from application.store import ProcessedCommand, snapshot_of
from domain.calendar import unexecuted_deadline
from domain.case import case_uuid
from domain.commands import Apply, ApplyLine, import_line_adapter
from domain.errors import DomainError, InvalidDate, StepNotAllowed
from domain.stages import Stage
from tests.builders import POLICY, TODAY, Chain, client, new_chain, new_registry

NAME = "Astrid Lindqvist-Öberg"
PERSONAL_NUMBER = "19720314-5524"
STORED_NUMBER = "197203145524"  # normalized: twelve digits


def raw_bytes(db: Path) -> bytes:
    """Every byte of a SQLite database, its write-ahead log and journal included."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))


def case_events(chain: Chain, case: str) -> list[str]:
    return [row["event"] for row in chain.app.history(case)]


def is_marked(chain: Chain, command_id: str, case: str = "c-1") -> bool:
    try:
        chain.app.repository.get(ProcessedCommand.create_id(command_id, case_uuid(case)))
    except AggregateNotFoundError:
        return False
    return True


# --- idempotency by command id ----------------------------------------------------------------


def test_same_command_id_twice_gives_one_event_and_the_first_result_marked_duplicate(chain):
    chain.drive("c-1", Stage.ASSESSMENT)
    step = chain.step("decide", "c-1", outcome="granted", programme="housing_first")
    first = chain.app.execute(step, today=TODAY, policy=POLICY)
    stored = chain.stored()
    second = chain.app.execute(step, today=TODAY, policy=POLICY)
    assert first.accepted and not first.duplicate
    assert first.events == ["Granted"]
    assert second == first.model_copy(update={"duplicate": True})
    assert chain.stored() == stored
    assert case_events(chain, "c-1").count("Granted") == 1


def test_a_retried_command_answers_as_first_run_even_after_the_case_moved_on(chain):
    chain.drive("c-1", Stage.WAITING)
    chain.register("apt-1")
    offer = chain.step("offer", "c-1", apartment="apt-1")
    [first] = chain.run(offer)
    chain.accept(chain.step("landlord_decision", "c-1", approved=True))
    stored = chain.stored()
    [retry] = chain.run(offer)
    assert retry == first.model_copy(update={"duplicate": True})
    assert retry.stage == "offered"
    assert chain.stored() == stored


def test_a_command_repeated_within_one_batch_is_recorded_once(chain):
    chain.drive("c-1", Stage.WAITING)
    session = chain.step("course_session", "c-1", session=1)
    first, second = chain.run(session, session)
    assert first.accepted and second.duplicate
    assert second == first.model_copy(update={"duplicate": True})
    assert case_events(chain, "c-1").count("CourseSessionAttended") == 1


def test_a_command_id_identifies_the_command_whatever_the_line_says(chain):
    chain.drive("c-1", Stage.WAITING)
    [first] = chain.run(chain.step("course_session", "c-1", session=1, id="import.csv:7"))
    [second] = chain.run(chain.step("course_session", "c-1", session=2, id="import.csv:7"))
    assert second.duplicate and second.events == first.events
    assert chain.app.get_case("c-1").course_sessions == {1}


def test_a_refused_command_records_nothing_and_its_id_stays_free(chain):
    chain.drive("c-1", Stage.ASSESSMENT)
    stored = chain.stored()
    future = chain.line("decide", on=TODAY + timedelta(days=1), case="c-1", outcome="granted",
                        programme="housing_first", id="decide-1")
    with pytest.raises(InvalidDate, match="case c-1: decide on 2027-07-01 is after today"):
        chain.app.execute(future, today=TODAY, policy=POLICY)
    assert chain.stored() == stored
    assert not is_marked(chain, "decide-1")
    corrected = future.model_copy(update={"on": TODAY})
    result = chain.app.execute(corrected, today=TODAY, policy=POLICY)
    assert result.accepted and not result.duplicate


def test_execute_raises_the_refusal_that_run_reports(chain):
    chain.drive("c-1", Stage.WAITING)
    step = chain.step("move_in", "c-1", apartment="apt-1")
    [reported] = chain.run(step)
    with pytest.raises(StepNotAllowed) as raised:
        chain.app.execute(step, today=TODAY, policy=POLICY)
    assert str(raised.value) == reported.reason == (
        "case c-1 is waiting for an apartment: move_in needs an offer approved by the "
        "landlord; allowed now: offer, course_session, assign, exit"
        ", plan, plan_review, temporary_placement, placement_ended"
    )


def test_steps_for_an_unknown_case_are_refused(chain):
    reason = chain.refuse(chain.step("start_assessment", "c-404"))
    assert reason == "case c-404 does not exist: apply first"
    with pytest.raises(DomainError, match="case c-404 does not exist"):
        chain.app.snapshot("c-404")


def test_a_second_application_needs_a_new_case_id(chain):
    chain.drive("c-1", Stage.ASSESSMENT)
    reason = chain.refuse(chain.line("apply", on=chain.next_day(), case="c-1", client=client()))
    assert reason == (
        "case c-1 already exists (under assessment); a new application needs a new case id"
    )


# --- batches ---------------------------------------------------------------------------------


def test_a_refused_line_in_a_batch_records_nothing_while_the_others_are_stored(chain):
    chain.drive("c-1", Stage.WAITING)
    lines = [
        chain.step("course_session", "c-1", session=1),
        chain.step("move_in", "c-1", apartment="apt-1"),  # refused: no offer
        chain.step("course_session", "c-1", session=2),
    ]
    ok1, refused, ok2 = chain.run(*lines, batch_id="import-1")
    assert ok1.accepted and ok2.accepted and not refused.accepted
    assert refused.events == [] and refused.stage is None
    assert not is_marked(chain, lines[1].id)
    assert is_marked(chain, lines[0].id) and is_marked(chain, lines[2].id)
    history = chain.app.history("c-1")
    assert [r["command_id"] for r in history[-2:]] == [lines[0].id, lines[2].id]
    assert lines[1].id not in {r["command_id"] for r in history}


def as_rerun(results: list) -> list:
    """A re-run batch answers with the first results, accepted lines marked duplicate."""
    return [r.model_copy(update={"duplicate": r.accepted}) for r in results]


def test_a_batch_rerun_with_the_same_batch_id_returns_the_first_results_and_records_nothing(
    chain,
):
    chain.drive("c-1", Stage.WAITING)
    lines = [
        chain.step("course_session", "c-1", session=1),
        chain.step("move_in", "c-1", apartment="apt-1"),
        chain.step("course_session", "c-1", session=2),
    ]
    first = chain.run(*lines, batch_id="import-1")
    assert not any(r.duplicate for r in first)
    stored = chain.stored()
    again = chain.run(*lines, batch_id="import-1")
    assert again == as_rerun(first)
    assert [r.duplicate for r in again] == [True, False, True]
    assert again[1].reason == first[1].reason
    assert chain.stored() == stored
    assert chain.run(*lines, batch_id="import-1") == again


def test_a_batch_rerun_answers_from_its_marker_even_where_a_refused_line_would_now_pass(chain):
    chain.register("apt-1")
    chain.drive("c-1", Stage.WAITING)
    day = chain.next_day()
    approve = chain.line("landlord_decision", on=day, case="c-1", approved=True)
    offer = chain.line("offer", on=day, case="c-1", apartment="apt-1")
    first = chain.run(approve, offer, batch_id="b-7")
    assert [r.accepted for r in first] == [False, True]
    stored = chain.stored()
    assert chain.run(approve, offer, batch_id="b-7") == as_rerun(first)
    assert chain.stored() == stored
    assert chain.app.get_case("c-1").stage is Stage.OFFERED
    # the same lines without the batch id: the refused line is evaluated afresh
    [approved, duplicate] = chain.run(approve, offer)
    assert approved.accepted and duplicate.duplicate


def test_a_batch_is_one_save_of_its_events_and_markers(chain):
    chain.register("apt-1")
    chain.drive("c-1", Stage.WAITING)
    before = chain.stored()
    results = chain.run(
        chain.step("offer", "c-1", apartment="apt-1"),
        chain.step("landlord_decision", "c-1", approved=True),
        chain.step("exit", "c-1", destination="first_hand_lease"),  # refused
        chain.step("move_in", "c-1", apartment="apt-1"),
        batch_id="b-1",
    )
    accepted = [r for r in results if r.accepted]
    expected = sum(len(r.events) for r in accepted) + len(accepted) + 1  # events, markers, batch
    new = chain.notifications()[before:]
    assert len(new) == expected == 5 + 3 + 1
    assert [n.id for n in new] == list(range(before + 1, before + expected + 1))
    assert new[-1].topic.endswith("ProcessedBatch.Processed")


def test_a_batch_whose_save_fails_stores_none_of_its_lines(chain, tmp_path):
    chain.register("apt-1")
    chain.drive("c-1", Stage.WAITING)
    before = chain.stored()
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        db.execute(
            "CREATE TRIGGER no_batch_marker BEFORE INSERT ON stored_events "
            "WHEN NEW.topic LIKE '%ProcessedBatch%' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    db.close()
    offer = chain.step("offer", "c-1", apartment="apt-1")
    with pytest.raises(PersistenceError, match="disk full"):
        chain.run(offer, chain.step("landlord_decision", "c-1", approved=True), batch_id="b-1")
    assert chain.stored() == before
    assert not is_marked(chain, offer.id)
    assert chain.app.get_case("c-1").stage is Stage.WAITING
    assert chain.app.get_apartment("apt-1").status == "vacant"


def test_the_store_can_be_reopened_after_a_batch(tmp_path):
    first = Chain(tmp_path / "events.sqlite")
    first.drive("c-1", Stage.TRAINING)
    reopened = new_chain(tmp_path / "events.sqlite")
    assert reopened.snapshot("c-1") == first.app.snapshot("c-1")
    assert reopened.history("c-1") == first.app.history("c-1")


# --- dates and amounts through the store ---------------------------------------------------


def test_the_default_json_transcoder_rejects_dates():
    plain = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    with pytest.raises(TranscodingNotRegisteredError):
        plain.mapper.transcoder.encode({"on": date(2026, 1, 31)})


def test_dates_and_datetimes_keep_their_types_through_the_transcoder(chain):
    transcoder = chain.app.mapper.transcoder
    moment = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    decoded = transcoder.decode(transcoder.encode({"on": date(2026, 1, 31), "at": moment}))
    assert decoded == {"on": date(2026, 1, 31), "at": moment}
    assert type(decoded["on"]) is date
    assert type(decoded["at"]) is datetime


def test_dates_round_trip_through_the_sqlite_store(chain, tmp_path):
    chain.drive("c-1", Stage.TRAINING)
    written = chain.app.snapshot("c-1")
    reopened = new_chain(tmp_path / "events.sqlite")
    snapshot = reopened.snapshot("c-1")
    assert snapshot == written
    for value in (snapshot.last_on, snapshot.decision_date, snapshot.move_in_date):
        assert type(value) is date
    for row in reopened.history("c-1"):
        assert type(row["on"]) is date
        assert isinstance(row["recorded"], datetime) and row["recorded"].tzinfo is not None
    raw = b"".join(n.state for n in chain.notifications())
    assert b'"_type_":"date_iso"' in raw
    assert b'"_data_":"' + str(snapshot.move_in_date).encode() + b'"' in raw


def test_amounts_round_trip_as_decimals(chain, tmp_path):
    chain.drive("c-1", Stage.TRAINING)
    chain.accept(chain.step("rent_arrears", "c-1", amount="1234.50"),
                 chain.step("rent_arrears", "c-1", amount="0.25"),
                 chain.step("repayment_plan", "c-1"))
    reopened = new_chain(tmp_path / "events.sqlite")
    case = reopened.get_case("c-1")
    assert case.arrears == Decimal("1234.75") and type(case.arrears) is Decimal
    plan = reopened.history("c-1")[-1]
    assert plan["event"] == "RepaymentPlanAgreed"
    assert plan["details"]["amount"] == Decimal("1234.75")


# --- personal data -------------------------------------------------------------------------


def apply_line(case: str = "c-1", client_id: str = "k-7", on: date = date(2025, 1, 2)) -> ApplyLine:
    line = import_line_adapter.validate_python({
        "type": "apply", "case": case, "on": on, "actor": "cw-anna", "id": f"apply-{case}",
        "client": client(client_id, name=NAME, personal_number=PERSONAL_NUMBER,
                         household={"adults": 1, "children": 2}),
        "referral": "healthcare",
    })
    assert isinstance(line, ApplyLine)
    return line


def test_without_identity_drops_the_name_and_personal_number_only():
    line = apply_line()
    assert (line.client.name, line.client.personal_number) == (NAME, STORED_NUMBER)
    stripped = line.without_identity()
    assert type(stripped) is Apply
    assert not hasattr(stripped.client, "name")
    assert not hasattr(stripped.client, "personal_number")
    dumped = stripped.model_dump_json()
    assert NAME not in dumped and PERSONAL_NUMBER not in dumped
    assert stripped.model_dump() == line.model_dump(
        exclude={"client": {"name", "personal_number"}}
    )
    assert (stripped.id, stripped.on, stripped.actor) == (line.id, line.on, line.actor)


def test_no_personal_data_in_any_stored_case_event(chain, tmp_path):
    line = apply_line()
    chain.accept(line.without_identity())
    chain.accept(chain.line("start_assessment", on=date(2025, 1, 3), case="c-1"))
    notifications = chain.notifications()
    assert len(notifications) == 4  # two case events, two markers
    raw = b"".join(n.state for n in notifications)
    assert b'"client_id":"k-7"' in raw
    for secret in (NAME, PERSONAL_NUMBER, PERSONAL_NUMBER.replace("-", "")):
        assert secret.encode() not in raw
        assert secret.encode() not in raw_bytes(tmp_path / "events.sqlite")


def test_even_an_apply_line_with_identity_stores_no_personal_data(chain, tmp_path):
    [result] = chain.run(apply_line())
    assert result.accepted
    raw = b"".join(n.state for n in chain.notifications())
    assert NAME.encode() not in raw and PERSONAL_NUMBER.encode() not in raw
    assert STORED_NUMBER.encode() not in raw_bytes(tmp_path / "events.sqlite")


def test_identity_registry_keeps_identities_in_a_separate_sqlite_file(chain, tmp_path):
    line = apply_line()
    registry = new_registry(tmp_path / "identities.sqlite")
    registry.record(line.client.id, line.client.name, line.client.personal_number)
    chain.accept(line.without_identity())
    identity = registry.lookup("k-7")
    assert identity is not None
    assert (identity.name, identity.personal_number) == (NAME, STORED_NUMBER)
    assert chain.app.get_case("c-1").client_id == identity.client_id == "k-7"
    assert STORED_NUMBER.encode() in b"".join(
        n.state for n in registry.recorder.select_notifications(start=1, limit=100)
    )
    assert STORED_NUMBER.encode() not in raw_bytes(tmp_path / "events.sqlite")
    assert registry.lookup("k-unknown") is None
    assert chain.app.recorder.max_notification_id() == 2
    assert new_registry(tmp_path / "identities.sqlite").lookup("k-7").name == NAME


def test_recording_the_same_identity_again_records_nothing_and_a_change_corrects_it(tmp_path):
    registry = new_registry(tmp_path / "identities.sqlite")
    registry.record("k-7", NAME, PERSONAL_NUMBER)
    registry.record("k-7", NAME, PERSONAL_NUMBER)
    assert registry.recorder.max_notification_id() == 1
    registry.record("k-7", "Astrid Öberg", PERSONAL_NUMBER)
    identity = registry.lookup("k-7")
    assert identity.name == "Astrid Öberg"
    assert identity.version == 2


def test_erasing_an_identity_leaves_the_case_history_untouched(chain, tmp_path):
    registry = new_registry(tmp_path / "identities.sqlite")
    registry.record("k-7", NAME, PERSONAL_NUMBER)
    chain.accept(apply_line().without_identity())
    history = chain.app.history("c-1")
    assert registry.erase("k-7")
    assert registry.lookup("k-7") is None
    assert new_registry(tmp_path / "identities.sqlite").lookup("k-7") is None
    assert chain.app.history("c-1") == history
    assert chain.app.get_case("c-1").client_id == "k-7"


def test_an_erased_identity_leaves_no_personal_data_in_the_identity_store(tmp_path):
    registry = new_registry(tmp_path / "identities.sqlite")
    registry.record("k-7", NAME, PERSONAL_NUMBER)
    registry.record("k-7", "Astrid Öberg", PERSONAL_NUMBER)
    registry.record("k-8", "Other Person", "19500101-0000")
    assert registry.erase("k-7")
    raw = b"".join(n.state for n in registry.recorder.select_notifications(start=1, limit=100))
    assert PERSONAL_NUMBER.encode() not in raw
    assert NAME.encode() not in raw
    assert b"Other Person" in raw
    on_disk = raw_bytes(tmp_path / "identities.sqlite")
    assert PERSONAL_NUMBER.encode() not in on_disk and NAME.encode() not in on_disk
    assert not registry.erase("k-7")


# --- system notes --------------------------------------------------------------------------


def test_note_due_is_idempotent_by_command_id(chain):
    chain.drive("c-1", Stage.WAITING)
    decided = chain.app.get_case("c-1").decision_date
    due = unexecuted_deadline(decided)
    assert chain.app.note_due("c-1", "unexecuted_decision", due, 1, "ivo:c-1:1")
    stored = chain.stored()
    assert not chain.app.note_due("c-1", "unexecuted_decision", due, 1, "ivo:c-1:1")
    assert chain.stored() == stored
    assert case_events(chain, "c-1").count("UnexecutedDecisionNoted") == 1
    assert chain.app.snapshot("c-1").unexecuted_noted == 1


def test_note_due_records_no_event_when_the_item_no_longer_applies(chain):
    chain.drive("c-1", Stage.TRAINING)
    events = case_events(chain, "c-1")
    assert not chain.app.note_due("c-1", "unexecuted_decision", TODAY, 1, "ivo:c-1:1")
    assert case_events(chain, "c-1") == events
    assert is_marked(chain, "ivo:c-1:1")


def test_note_due_for_the_same_quarter_under_a_new_id_records_nothing(chain):
    chain.drive("c-1", Stage.WAITING)
    due = unexecuted_deadline(chain.app.get_case("c-1").decision_date)
    assert chain.app.note_due("c-1", "unexecuted_decision", due, 1, "a")
    assert not chain.app.note_due("c-1", "unexecuted_decision", due, 1, "b")
    assert case_events(chain, "c-1").count("UnexecutedDecisionNoted") == 1


def test_note_due_records_overdue_visits_and_takeover_eligibility(chain):
    chain.drive("c-1", Stage.TRAINING)
    move_in = chain.app.get_case("c-1").move_in_date
    assert chain.app.note_due("c-1", "home_visit", move_in + timedelta(days=7), 0, "v-1")
    assert chain.app.note_due("c-1", "follow_up", move_in + timedelta(days=90), 0, "f-1")
    assert chain.app.note_due("c-1", "takeover_eligible", date(2026, 1, 6), 0, "t-1")
    assert case_events(chain, "c-1")[-3:] == [
        "VisitOverdueNoted", "VisitOverdueNoted", "TakeoverEligibilityNoted"
    ]
    assert chain.app.snapshot("c-1").takeover_eligible_on == date(2026, 1, 6)


def test_a_late_recorded_step_is_accepted_after_the_system_noted_a_deadline(chain):
    chain.register("apt-1")
    chain.drive("c-1", Stage.WAITING)
    decided = chain.app.get_case("c-1").decision_date
    assert chain.app.note_due("c-1", "unexecuted_decision", unexecuted_deadline(decided), 1, "q1")
    assert chain.app.snapshot("c-1").last_on == decided
    chain.accept(chain.line("offer", on=decided + timedelta(days=20), case="c-1",
                            apartment="apt-1"))


def test_note_due_on_an_unknown_case_is_refused(chain):
    with pytest.raises(DomainError, match="case c-404 does not exist"):
        chain.app.note_due("c-404", "home_visit", TODAY, 0, "x")


# --- queries: history and snapshot --------------------------------------------------------


def test_history_gives_effective_date_recorded_time_actor_and_command_id(chain):
    before = datetime.now(UTC)
    chain.accept(chain.line("apply", on=date(2025, 3, 1), case="c-1", client=client(),
                            actor="cw-anna", id="imp:1"))
    chain.accept(chain.line("start_assessment", on=date(2025, 3, 3), case="c-1",
                            actor="cw-bo", id="imp:2"))
    chain.accept(chain.line("decide", on=date(2025, 3, 20), case="c-1", outcome="denied",
                            reason="has housing", actor="cw-bo", id="imp:3"))
    after = datetime.now(UTC)
    history = chain.app.history("c-1")
    assert [(r["version"], r["event"], r["on"], r["actor"], r["command_id"]) for r in history] == [
        (1, "Applied", date(2025, 3, 1), "cw-anna", "imp:1"),
        (2, "AssessmentStarted", date(2025, 3, 3), "cw-bo", "imp:2"),
        (3, "Denied", date(2025, 3, 20), "cw-bo", "imp:3"),
    ]
    for row in history:
        assert before <= row["recorded"] <= after
        assert row["recorded"].date() != row["on"]  # recorded long after it took effect
        assert not {"on", "actor", "command_id", "originator_id"} & set(row["details"])
    assert history[0]["details"]["client_id"] == "k-1"
    # a line with only the free-text reason (from before the codes) is coded `other`
    assert history[2]["details"] == {"reason": "has housing", "reason_code": "other"}


def test_history_of_an_unknown_case_is_refused(chain):
    with pytest.raises(DomainError, match="case c-404 does not exist"):
        chain.app.history("c-404")


def test_snapshot_names_the_stage_what_is_allowed_and_the_dates(chain):
    chain.drive("c-1", Stage.TRAINING)
    case = chain.app.get_case("c-1")
    snapshot = chain.app.snapshot("c-1")
    assert snapshot.case == "c-1"
    assert (snapshot.stage, snapshot.stage_label) == ("training", "in the training phase")
    assert snapshot.allowed == list(case.allowed())
    assert snapshot.exits == ["terminated", "own_housing", "withdrawn", "deceased", "moved_away"]
    assert snapshot.programme == "training_apartment"
    assert snapshot.move_in_date == case.move_in_date == snapshot.last_on
    assert snapshot.outcome is None and snapshot.closed_on is None


def test_the_case_a_step_answers_with_is_the_case_the_store_gives_back(chain):
    """The activity takes the workflow's snapshot from the case as saved, not from a second
    read: after every step of a journey (one at a time, and a batch with a refused line) it
    must be exactly what the store reconstructs."""
    chain.register("apt-1")
    line = chain.line
    steps = [
        line("apply", on=chain.next_day(), case="c-1", client=client("k-c-1")),
        chain.step("start_assessment", "c-1"),
        chain.step("decide", "c-1", outcome="granted", programme="training_apartment"),
        chain.step("offer", "c-1", apartment="apt-1"),
        chain.step("landlord_decision", "c-1", approved=True),
        chain.step("move_in", "c-1", apartment="apt-1"),
        chain.step("record_visit", "c-1", kind="home_visit"),
    ]
    for step in steps:
        result, case = chain.app.execute_loaded(step, today=TODAY, policy=POLICY)
        assert result.accepted and case is not None
        assert snapshot_of(case) == chain.app.snapshot("c-1")
        assert case.version == chain.app.get_case("c-1").version
    batch = [chain.step("course_session", "c-1", session=1),
             chain.step("offer", "c-1", apartment="apt-1"),  # refused: already housed
             chain.step("record_visit", "c-1", kind="follow_up")]
    results, case = chain.app.run_loaded(batch, today=TODAY, policy=POLICY, batch_id="b-1")
    assert [r.accepted for r in results] == [True, False, True]
    assert case is not None and snapshot_of(case) == chain.app.snapshot("c-1")
    # answered from the batch's marker, nothing loaded: the caller reads the case itself
    again, loaded = chain.app.run_loaded(batch, today=TODAY, policy=POLICY, batch_id="b-1")
    assert loaded is None and [r.duplicate for r in again] == [True, False, True]
