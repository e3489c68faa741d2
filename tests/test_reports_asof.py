"""Reports at a past date, and grouped by what people ask, against answers worked out by hand
(the arithmetic is in the comments). The municipality of tests/test_reports.py, plus a small
one with two landlords; both through the real service and the real projection."""

from __future__ import annotations

import pytest

from application.reporting import ReportOptions, run_report
from projections import reports
from tests.test_reports import POLICY, TODAY, Scenario, d, municipality, stats


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    app, view_ = municipality().run(tmp_path_factory.mktemp("asof"))
    yield view_
    app.close()


@pytest.fixture(scope="module")
def landlords(tmp_path_factory):
    """Two landlords: y1 and y3 live in Bostadsbolaget's X1 one after the other, y2 in
    Framtiden's X2. All three applied 2026-01-10 (Farsta, elderly) and were granted a
    training apartment on 2026-02-01."""
    s = Scenario()
    s.register("2026-01-01", "X1", landlord="Bostadsbolaget", landlord_type="municipal_company")
    s.register("2026-01-01", "X2", landlord="Framtiden")
    three_tenancies(s)
    app_, view_ = s.run(tmp_path_factory.mktemp("landlords"))
    yield view_
    app_.close()


def three_tenancies(s: Scenario) -> None:
    """y1, y2, y3 granted on 2026-02-01; y1 in X1 from 03-01 to 06-01, y2 in X2 from 04-02,
    y3 in X1 from 06-21."""
    for case in ("y1", "y2", "y3"):
        s.apply("2026-01-10", case, f"k-{case}", "elderly", "Farsta")
        s.at("2026-01-11", "start_assessment", case)
        s.at("2026-02-01", "decide", case, outcome="granted", programme="training_apartment")
    s.house("y1", "X1", "2026-02-10", "2026-02-12", "2026-03-01")
    s.house("y2", "X2", "2026-02-20", "2026-02-22", "2026-04-02")
    s.at("2026-06-01", "exit", "y1", destination="own_housing")  # X1 vacated
    s.house("y3", "X1", "2026-06-10", "2026-06-12", "2026-06-21")


# --- as of a past date --------------------------------------------------------------------

def test_caseload_as_of_a_past_date_counts_the_tenancies_and_visits_of_that_day(view):
    result = reports.caseload(view, d("2026-06-30"), POLICY)
    # in a tenancy on 2026-06-30 (moved in by then, not closed by then): c01 (exit 07-05),
    # c04, c05 (exit 08-10), c06, c07 (exit 09-15); c09 and c12 move in later, c02 had left.
    # No home visit was made by then (c07's is 07-10, c06's 11-20, c04's 12-10), so all are
    # under the caseworker, and each is overdue from a week after its move-in:
    # c01 2025-03-18 → 365 + 13+30+31+30 = 469, c05 2025-09-27 → 3 + 273 = 276,
    # c04 2025-11-08 → 22 + 212 = 234, c06 2026-05-07 → 24+30 = 54, c07 05-08 → 53
    assert result["rows"] == [{
        "pilot": "(none; caseworker cw-anna)", "cases": 5, "overdue_visits": 5,
        "overdue": [{"case": "c01", "due": "2025-03-18", "days_overdue": 469},
                    {"case": "c05", "due": "2025-09-27", "days_overdue": 276},
                    {"case": "c04", "due": "2025-11-08", "days_overdue": 234},
                    {"case": "c06", "due": "2026-05-07", "days_overdue": 54},
                    {"case": "c07", "due": "2026-05-08", "days_overdue": 53}]}]


def test_caseload_as_of_a_day_between_visits_takes_the_latest_visit_by_then(view):
    result = reports.caseload(view, d("2026-07-20"), POLICY)
    rows = {r["pilot"]: r for r in result["rows"]}
    # c07's home visit of 07-10 by bolots-berit is the latest by 07-20; moved in 05-01, so
    # the weekly months run to 08-01 and the next visit is due 07-17: 3 days overdue
    assert rows["bolots-berit"] == {"pilot": "bolots-berit", "cases": 1, "overdue_visits": 1,
                                    "overdue": [{"case": "c07", "due": "2026-07-17",
                                                 "days_overdue": 3}]}
    # c01 exited 07-05; c12 moved in 07-01: c04 c05 c06 c12 are the caseworker's
    assert rows["(none; caseworker cw-anna)"]["cases"] == 4


