"""The homelessness count (Socialstyrelsen's situations) against answers worked out by hand,
through the real service and projection; the same on PostgreSQL; and the client's optional
sex and birth year on the Applied event, old events without them still loading."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from application.notice_store import execute_notice_step
from application.reporting import ReportOptions, run_report
from application.store import HousingChain
from domain.case import Case
from domain.commands import Apply, import_line_adapter
from domain.notice_commands import RecordOutcome, RegisterNotice
from projections import reports
from projections.runner import ProjectionRunner
from projections.view import open_view
from tests.backends import create_database, drop_database, skip_or_fail_without_postgres, store_env, view_env
from tests.test_reports import POLICY, TODAY, Scenario, d


def town() -> Scenario:
    """Seven clients in Farsta and Spånga (all applied in 2026):

    k-1  male 1990, Farsta: granted, in a hotel from 06-01, still there        → acute
    k-2  female 2004, Spånga: granted, a shelter 05-01 to the morning of 06-15  (acute 05-15)
    k-3  male 1960, Farsta: applied from an institution 02-01, not housed       → institution
    k-4  female 1985, Farsta: training apartment from 04-01                    → long-term
    k-5  male 1975, Spånga: municipal contract 03-01, own housing from 06-01    (long-term 05-15)
    k-6  no sex or birth year given, Spånga: housing first from 05-01, and an eviction
         notice from 06-10 still open                        → long-term (counted once, there)
    k-7  no case, Farsta: an eviction notice from 06-01 still open                → at risk
    k-8  no case: a notice 03-01, the eviction averted 04-01                      → none
    """
    s = Scenario()
    for apartment in ("X4", "X5", "X6"):
        s.register("2026-01-02", apartment)
    people = {"h1": ("k-1", "male", 1990, "Farsta", "without_housing"),
              "h2": ("k-2", "female", 2004, "Spånga", "without_housing"),
              "h3": ("k-3", "male", 1960, "Farsta", "institution"),
              "h4": ("k-4", "female", 1985, "Farsta", "without_housing"),
              "h5": ("k-5", "male", 1975, "Spånga", "without_housing"),
              "h6": ("k-6", None, None, "Spånga", "without_housing")}
    for case, (client, sex, born, district, situation) in people.items():
        given = {"sex": sex, "birth_year": born} if sex else {}
        s.at("2026-01-10", "apply", case, client={
            "id": client, "target_group": "other", "district": district,
            "housing_situation": situation, **given})
        s.at("2026-01-11", "start_assessment", case)
    programmes = {"h1": "training_apartment", "h2": "training_apartment",
                  "h4": "training_apartment", "h5": "municipal_contract", "h6": "housing_first"}
    for case, programme in programmes.items():
        s.at("2026-01-20", "decide", case, outcome="granted", programme=programme)
    s.at("2026-06-01", "temporary_placement", "h1", placement="p1", kind="hotel",
         start=d("2026-06-01"))
    s.at("2026-05-01", "temporary_placement", "h2", placement="p2", kind="shelter",
         start=d("2026-05-01"))
    s.at("2026-06-15", "placement_ended", "h2", placement="p2", end=d("2026-06-15"))
    s.house("h4", "X4", "2026-03-20", "2026-03-22", "2026-04-01")
    s.house("h5", "X5", "2026-02-20", "2026-02-22", "2026-03-01")
    s.at("2026-06-01", "exit", "h5", destination="own_housing")
    s.house("h6", "X6", "2026-04-20", "2026-04-22", "2026-05-01")
    return s


def notices(app: HousingChain) -> None:
    n = 0

    def do(step_class, **fields):
        nonlocal n
        n += 1
        step = step_class(actor="cw-anna", id=f"n{n}", **fields)
        return execute_notice_step(app, step, today=TODAY, policy=POLICY)

    do(RegisterNotice, notice="e-6", client="k-6", district="Spånga", on=d("2026-06-10"))
    do(RegisterNotice, notice="e-7", client="k-7", district="Farsta", on=d("2026-06-01"))
    do(RegisterNotice, notice="e-8", client="k-8", district="Farsta", on=d("2026-03-01"))
    do(RecordOutcome, notice="e-8", outcome="eviction_averted", on=d("2026-04-01"))


def build(tmp: Path, store: dict | None = None, views: dict | None = None):
    if store is None:
        app, view = town().run(tmp)
        notices(app)
        runner = ProjectionRunner(app, view)
    else:
        app = HousingChain(env=store)
        s = town()
        ordered = [line for _, _, line in sorted(s.steps, key=lambda x: (x[0], x[1]))]
        assert all(r.accepted for r in app.run(ordered, today=TODAY, policy=POLICY))
        notices(app)
        runner = ProjectionRunner(app, open_view(views))
    runner.catch_up()
    return app, runner.view


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    app, view_ = build(tmp_path_factory.mktemp("homeless"))
    yield view_
    app.close()


def row(**counts: int) -> dict[str, int]:
    out = {s: counts.get(s, 0) for s in reports.SITUATIONS}
    return {**out, "persons": sum(out.values())}


def test_each_person_is_counted_once_in_the_most_acute_situation_of_the_day(view):
    result = reports.homelessness(view, d("2026-06-30"))
    # acute k-1 (hotel open), institution k-3, long-term k-4 and k-6 (k-6's open notice does
    # not count them twice), at risk k-7; k-2's shelter ended 06-15, k-5 left 06-01, k-8's
    # notice closed 04-01
    assert result["rows"] == [{"group": "(all)", **row(acute=1, institution=1, long_term=2,
                                                         at_risk=1)}]
    assert result["totals"] == row(acute=1, institution=1, long_term=2, at_risk=1)


def test_a_past_date_counts_the_placements_and_tenancies_of_that_day(view):
    # 05-15: k-2's shelter is open (acute); k-3 institution; k-4, k-5 (until 06-01) and k-6
    # (from 05-01) in long-term solutions; no notice open (e-7 and e-6 come later)
    assert reports.homelessness(view, d("2026-05-15"))["totals"] == row(
        acute=1, institution=1, long_term=3)


def test_by_sex_age_band_and_district_the_persons_split_without_loss(view):
    def groups(by: str) -> dict[str, dict[str, int]]:
        return {r.pop("group"): r for r in reports.homelessness(view, d("2026-06-30"), by)["rows"]}

    assert groups("sex") == {"female": row(long_term=1), "male": row(acute=1, institution=1),
                             "unknown": row(long_term=1, at_risk=1)}
    # ages reached in 2026: k-1 36 and k-4 41 (35-44), k-3 66 (65+); k-6, k-7 not given
    assert groups("age-band") == {"35-44": row(acute=1, long_term=1), "65+": row(institution=1),
                                  "unknown": row(long_term=1, at_risk=1)}
    assert groups("district") == {"Farsta": row(acute=1, institution=1, long_term=1, at_risk=1),
                                  "Spånga": row(long_term=1)}
    # a notice's person without a case has no target group
    assert groups("target-group") == {"(no case)": row(at_risk=1),
                                      "other": row(acute=1, institution=1, long_term=2)}


def test_the_report_table_takes_as_of_and_by_and_refuses_other_groupings(view):
    answer = run_report(view, "homelessness", ReportOptions(as_of=date(2026, 6, 30), by="sex"),
                        POLICY, TODAY)
    assert answer["definition_version"] == 1 and len(answer["rows"]) == 3
    with pytest.raises(reports.ReportError, match="--by must be one of sex, age-band"):
        reports.homelessness(view, d("2026-06-30"), "programme")
    with pytest.raises(reports.ReportError, match="does not take --year"):
        run_report(view, "homelessness", ReportOptions(year=2026), POLICY, TODAY)


def test_age_bands_are_of_the_age_reached_in_the_year():
    assert [reports.age_band(y, 2026) for y in (2009, 2008, 2002, 2001, 1962, 1961, None)] == [
        "under 18", "18-24", "18-24", "25-34", "55-64", "65+", "unknown"]


def test_sex_and_birth_year_are_optional_on_apply_and_recorded_on_the_case(tmp_path):
    line = {"type": "apply", "id": "a1", "case": "c1", "on": "2026-01-10", "actor": "cw",
            "client": {"id": "k1", "target_group": "other", "district": "Farsta"}}
    old = import_line_adapter.validate_python(line)
    assert old.client.sex is None and old.client.birth_year is None
    new = import_line_adapter.validate_python(
        {**line, "client": {**line["client"], "sex": "female", "birth_year": 1980}})
    assert Apply.model_validate(new.without_identity().model_dump()).client.sex == "female"
    with pytest.raises(ValueError, match="sex"):
        import_line_adapter.validate_python({**line, "client": {**line["client"], "sex": "f"}})
    app = HousingChain(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    assert all(r.accepted for r in app.run([new.without_identity()], today=TODAY,
                                           policy=POLICY))
    case = app.get_case("c1")
    assert (case.sex, case.birth_year) == ("female", 1980)


def test_an_applied_event_recorded_before_sex_and_birth_year_still_loads(tmp_path):
    """An `Applied` stored without the two fields (as every case applied before them was)
    loads, and the case and the projection read them as not given."""
    import sqlite3

    app = HousingChain(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    apply = import_line_adapter.validate_python(
        {"type": "apply", "id": "a1", "case": "c1", "on": "2026-01-10", "actor": "cw",
         "client": {"id": "k1", "target_group": "other", "district": "Farsta"}})
    assert all(r.accepted for r in app.run([apply.without_identity()], today=TODAY,
                                           policy=POLICY))
    app.close()
    db = sqlite3.connect(tmp_path / "e.sqlite")
    topic = "domain.case:Case.Applied"
    (state,) = db.execute("SELECT state FROM stored_events WHERE topic = ?", (topic,)).fetchone()
    text = state.decode("utf-8")
    assert '"sex"' in text and '"birth_year"' in text
    old = text.replace(',"sex":null', "").replace(',"birth_year":null', "")
    assert '"sex"' not in old and '"birth_year"' not in old
    db.execute("UPDATE stored_events SET state = ? WHERE topic = ?", (old.encode("utf-8"), topic))
    db.commit()
    db.close()
    again = HousingChain(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                              "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    case = again.repository.get(Case.create_id("c1"))
    assert (case.case_id, case.sex, case.birth_year) == ("c1", None, None)
    view = open_view({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                      "SQLITE_DBNAME": str(tmp_path / "v.sqlite")})
    ProjectionRunner(again, view).catch_up()
    assert view.query("SELECT sex, birth_year FROM rm_cases") == [
        {"sex": None, "birth_year": None}]


def test_sqlite_and_postgresql_count_the_same(tmp_path):
    skip_or_fail_without_postgres()
    name = create_database()
    try:
        answers = []
        for kind in ("sqlite", "postgres"):
            app, view_ = build(tmp_path / kind, store_env(kind, tmp_path, name),
                               view_env(kind, tmp_path, name))
            answers.append([reports.homelessness(view_, d(day), by)
                            for day in ("2026-05-15", "2026-06-30")
                            for by in (None, *reports.HOMELESSNESS_GROUPS)])
        assert answers[0] == answers[1]
        assert answers[0][5]["totals"] == row(acute=1, institution=1, long_term=2, at_risk=1)
    finally:
        drop_database(name)
