"""What each page of the projection changed (projections/view.py, rm_changes), and which
columns an answer's SQL reads (`columns_read`): together they let a remembered answer outlive
the pages that changed nothing it read (application/memo.py)."""

from __future__ import annotations

import itertools

from application.store import HousingChain
from domain.commands import import_line_adapter
from projections import view as view_module
from projections.runner import ProjectionRunner
from projections.view import TABLES, columns_read, open_view
from tests.backends import backend  # noqa: F401 - the fixture
from tests.test_worklist import POLICY, TODAY, granted, housed


def all_of(table: str) -> set[str]:
    return {f"{table}.#rows", *(f"{table}.{c}" for c in TABLES[table][0])}


def test_the_columns_read_are_the_named_columns_of_the_named_tables():
    assert columns_read(["SELECT COUNT(*) FROM rm_cases WHERE stage = ?"]) == {
        "rm_cases.#rows", "rm_cases.stage"}
    exits = columns_read(["SELECT * FROM rm_exits"])
    assert exits == {"rm_exits.#rows", *(f"rm_exits.{c}" for c in TABLES["rm_exits"][0])}
    joined = columns_read(["SELECT c.case_id, s.on_day FROM rm_cases c JOIN rm_steps s "
                           "ON s.case_uuid = c.case_uuid"])
    assert joined == {"rm_cases.#rows", "rm_cases.case_id", "rm_cases.case_uuid",
                      "rm_steps.#rows", "rm_steps.on_day", "rm_steps.case_uuid"}
    # a star reads every column of every table the statement names
    starred = columns_read(["SELECT c.*, s.on_day FROM rm_cases c JOIN rm_steps s "
                            "ON s.case_uuid = c.case_uuid"])
    assert starred == {*all_of("rm_cases"), *all_of("rm_steps")}
    assert columns_read(["SELECT 1"]) == frozenset()


def test_each_page_records_what_it_changed_and_an_unknown_span_is_none(backend):  # noqa: F811
    store, views = backend
    app = HousingChain(env=store)
    runner = ProjectionRunner(app, open_view(views))
    ids = itertools.count()

    def step(*lines: dict) -> tuple[int, int]:
        steps = [import_line_adapter.validate_python(
            {"actor": "handlaggare.lind", **line, "id": f"c{next(ids)}"}) for line in lines]
        steps = [s.without_identity() if s.type == "apply" else s for s in steps]
        results = app.run(steps, today=TODAY, policy=POLICY)
        assert all(r.accepted for r in results), [r.reason for r in results if not r.accepted]
        before = runner.position
        runner.catch_up()
        return before, runner.position

    first = step(*granted("k-1", "2026-06-01", "2026-06-10"), *housed("k-1", "K1", "2026-10-01"),
                 *granted("k-2", "2026-09-01", "2026-09-20"))
    assert {"rm_cases.#rows", "rm_cases.applied_day", "rm_apartments.#rows",
            "rm_daily.n"} <= runner.view.changes(*first)
    visit = step({"type": "record_visit", "case": "k-1", "kind": "home_visit",
                  "on": "2026-10-05", "actor": "bolots.ahmed"})
    changed = runner.view.changes(*visit)
    assert {"rm_cases.last_home_visit", "rm_cases.housing_pilot", "rm_steps.#rows"} <= changed
    assert not {"rm_cases.applied_day", "rm_cases.#rows", "rm_daily.n",
                "rm_apartments.#rows"} & changed
    # the visit was dated after every earlier step: the latest date moved
    assert "rm_latest.day" in changed
    other = step({"type": "assign", "case": "k-2", "role": "caseworker", "to": "handlaggare.ek",
                  "on": "2026-10-20"})
    earlier = step({"type": "record_visit", "case": "k-1", "kind": "home_visit",
                    "on": "2026-10-10", "actor": "bolots.ahmed"})
    assert "rm_latest.day" not in runner.view.changes(*earlier)
    assert runner.view.changes(first[0], earlier[1]) == (
        runner.view.changes(*first) | changed | runner.view.changes(*other)
        | runner.view.changes(*earlier))
    assert runner.view.changes(earlier[1], earlier[1]) == frozenset()
    assert runner.view.changes(first[0] + 1, earlier[1]) is None  # not a page's start

    runner.rebuild()  # one page from 0: the positions between are no longer pages' starts
    assert runner.view.changes(visit[0], earlier[1]) is None
    assert runner.view.changes(0, earlier[1]) >= changed
    app.close()


def test_changes_older_than_those_kept_are_not_known(tmp_path, monkeypatch):
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}
    app = HousingChain(env={**env, "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    runner = ProjectionRunner(app, open_view({**env, "SQLITE_DBNAME": str(tmp_path / "v.sqlite")}),
                              page_size=3)
    steps = [import_line_adapter.validate_python({"actor": "handlaggare.lind", **line,
                                                  "id": f"o{n}"})
             for n, line in enumerate([*granted("k-1", "2026-06-01", "2026-06-10"),
                                       *housed("k-1", "K1", "2026-10-01")])]
    assert all(r.accepted for r in app.run([s.without_identity() if s.type == "apply" else s
                                            for s in steps], today=TODAY, policy=POLICY))
    monkeypatch.setattr(view_module, "CHANGES_KEPT", 4)
    positions = [0]
    while runner.run_page():
        positions.append(runner.position)
    head = positions[-1]
    assert len(positions) > 4
    assert runner.view.changes(positions[-3], head) is not None
    assert runner.view.changes(0, head) is None  # the first pages' changes are gone
    app.close()