def test_arrears_as_of_a_past_date_sum_the_amounts_and_plans_recorded_by_then(view):
    # 2026-03-05: c04's 1500.50 of 03-01, the plan comes only on 03-10
    early = reports.arrears(view, d("2026-03-05"))
    assert early["rows"] == [{"case": "c04", "client": "k-4", "stage": "training",
                              "amount": "1500.50", "repayment_plan": False}]
    assert (early["as_of"], early["total"], early["without_plan"]) == ("2026-03-05", "1500.50", 1)
    # 2026-09-01: c04 with its plan, c07's 800.00 of 08-01 and still in training (exit 09-15);
    # c06's 2000.00 comes 10-01. Total 1500.50 + 800.00 = 2300.50
    later = reports.arrears(view, d("2026-09-01"))
    assert later["rows"] == [
        {"case": "c04", "client": "k-4", "stage": "training", "amount": "1500.50",
         "repayment_plan": True},
        {"case": "c07", "client": "k-7", "stage": "training", "amount": "800.00",
         "repayment_plan": False}]
    assert (later["total"], later["without_plan"]) == ("2300.50", 1)
    # after c07's exit its stage is closed, as in the latest facts
    assert {r["case"]: r["stage"] for r in reports.arrears(view, d("2026-12-31"))["rows"]}[
        "c07"] == "closed"
    assert reports.arrears(view, d("2026-02-28"))["rows"] == []


def test_stock_status_and_reuse_as_of_a_past_date(view):
    result = reports.stock(view, d("2026-06-30"))
    # registered by 06-30: A1 A2 A3 A4 A5 A7 (A6 07-01, A8 10-01 not yet). A1 occupied by
    # c01 until the takeover at the exit of 07-05; A2 let again to c04; A3 c05 (to 08-10);
    # A4 c06; A5 c07; A7 offered to c12 (06-25; the landlord's approval leaves it offered)
    assert result["status"] == {"occupied": 5, "offered": 1}
    # vacated by then: A2 (2025-10-12), let again 2025-11-01 → 1 of 1
    assert (result["vacated"], result["relet"], result["reuse_rate"]) == (1, 1, 1.0)
    # 2026-10-01: A3 (vacated 08-10, returned 09-01) and A5 (vacated 09-15) are vacated
    # spells too, neither let again → 1 of 3; A8 is registered that day (vacant)
    result = reports.stock(view, d("2026-10-01"))
    assert (result["vacated"], result["relet"], result["reuse_rate"]) == (3, 1, 0.333)
    assert result["status"] == {"occupied": 4, "returned": 1, "taken_over": 1, "vacant": 2}


def test_as_of_is_taken_by_caseload_arrears_and_stock_and_other_options_stay_refused(view):
    for name in ("caseload", "arrears", "stock"):
        answer = run_report(view, name, ReportOptions(as_of=d("2026-06-30")), POLICY, TODAY)
        assert answer["as_of"] == "2026-06-30"
    with pytest.raises(reports.ReportError, match="does not take --quarter"):
        run_report(view, "arrears", ReportOptions(quarter="2026Q1"), POLICY, TODAY)
    with pytest.raises(reports.ReportError, match="does not take --as-of"):
        run_report(view, "returns", ReportOptions(as_of=d("2026-06-30")), POLICY, TODAY)


# --- grouped by programme, referral source, landlord ----------------------------------------

def test_waiting_time_by_programme(view):
    rows = reports.waiting_times(view, "decision-to-move-in", "programme",
                                 as_of=d("2027-06-30"))["rows"]
    assert rows == [
        # c05 09-01→09-20 = 19
        {"group": "housing_first", **stats(1, 19.0, 19.0, 19.0)},
        # c02 03-13→04-12 = 30
        {"group": "municipal_contract", **stats(1, 30.0, 30.0, 30.0)},
        # c01 30, c06 89, c07 90, c12 92, c04 120, c09 222 → mean 643/6 = 107.2, median
        # (90+92)/2 = 91, p90: position 4.5 → 120 + 0.5·(222−120) = 171.0
        {"group": "training_apartment", **stats(6, 107.2, 91.0, 171.0)},
    ]
    # every case applied as `self` (the default referral)
    by_referral = reports.waiting_times(view, "application-to-decision", "referral-source",
                                        as_of=d("2027-06-30"))["rows"]
    assert [(r["group"], r["count"]) for r in by_referral] == [("self", 11)]


