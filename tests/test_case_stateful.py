"""Random commands with random (valid and invalid) dates sent to one case through
`HousingChain.run`, each example on a fresh SQLite file. After every step:

- a refused line changes nothing in the store;
- the stage is a Stage; a closed case accepts nothing;
- the case's stored versions are 1..n;
- `last_on` never decreases, system notes included;
- the apartment the case holds (offered or occupied) is the one the stock says it holds.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from domain.apartment import Status
from domain.calendar import unexecuted_deadline
from domain.case import case_uuid
from domain.commands import Destination, Programme, VisitKind
from domain.stages import ALLOWED, Stage
from tests.builders import PATH, TODAY, Chain, client

CASE = "c-1"
APARTMENTS = ("apt-1", "apt-2")
HOLDING = {Stage.OFFERED: Status.OFFERED, Stage.APPROVED: Status.OFFERED,
           Stage.TRAINING: Status.OCCUPIED, Stage.TAKEOVER_REVIEW: Status.OCCUPIED,
           Stage.TAKEOVER_APPROVED: Status.OCCUPIED}
NEXT_STEP: dict[Stage, tuple[str, dict[str, Any]]] = {
    Stage.APPLIED: ("start_assessment", {}),
    Stage.ASSESSMENT: ("decide", {"outcome": "granted", "programme": "training_apartment"}),
    Stage.WAITING: ("offer", {"apartment": "apt-2"}),
    Stage.OFFERED: ("landlord_decision", {"approved": True}),
    Stage.APPROVED: ("move_in", {}),
    Stage.TRAINING: ("refer_takeover", {}),
    Stage.TAKEOVER_REVIEW: ("takeover_decision", {"approved": True}),
    Stage.TAKEOVER_APPROVED: ("exit", {"destination": "first_hand_lease"}),
}

# Days after the case's last step: before it (refused), soon after, a year on, or far
# beyond today (refused).
offsets = st.one_of(
    st.integers(-40, -1), st.integers(0, 45), st.integers(300, 420), st.integers(4000, 4100)
)
apartments = st.sampled_from((*APARTMENTS, "apt-9"))  # apt-9 is not registered


class OneCase(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.chain = Chain(Path(self.tmp.name) / "events.sqlite")
        self.app = self.chain.app
        self.accepted: list[Any] = []
        self.highest_last_on: date | None = None

    def teardown(self) -> None:
        self.app.close()
        self.tmp.cleanup()

    @initialize(stage=st.sampled_from(PATH))
    def start(self, stage: Stage) -> None:
        for apartment in APARTMENTS:
            self.chain.register(apartment)
        self.chain.drive(CASE, stage, apartment="apt-1")

    # --- sending ----------------------------------------------------------------------------

    def stored(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def send(self, type_: str, offset: int, **fields: Any) -> None:
        case = self.app.get_case(CASE)
        stage, last_on, version = case.stage, case.last_on, case.version
        on = last_on + timedelta(days=offset)
        line = self.chain.line(type_, on=on, case=CASE, **fields)
        stored = self.stored()
        [result] = self.app.run([line], today=TODAY, policy=self.chain.policy)
        after = self.app.get_case(CASE)
        event(f"{stage} -> {after.stage}" if result.accepted else f"refused in {stage}")
        assert result.command_id == line.id and not result.duplicate
        if result.accepted:
            assert type_ in ALLOWED[stage]
            assert last_on <= on <= TODAY
            assert after.last_on == on
            assert after.version > version
            assert self.stored() > stored
            assert result.stage == after.stage.value
            self.accepted.append(line)
        else:
            assert self.stored() == stored, "a refused line changed the store"
            assert (after.version, after.stage, after.last_on) == (version, stage, last_on)
            assert result.events == []
            assert result.reason and result.reason.startswith((f"case {CASE}", "apartment "))
        if type_ == "apply":
            assert not result.accepted
            assert result.reason == (
                f"case {CASE} already exists ({after.stage_label}); "
                "a new application needs a new case id"
            )
            return
        if stage is Stage.CLOSED:
            assert not result.accepted, "a closed case accepted a step"
            assert result.reason.endswith("allowed now: nothing (the case is closed)")
        if type_ not in ALLOWED[stage]:
            assert not result.accepted
            assert "allowed now: " in result.reason
        elif on > TODAY or on < last_on:
            assert not result.accepted

    # --- the case's commands ----------------------------------------------------------------

    @rule(offset=offsets)
    def advance(self, offset: int) -> None:
        """The chain's next ordinary step, so examples reach the later stages."""
        stage = self.app.get_case(CASE).stage
        if stage is Stage.CLOSED:
            return
        type_, fields = NEXT_STEP[stage]
        if type_ == "move_in":
            fields = {"apartment": self.app.get_case(CASE).apartment}
        self.send(type_, offset, **fields)

    @rule(offset=offsets)
    def start_assessment(self, offset: int) -> None:
        self.send("start_assessment", offset)

    @rule(offset=offsets, outcome=st.sampled_from(["granted", "denied"]),
          programme=st.none() | st.sampled_from(Programme),
          reason=st.sampled_from([None, "", "not in the target group"]))
    def decide(self, offset: int, outcome: str, programme: Any, reason: str | None) -> None:
        self.send("decide", offset, outcome=outcome, programme=programme, reason=reason)

    @rule(offset=offsets, apartment=apartments)
    def offer(self, offset: int, apartment: str) -> None:
        self.send("offer", offset, apartment=apartment)

    @rule(offset=offsets, approved=st.booleans())
    def landlord_decision(self, offset: int, approved: bool) -> None:
        self.send("landlord_decision", offset, approved=approved, reason="references")

    @rule(offset=offsets, apartment=apartments)
    def move_in(self, offset: int, apartment: str) -> None:
        self.send("move_in", offset, apartment=apartment)

    @rule(offset=offsets, kind=st.sampled_from(VisitKind))
    def record_visit(self, offset: int, kind: VisitKind) -> None:
        self.send("record_visit", offset, kind=kind)

    @rule(offset=offsets, session=st.integers(1, 4))
    def course_session(self, offset: int, session: int) -> None:
        self.send("course_session", offset, session=session)

    @rule(offset=offsets, amount=st.decimals(Decimal("0.01"), Decimal("20000"), places=2))
    def rent_arrears(self, offset: int, amount: Decimal) -> None:
        self.send("rent_arrears", offset, amount=amount)

    @rule(offset=offsets)
    def repayment_plan(self, offset: int) -> None:
        self.send("repayment_plan", offset)

    @rule(offset=offsets)
    def complaint(self, offset: int) -> None:
        self.send("complaint", offset, note="disturbance")

    @rule(offset=offsets)
    def refer_takeover(self, offset: int) -> None:
        self.send("refer_takeover", offset)

    @rule(offset=offsets, approved=st.booleans())
    def takeover_decision(self, offset: int, approved: bool) -> None:
        self.send("takeover_decision", offset, approved=approved, reason="credit check")

    @rule(offset=offsets, destination=st.sampled_from(Destination))
    def exit(self, offset: int, destination: Destination) -> None:
        self.send("exit", offset, destination=destination)

    @rule(offset=offsets)
    def apply_again(self, offset: int) -> None:
        self.send("apply", offset, client=client())

    # --- retries and system notes ---------------------------------------------------------

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def retry_an_accepted_line(self, data: st.DataObject) -> None:
        line = data.draw(st.sampled_from(self.accepted))
        stored = self.stored()
        [result] = self.app.run([line], today=TODAY, policy=self.chain.policy)
        assert result.accepted and result.duplicate
        assert self.stored() == stored

    @rule()
    def note_unexecuted(self) -> None:
        case = self.app.get_case(CASE)
        quarter = case.unexecuted_noted + 1
        due = unexecuted_deadline(case.decision_date or case.last_on, quarter)
        self.note("unexecuted_decision", due, quarter)

    @rule(kind=st.sampled_from(["home_visit", "follow_up"]), offset=st.integers(-30, 120))
    def note_overdue(self, kind: str, offset: int) -> None:
        self.note(kind, self.app.get_case(CASE).last_on + timedelta(days=offset), 0)

    def note(self, kind: str, due: date, quarter: int) -> None:
        before = self.app.get_case(CASE)
        self.app.note_due(CASE, kind, due, quarter, self.chain.line.next_id())
        after = self.app.get_case(CASE)
        assert (after.stage, after.last_on) == (before.stage, before.last_on)

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def stage_is_a_stage(self) -> None:
        assert isinstance(self.app.get_case(CASE).stage, Stage)

    @invariant()
    def stored_versions_are_contiguous(self) -> None:
        versions = [e.originator_version for e in self.app.events.get(case_uuid(CASE))]
        assert versions == list(range(1, len(versions) + 1))
        assert versions[-1] == self.app.get_case(CASE).version

    @invariant()
    def last_on_never_decreases(self) -> None:
        last_on = self.app.get_case(CASE).last_on
        if self.highest_last_on is not None:
            assert last_on >= self.highest_last_on
        self.highest_last_on = last_on

    @invariant()
    def the_stock_agrees_with_the_case(self) -> None:
        case = self.app.get_case(CASE)
        expected = {a: (Status.VACANT, None) for a in APARTMENTS}
        if case.stage in HOLDING:
            expected[case.apartment] = (HOLDING[case.stage], CASE)
        elif case.outcome == "first_hand_lease":
            expected[case.apartment] = (Status.TAKEN_OVER, CASE)
        actual = {a: (self.app.get_apartment(a).status, self.app.get_apartment(a).case)
                  for a in APARTMENTS}
        assert actual == expected


OneCase.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOneCase = OneCase.TestCase
