"""The read-model reports on a small municipality with chosen dates, against answers worked
out by hand from the definitions in docs/metrics.md (the arithmetic is in the comments).

The scenario goes through the real application service (SQLite event store) and the real
projection (SQLite view); nothing is mocked. Twelve cases, eight apartments:

  case client target group            district programme           applied     decided (outcome)  move-in     closed
  c01  k-1   substance_abuse          Norrmalm training_apartment  2025-01-10  2025-02-09 granted  2025-03-11  2026-07-05 first_hand_lease
  c02  k-2   families_with_children   Farsta   municipal_contract  2025-02-01  2025-03-13 granted  2025-04-12  2025-10-12 own_housing
  c03  k-3   substance_abuse          Farsta   -                   2025-09-15  2025-10-20 denied   -           2025-10-20 (denied)
  c04  k-4   young_adults             Norrmalm training_apartment  2025-06-01  2025-07-04 granted  2025-11-01  open (training)
  c05  k-5   substance_abuse          Norrmalm housing_first       2025-08-01  2025-09-01 granted  2025-09-20  2026-08-10 deceased
  c06  k-6   families_with_children   Norrmalm training_apartment  2026-01-02  2026-01-31 granted  2026-04-30  open (training)
  c07  k-7   substance_abuse          Farsta   training_apartment  2026-01-05  2026-01-31 granted  2026-05-01  2026-09-15 terminated
  c08  k-8   young_adults             Norrmalm municipal_contract  2026-01-20  2026-02-15 granted  -           open (waiting)
  c09  k-9   families_with_children   Farsta   training_apartment  2025-12-01  2026-01-10 granted  2026-08-20  open (training)
  c10  k-10  substance_abuse          Norrmalm housing_first       2026-01-08  2026-02-01 granted  -           2026-07-15 withdrawn
  c11  k-1   substance_abuse          Norrmalm -                   2027-03-01  -                   -           open (applied)
  c12  k-12  young_adults             Farsta   training_apartment  2026-03-01  2026-03-31 granted  2026-07-01  open (training)

c01's takeover is approved on 2026-06-20; c11 is c01's client applying again.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from domain.policy import Policy
from housing_chain.service import HousingChain
from projections import reports
from projections.runner import ProjectionRunner
from projections.view import open_view
from tests.builders import Lines, sqlite_env

TODAY = date(2027, 6, 30)
POLICY = Policy()  # weekly visits for 3 months after move-in, then monthly


def d(text: str) -> date:
    return date.fromisoformat(text)


class Scenario:
    """Collects dated import lines, then runs them in date order through the service."""

    def __init__(self) -> None:
        self.line = Lines("s")
        self.steps: list[tuple[str, int, Any]] = []
        self.counters: Counter[str] = Counter()

    def at(self, day: str, type_: str, key: str, actor: str = "cw-anna", **fields: Any) -> None:
        self.counters[key] += 1
        command_id = f"{key}-{self.counters[key]}"
        if type_ not in ("register_apartment", "return_apartment"):
            fields["case"] = key
        line = self.line(type_, on=d(day), actor=actor, id=command_id, **fields)
        self.steps.append((day, len(self.steps), line))

    def apply(self, day: str, case: str, client_id: str, target_group: str, district: str) -> None:
        self.at(day, "apply", case,
                client={"id": client_id, "target_group": target_group, "district": district})

    def register(self, day: str, apartment: str) -> None:
        self.at(day, "register_apartment", apartment, apartment=apartment, landlord="Framtiden",
                rooms=2)

    def house(self, case: str, apartment: str, offer: str, approve: str, move_in: str) -> None:
        self.at(offer, "offer", case, apartment=apartment)
        self.at(approve, "landlord_decision", case, actor="Framtiden", approved=True)
        self.at(move_in, "move_in", case, apartment=apartment)

    def course(self, case: str, *days: str) -> None:
        for session, day in enumerate(days, start=1):
            self.at(day, "course_session", case, session=session)

    def run(self, tmp: Path) -> tuple[HousingChain, Any]:
        app = HousingChain(env=sqlite_env(tmp / "e.sqlite"))
        ordered = [line for _, _, line in sorted(self.steps, key=lambda s: (s[0], s[1]))]
        results = app.run(ordered, today=TODAY, policy=POLICY)
        refused = [(r.command_id, r.reason) for r in results if not r.accepted]
        assert not refused, refused
        view = open_view(sqlite_env(tmp / "v.sqlite"))
        ProjectionRunner(app, view).catch_up()
        return app, view


def municipality() -> Scenario:
    s = Scenario()
    for apartment, day in (("A1", "2025-02-20"), ("A2", "2025-03-20"), ("A3", "2025-09-01"),
                           ("A4", "2026-04-01"), ("A5", "2026-04-01"), ("A6", "2026-07-01"),
                           ("A7", "2026-06-20"), ("A8", "2026-10-01")):
        s.register(day, apartment)

    s.apply("2025-01-10", "c01", "k-1", "substance_abuse", "Norrmalm")
    s.at("2025-01-15", "start_assessment", "c01")
    s.at("2025-02-09", "decide", "c01", outcome="granted", programme="training_apartment")
    s.course("c01", "2025-02-10", "2025-02-17", "2025-02-24", "2025-03-03")
    s.house("c01", "A1", "2025-03-03", "2025-03-05", "2025-03-11")
    s.at("2026-03-20", "refer_takeover", "c01")
    s.at("2026-06-20", "takeover_decision", "c01", actor="Framtiden", approved=True)
    s.at("2026-07-05", "exit", "c01", destination="first_hand_lease")

    s.apply("2025-02-01", "c02", "k-2", "families_with_children", "Farsta")
    s.at("2025-02-03", "start_assessment", "c02")
    s.at("2025-03-13", "decide", "c02", outcome="granted", programme="municipal_contract")
    s.house("c02", "A2", "2025-04-01", "2025-04-02", "2025-04-12")
    s.at("2025-10-12", "exit", "c02", destination="own_housing")

    s.apply("2025-09-15", "c03", "k-3", "substance_abuse", "Farsta")
    s.at("2025-09-16", "start_assessment", "c03")
    s.at("2025-10-20", "decide", "c03", outcome="denied", reason="not in the target groups")

    s.apply("2025-06-01", "c04", "k-4", "young_adults", "Norrmalm")
    s.at("2025-06-02", "start_assessment", "c04")
    s.at("2025-07-04", "decide", "c04", outcome="granted", programme="training_apartment")
    s.house("c04", "A2", "2025-10-20", "2025-10-22", "2025-11-01")  # A2 let again
    s.course("c04", "2025-11-05", "2025-11-12", "2025-11-19", "2025-11-26")
    s.at("2026-03-01", "rent_arrears", "c04", amount="1500.50")
    s.at("2026-03-10", "repayment_plan", "c04")
    s.at("2026-12-10", "record_visit", "c04", actor="bolots-ahmed", kind="home_visit")

    s.apply("2025-08-01", "c05", "k-5", "substance_abuse", "Norrmalm")
    s.at("2025-08-05", "start_assessment", "c05")
    s.at("2025-09-01", "decide", "c05", outcome="granted", programme="housing_first")
    s.house("c05", "A3", "2025-09-10", "2025-09-12", "2025-09-20")
    s.at("2026-08-10", "exit", "c05", destination="deceased")
    s.at("2026-09-01", "return_apartment", "A3", apartment="A3")

    s.apply("2026-01-02", "c06", "k-6", "families_with_children", "Norrmalm")
    s.at("2026-01-05", "start_assessment", "c06")
    s.at("2026-01-31", "decide", "c06", outcome="granted", programme="training_apartment")
    s.course("c06", "2026-02-10", "2026-02-17", "2026-02-24", "2026-03-03")
    s.house("c06", "A4", "2026-04-20", "2026-04-25", "2026-04-30")
    s.at("2026-10-01", "rent_arrears", "c06", amount="2000.00")
    s.at("2026-11-20", "record_visit", "c06", actor="bolots-berit", kind="home_visit")

    s.apply("2026-01-05", "c07", "k-7", "substance_abuse", "Farsta")
    s.at("2026-01-06", "start_assessment", "c07")
    s.at("2026-01-31", "decide", "c07", outcome="granted", programme="training_apartment")
    s.course("c07", "2026-02-10", "2026-02-17")
    s.house("c07", "A5", "2026-04-25", "2026-04-27", "2026-05-01")
    s.at("2026-07-10", "record_visit", "c07", actor="bolots-berit", kind="home_visit")
    s.at("2026-08-01", "rent_arrears", "c07", amount="800.00")
    s.at("2026-09-15", "exit", "c07", destination="terminated")

    s.apply("2026-01-20", "c08", "k-8", "young_adults", "Norrmalm")
    s.at("2026-01-21", "start_assessment", "c08")
    s.at("2026-02-15", "decide", "c08", outcome="granted", programme="municipal_contract")

    s.apply("2025-12-01", "c09", "k-9", "families_with_children", "Farsta")
    s.at("2025-12-02", "start_assessment", "c09")
    s.at("2026-01-10", "decide", "c09", outcome="granted", programme="training_apartment")
    s.house("c09", "A6", "2026-08-01", "2026-08-05", "2026-08-20")
    s.at("2026-11-15", "record_visit", "c09", actor="bolots-berit", kind="home_visit")

    s.apply("2026-01-08", "c10", "k-10", "substance_abuse", "Norrmalm")
    s.at("2026-01-09", "start_assessment", "c10")
    s.at("2026-02-01", "decide", "c10", outcome="granted", programme="housing_first")
    s.at("2026-07-15", "exit", "c10", destination="withdrawn")

    s.apply("2027-03-01", "c11", "k-1", "substance_abuse", "Norrmalm")

    s.apply("2026-03-01", "c12", "k-12", "young_adults", "Farsta")
    s.at("2026-03-02", "start_assessment", "c12")
    s.at("2026-03-31", "decide", "c12", outcome="granted", programme="training_apartment")
    s.house("c12", "A7", "2026-06-25", "2026-06-28", "2026-07-01")
    return s


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    app, view = municipality().run(tmp_path_factory.mktemp("reports"))
    yield view
    app.close()


def stats(count: int, mean: float | None, median: float | None, p90: float | None
          ) -> dict[str, Any]:
    return {"count": count, "mean_days": mean, "median_days": median, "p90_days": p90}