def test_throughput_by_district_counts_the_period_as_one_row_per_district(view):
    rows = reports.throughput(view, "district", d("2026-01-01"), d("2026-12-31"))["rows"]
    assert rows == [
        # Farsta: applications c07 c12; grants c07 c09 c12; active on 2025-12-31: c09;
        # on 2026-12-31: c09 c12 → net +1; c07 terminated → permanent share 0/1
        {"group": "Farsta", "applications": 2, "grants": 3, "exits": {"terminated": 1},
         "active_at_end": 2, "net_change": 1, "permanent_share": 0.0, "takeovers": 0},
        # Norrmalm: applications c06 c08 c10; grants the same; active c01 c04 c05 → c04 c06
        # c08: net 0; exits deceased c05, first-hand lease c01, withdrawn c10 → 1/(3−1) = 0.5;
        # c01's takeover 06-20
        {"group": "Norrmalm", "applications": 3, "grants": 3,
         "exits": {"deceased": 1, "first_hand_lease": 1, "withdrawn": 1},
         "active_at_end": 3, "net_change": 0, "permanent_share": 0.5, "takeovers": 1},
    ]
    # the districts add up to the year's row
    year = reports.throughput(view, "year", d("2026-01-01"), d("2026-12-31"))["rows"][0]
    assert sum(r["applications"] for r in rows) == year["applications"] == 5
    assert sum(r["net_change"] for r in rows) == year["net_change"] == 1


@pytest.mark.parametrize("by", ["target-group", "programme", "referral-source", "district",
                                "landlord"])
def test_throughput_and_waiting_times_by_any_group_add_up_to_the_years_row(view, by):
    """Grouped by what people ask, each case counts in exactly one group: the groups' flows
    and the waits' counts add up to the year's."""
    first, last = d("2026-01-01"), d("2026-12-31")
    rows = reports.throughput(view, by, first, last)["rows"]
    year = reports.throughput(view, "year", first, last)["rows"][0]
    if by in ("target-group", "programme", "district"):  # more than one in the scenario
        assert len(rows) >= 2, rows
    for measure in ("applications", "grants", "active_at_end", "net_change", "takeovers"):
        assert sum(r[measure] for r in rows) == year[measure], measure
    exits: dict[str, int] = {}
    for r in rows:
        for destination, n in r["exits"].items():
            exits[destination] = exits.get(destination, 0) + n
    assert exits == year["exits"]
    waits = reports.waiting_times(view, "application-to-decision", by, as_of=last)["rows"]
    assert sum(r["count"] for r in waits) == sum(
        r["count"] for r in reports.waiting_times(view, "application-to-decision", "year",
                                                  as_of=last)["rows"])


def test_waiting_time_and_throughput_by_landlord_of_the_first_move_in(landlords):
    rows = reports.waiting_times(landlords, "decision-to-move-in", "landlord",
                                 as_of=d("2026-12-31"))["rows"]
    assert rows == [
        # y1 02-01→03-01 = 28; y3 02-01→06-21 = 28+31+30+31+20 = 140 → mean 84, median 84,
        # p90 = 28 + 0.9·112 = 128.8
        {"group": "Bostadsbolaget", **stats(2, 84.0, 84.0, 128.8)},
        # y2 02-01→04-02 = 28+31+1 = 60
        {"group": "Framtiden", **stats(1, 60.0, 60.0, 60.0)},
    ]
    # the group is the landlord of the case's first move-in, by the latest facts, so even
    # the wait before it is grouped by it (a case that never moved in is "(none)")
    decided = reports.waiting_times(landlords, "application-to-decision", "landlord",
                                    as_of=d("2026-12-31"))["rows"]
    assert [(r["group"], r["count"]) for r in decided] == [("Bostadsbolaget", 2), ("Framtiden", 1)]
    through = reports.throughput(landlords, "landlord")["rows"]
    assert through == [
        {"group": "Bostadsbolaget", "applications": 2, "grants": 2, "exits": {"own_housing": 1},
         "active_at_end": 1, "net_change": 1, "permanent_share": 1.0, "takeovers": 0},
        {"group": "Framtiden", "applications": 1, "grants": 1, "exits": {},
         "active_at_end": 1, "net_change": 1, "permanent_share": None, "takeovers": 0},
    ]


def test_stock_by_landlord(landlords):
    result = reports.stock(landlords, d("2026-06-30"), "landlord")
    assert result["rows"] == [
        # X1: vacant from 01-01 to 03-01 (59 days), vacated 06-01, let again 06-21 (20)
        # → mean 39.5, median 39.5, p90 = 20 + 0.9·39 = 55.1
        {"landlord": "Bostadsbolaget", "status": {"occupied": 1}, "vacated": 1, "relet": 1,
         "reuse_rate": 1.0, "vacant_days": stats(2, 39.5, 39.5, 55.1)},
        # X2: 01-01 → 04-02 = 31+28+31+1 = 91
        {"landlord": "Framtiden", "status": {"occupied": 1}, "vacated": 0, "relet": 0,
         "reuse_rate": None, "vacant_days": stats(1, 91.0, 91.0, 91.0)},
    ]
    # the totals: 20, 59, 91 → mean 56.7, median 59, p90 = 59 + 0.8·32 = 84.6
    assert (result["status"], result["vacant_days"]) == (
        {"occupied": 2}, stats(3, 56.7, 59.0, 84.6))
    # on 06-15 X1 is offered to y3 (06-10) and its vacated spell not let yet
    early = reports.stock(landlords, d("2026-06-15"), "landlord")["rows"][0]
    assert (early["status"], early["vacated"], early["relet"], early["reuse_rate"]) == (
        {"offered": 1}, 1, 0, 0.0)
    with pytest.raises(reports.ReportError, match="--by must be landlord or landlord-type"):
        reports.stock(landlords, d("2026-06-30"), "district")


def test_stock_by_landlord_type(landlords):
    """Bostadsbolaget registered X1 as a municipal company; Framtiden's X2 said nothing."""
    by_type = reports.stock(landlords, d("2026-06-30"), "landlord-type")
    by_landlord = reports.stock(landlords, d("2026-06-30"), "landlord")
    rename = {"Bostadsbolaget": "municipal_company", "Framtiden": "(not recorded)"}
    assert by_type["rows"] == sorted(
        ({"landlord_type": rename[r["landlord"]], **{k: v for k, v in r.items() if k != "landlord"}}
         for r in by_landlord["rows"]), key=lambda r: r["landlord_type"])
    assert [r["landlord_type"] for r in by_type["rows"]] == ["(not recorded)", "municipal_company"]
    assert by_type["rows"][1]["vacant_days"] == stats(2, 39.5, 39.5, 55.1)
    # the totals do not depend on the grouping; on a past date too
    assert {k: v for k, v in by_type.items() if k != "rows"} == \
        {k: v for k, v in by_landlord.items() if k != "rows"}
    early = reports.stock(landlords, d("2026-06-15"), "landlord-type")["rows"][1]
    assert (early["status"], early["vacated"], early["relet"]) == ({"offered": 1}, 1, 0)


# --- refusals -------------------------------------------------------------------------------

def test_refusals_are_counted_per_period_kind_and_reason_and_encrypted_reasons_stay_out(tmp_path):
    s = Scenario()
    s.register("2026-01-01", "Z1")
    for case in ("z1", "z2", "z3"):
        s.apply("2026-01-05", case, f"k-{case}", "young_adults", "Farsta")
        s.at("2026-01-06", "start_assessment", case)
    s.at("2026-01-20", "decide", "z2", outcome="denied", reason_code="not_homeless",
         reason="not in the target groups")
    s.at("2026-01-21", "decide", "z3", outcome="denied", reason="enc:v1:k1:Zm9vYmFy")
    s.at("2026-01-31", "decide", "z1", outcome="granted", programme="training_apartment")
    # a line without a reason_code (only the free-text reason, or none) is coded `other`;
    # events recorded before the codes count their text (tests/test_case_file.py)
    for offer, refused, code, reason in (
            ("2026-02-01", "2026-02-10", "references", None),
            ("2026-03-01", "2026-03-05", "references", "no answer from the last landlord"),
            ("2026-03-10", "2026-04-02", None, "enc:v1:k1:cmVmZXJlbmNlcw"),
            ("2026-04-03", "2026-04-05", None, None)):
        s.at(offer, "offer", "z1", apartment="Z1")
        s.at(refused, "landlord_decision", "z1", actor="Framtiden", approved=False,
             **({"reason": reason} if reason else {}), **({"reason_code": code} if code else {}))
    s.house("z1", "Z1", "2026-04-06", "2026-04-08", "2026-04-10")
    s.at("2027-04-10", "refer_takeover", "z1")  # the minimum period: 12 months
    s.at("2027-05-01", "takeover_decision", "z1", actor="Framtiden", approved=False,
         reason_code="arrears", reason="rent arrears")
    app_, view_ = s.run(tmp_path)
    try:
        result = reports.refusals(view_, "year")
        assert result["rows"] == [
            {"group": "2026", "kind": "denial", "reason": "not_homeless", "count": 1},
            {"group": "2026", "kind": "denial", "reason": "other", "count": 1},
            {"group": "2026", "kind": "landlord_refusal", "reason": "other", "count": 2},
            {"group": "2026", "kind": "landlord_refusal", "reason": "references", "count": 2},
            {"group": "2027", "kind": "takeover_refusal", "reason": "arrears", "count": 1},
        ]
        assert result["totals"] == {"denial": 2, "landlord_refusal": 4, "takeover_refusal": 1}
        # by quarter, only 2026Q2: the refusals of 04-02 and 04-05
        q2 = reports.refusals(view_, "quarter", d("2026-04-01"), d("2026-06-30"))["rows"]
        assert [(r["group"], r["reason"], r["count"]) for r in q2] == [("2026Q2", "other", 2)]
        # the token is not copied into the read models
        assert view_.query("SELECT COUNT(*) AS n FROM rm_steps WHERE detail LIKE 'enc:%'") == [
            {"n": 0}]
    finally:
        app_.close()


# --- the by-name list -----------------------------------------------------------------------

def test_by_name_list_counts_inflow_outflow_and_inactive_after_90_days_without_contact(tmp_path):
    s = Scenario()
    # n1 (k-n1): contacts 01-10, 01-11, 01-20; inactive 90 days later, 04-20 (11+28+31+20);
    # back with a course session 05-15; own housing 06-01 (05-15 + 90 is later: counted)
    s.apply("2026-01-10", "n1", "k-n1", "elderly", "Farsta")
    s.at("2026-01-11", "start_assessment", "n1")
    s.at("2026-01-20", "decide", "n1", outcome="granted", programme="municipal_contract")
    s.at("2026-05-15", "course_session", "n1", session=1)
    s.at("2026-06-01", "exit", "n1", destination="own_housing")
    # n2 (k-n2): denied 02-10: no longer eligible
    s.apply("2026-02-01", "n2", "k-n2", "elderly", "Farsta")
    s.at("2026-02-02", "start_assessment", "n2")
    s.at("2026-02-10", "decide", "n2", outcome="denied", reason="not eligible")
    # n5: last contact 03-02, inactive 05-31 (29+30+31); its withdrawal of 07-01 comes while
    # inactive, so it is not outflow a second time
    s.apply("2026-03-01", "n5", "k-n5", "elderly", "Farsta")
    s.at("2026-03-02", "start_assessment", "n5")
    s.at("2026-07-01", "exit", "n5", destination="withdrawn")
    # n3: k-n1 again, 3 months after the exit to housing: returned from housing; inactive
    # 09-02 + 90 = 12-01 (28+31+30+1)
    s.apply("2026-09-01", "n3", "k-n1", "elderly", "Farsta")
    s.at("2026-09-02", "start_assessment", "n3")
    # n4: k-n2 again, after a denial (not housing): returned from inactive; withdrawn 12-15
    s.apply("2026-11-01", "n4", "k-n2", "elderly", "Farsta")
    s.at("2026-11-02", "start_assessment", "n4")
    s.at("2026-12-15", "exit", "n4", destination="withdrawn")
    app_, view_ = s.run(tmp_path)

    def row(group, active, new=0, housing=0, inactive_back=0, housed=0, to_inactive=0,
            ineligible=0, net=0):
        return {"group": group, "active_at_end": active,
                "inflow": {"newly_identified": new, "returned_from_housing": housing,
                           "returned_from_inactive": inactive_back,
                           "total": new + housing + inactive_back},
                "outflow": {"housed": housed, "moved_to_inactive": to_inactive,
                            "no_longer_eligible": ineligible,
                            "total": housed + to_inactive + ineligible},
                "net_change": net}

    try:
        result = reports.by_name(view_, POLICY, "quarter")
        assert result["inactive_after_days"] == 90
        assert result["rows"] == [
            # new n1 n2 n5; n2 denied; active on 03-31: n1 (inactive only from 04-20), n5
            row("2026Q1", 2, new=3, ineligible=1, net=2),
            # n1 back 05-15; n1 (04-20) and n5 (05-31) inactive; n1 housed 06-01 → 0 active
            row("2026Q2", 0, inactive_back=1, housed=1, to_inactive=2, net=-2),
            # n3 returns from housing; n5's withdrawal while inactive is not counted
            row("2026Q3", 1, housing=1, net=1),
            # n4 returns after a denial; n3 inactive 12-01; n4 withdrawn 12-15
            row("2026Q4", 0, inactive_back=1, to_inactive=1, ineligible=1, net=-1),
        ]
        # a municipality that calls a case inactive only after 120 days: n1's gap of 115
        # days (01-20 → 05-15) is no longer inactivity, n5's is (03-02 + 120 = 06-30)
        longer = reports.by_name(view_, POLICY.model_copy(update={"inactive_after_days": 120}),
                                 "quarter", d("2026-04-01"), d("2026-06-30"))["rows"]
        assert longer == [row("2026Q2", 0, housed=1, to_inactive=1, net=-2)]
    finally:
        app_.close()


# --- the municipalities' KPIs ---------------------------------------------------------------

def test_kpis_put_the_targets_next_to_the_years_figures(view):
    rows = {r["measure"].split(" (")[0]: (r["figure"], r["met"])
            for r in reports.kpis(view, POLICY, 2025)["rows"]}
    assert rows == {
        # 2025: c02 own housing, c03 denied (not in the denominator) → 1/1
        "exits to own housing or a first-hand lease": (1.0, True),
        # A2 vacated 2025-10-12, let again 11-01 → 1/1
        "apartment reuse": (1.0, True),
        # c04 (decided 07-04, limit 10-04) moved in 11-01: executed late in 2025Q4; 2024 had
        # none, so there is nothing to halve
        "inspectorate": (1, None),
        # tenancies on 2025-12-31 (c01 c04 c05) were never visited: no named pilot
        "cases per housing pilot": (None, None),
        # moved in during 2025: c01 c02 c04 c05; all four sessions c01 c04 → 0.5
        "housing-course completion among new tenants": (0.5, False),
        # no temporary placement in the scenario, nor in 2024: nothing to reduce
        "temporary placements begun in the year": (0, None),
        # c02 03-13 → 04-12 = 30 days ≤ 106.5
        "mean wait for a municipal contract, decision to move-in": (30.0, True),
        # no case of the target group functional_impairment (Göteborg's F100: 33 a year)
        "apartments let to people with functional impairments": (0, False),
        "takeovers approved in the year": (0, None),
    }
    result = reports.kpis(view, POLICY, 2026)["rows"]
    rows = {r["measure"].split(" (")[0]: r for r in result}
    # 2026: 1 permanent of 4 − 1 deceased = 0.333; vacated A3 (returned) and A5 (vacant)
    # → 0/2; IVO rows Q2 5 (c09 c10 c08 c12 c07) + Q3 3 (c08 c09 c12) + Q4 1 (c08) = 9
    # against 2025's 1 (target ≤ 0.5); pilots on 12-31 berit 2, ahmed 1 → mean 1.5;
    # course c06 of c06 c07 c09 c12 → 0.25; no municipal-contract move-in; c01's takeover
    assert [(r["figure"], r["met"]) for r in result] == [
        (0.333, False), (0.0, False), (9, False), (1.5, False), (0.25, False), (0, None),
        (None, None), (0, False), (1, None)]
    assert rows["inspectorate"]["target"] == "<= 0.5 (half of 2025's 1)"
    assert "no target" in rows["takeovers approved in the year"]["note"]
    assert all(set(r) == {"measure", "figure", "target", "met", "definition", "note"}
               for r in result)
    with pytest.raises(reports.ReportError, match="needs --year"):
        run_report(view, "kpis", ReportOptions(), POLICY, TODAY)


def test_every_reports_answer_carries_the_version_of_its_definition(view):
    from application.reporting import REPORT_NAMES, REPORTS

    assert set(REPORT_NAMES) == set(reports.DEFINITION_VERSIONS)
    options = {"ivo": ReportOptions(quarter="2026Q2"), "kpis": ReportOptions(year=2026)}
    for name in REPORTS:
        answer = run_report(view, name, options.get(name, ReportOptions()), POLICY, TODAY)
        assert answer["definition_version"] == reports.DEFINITION_VERSIONS[name], name
    assert reports.DEFINITION_VERSIONS["ivo"] == 2  # the boundary rule changed in version 2


# --- the dashboard's series -------------------------------------------------------------------

def test_the_unexecuted_decisions_per_quarter_are_the_ivo_reports_unexecuted_rows(view):
    quarters = [f"{y}Q{q}" for y in range(2024, 2028) for q in range(1, 5)]
    counted = reports.unexecuted_per_quarter(view, quarters)
    by_report = [sum(1 for r in reports.ivo(view, q)["rows"] if r["status"] == "unexecuted")
                 for q in quarters]
    assert counted == by_report
    assert any(counted), "the municipality has unexecuted decisions in some quarter"
    assert reports.unexecuted_per_quarter(view, quarters[::-3]) == by_report[::-3]
    # the dashboard's series: each count, its change from the quarter before, and the
    # least-squares line through them
    series = reports.unexecuted_series(view, quarters)
    assert [r["ivo_count"] for r in series] == by_report
    changes = [b - a for a, b in zip(by_report, by_report[1:], strict=False)]
    assert [r["change"] for r in series] == [None, *changes]
    line = [r["trend"] for r in series]
    slope = line[1] - line[0]
    steps = [b - a for a, b in zip(line, line[1:], strict=False)]
    assert all(abs(step - slope) < 0.02 for step in steps)  # a straight line
    assert abs(sum(line) - sum(by_report)) < 0.1  # through the mean


def test_a_trend_is_the_least_squares_line():
    assert reports.trend([1, 2, 3]) == [1.0, 2.0, 3.0]
    assert reports.trend([0, 0, 3, 3]) == [-0.3, 0.9, 2.1, 3.3]
    assert reports.trend([5]) == [5]


def test_the_course_completion_per_year_is_the_caseloads_for_those_who_moved_in_that_year(view):
    years = list(range(2023, 2028))
    assert reports.course_completion_per_year(view, years) == [
        {"year": y, **reports.course_completion(view, d(f"{y}-01-01"), d(f"{y}-12-31"))}
        for y in years]
    assert any(c["completed"] for c in reports.course_completion_per_year(view, years))


def test_a_landlord_sees_the_figures_of_its_own_apartments_only(landlords, tmp_path):
    """`landlords` limits every figure, the totals too: Framtiden's stock is its X2 alone."""
    own = reports.stock(landlords, d("2026-06-30"), "landlord", {"Framtiden"})
    everyone = reports.stock(landlords, d("2026-06-30"), "landlord")
    [framtiden] = [r for r in everyone["rows"] if r["landlord"] == "Framtiden"]
    assert own["rows"] == [framtiden]
    assert {k: own[k] for k in ("status", "vacated", "relet", "reuse_rate", "vacant_days")} == \
        {k: framtiden[k] for k in ("status", "vacated", "relet", "reuse_rate", "vacant_days")}
    assert own["status"] != everyone["status"]


def test_the_landlords_apartments_page_is_its_own_stock(tmp_path):
    from application.store import HousingChain
    from application.use_cases import UseCases
    from config.settings import Settings
    from domain.access import Principal
    from domain.commands import import_line_adapter

    settings = Settings(data=tmp_path)
    app = HousingChain(env=settings.event_store_env("events"))
    lines = [{"type": "register_apartment", "apartment": a, "landlord": landlord, "rooms": 2,
              "on": "2026-01-01", "actor": "admin", "id": f"r-{a}"}
             for a, landlord in (("A1", "Framtiden"), ("A2", "Framtiden"), ("B1", "Stadsholmen"))]
    assert all(r.accepted for r in app.run([import_line_adapter.validate_python(x) for x in lines],
                                           today=d("2026-06-30"), policy=POLICY))
    app.close()
    landlord = Principal(subject="uthyrning.framtiden", roles=frozenset({"landlord"}),
                         units=frozenset({"Framtiden"}))
    seen = UseCases(settings).apartments(landlord, d("2026-06-30"))
    assert seen["status"] == {"vacant": 2} and [r["landlord"] for r in seen["rows"]] == ["Framtiden"]
    assert sorted(r["apartment"] for r in seen["apartments"]) == ["A1", "A2"]
    assert seen["definition_version"] == reports.DEFINITION_VERSIONS["stock"]


def test_a_landlord_sees_their_apartments_without_the_tenants_case_or_client(tmp_path):
    """Framtiden's X2 is lived in by y2 (client k-y2): Framtiden sees it occupied, and neither
    the case nor the client; a caseworker of y2's unit sees both."""
    from application.store import HousingChain
    from application.use_cases import UseCases
    from config.settings import Settings
    from domain.access import Principal

    settings = Settings(data=tmp_path)
    s = Scenario()
    s.register("2026-01-01", "X1", landlord="Bostadsbolaget")
    s.register("2026-01-01", "X2", landlord="Framtiden")
    three_tenancies(s)
    app = HousingChain(env=settings.event_store_env("events"))
    lines = [line for _, _, line in sorted(s.steps, key=lambda x: (x[0], x[1]))]
    assert all(r.accepted for r in app.run(lines, today=TODAY, policy=POLICY))
    app.close()
    cases = UseCases(settings)
    landlord = Principal(subject="uthyrning.framtiden", roles=frozenset({"landlord"}),
                         units=frozenset({"Framtiden"}))
    [x2] = cases.apartments(landlord)["apartments"]
    assert (x2["apartment"], x2["status"]) == ("X2", "occupied")
    assert not {"case_id", "client"} & x2.keys(), x2
    assert "y2" not in str(x2) and "k-y2" not in str(x2)
    caseworker = Principal(subject="cw-anna", roles=frozenset({"caseworker"}),
                           units=frozenset({"Farsta"}))
    seen = {r["apartment"]: r for r in cases.apartments(caseworker)["apartments"]}
    assert (seen["X2"]["case_id"], seen["X2"]["client"]) == ("y2", "k-y2")


def test_each_apartment_shows_its_open_vacancy_and_all_its_vacant_days(tmp_path):
    """X1 stood empty from its registration (2026-01-01) to the first move-in (03-01), 59
    days, and from y1's exit (06-01) to y3's move-in (06-21), 20 more; X2 from 01-01 to 04-02,
    91 days; X3, registered 06-01, is still empty on 06-30: 29 days."""
    from projections import listings

    s = Scenario()
    for apartment in ("X1", "X2"):
        s.register("2026-01-01", apartment)
    s.register("2026-06-01", "X3")
    three_tenancies(s)
    app, view = s.run(tmp_path)
    try:
        rows = {r["apartment"]: r for r in listings.apartments(view, d("2026-06-30"))}
        assert {a: (r["vacant_since"], r["vacant_days"], r["vacant_days_total"])
                for a, r in rows.items()} == {
            "X1": (None, None, 79), "X2": (None, None, 91), "X3": ("2026-06-01", 29, 29)}
        # on a day before X3 was registered, its vacancy has not begun
        early = {r["apartment"]: r for r in listings.apartments(view, d("2026-05-31"))}
        assert (early["X3"]["vacant_since"], early["X3"]["vacant_days_total"]) == (None, 0)
    finally:
        app.close()
