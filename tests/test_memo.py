"""Answers remembered while the read models stand still (application/memo.py): the same
question at the same position is computed once; a step recorded since moves the position and
the next answer includes it. Through the real use cases on a data directory."""

from __future__ import annotations

from application.memo import ByPosition
from application.reporting import ReportOptions
from application.store import HousingChain
from application.use_cases import UseCases
from config.settings import Settings
from domain.access import Principal
from tests.test_reports import POLICY, TODAY, Scenario

SUPERVISOR = Principal(subject="sup", roles=frozenset({"supervisor"}), units=frozenset({"Farsta"}))


def test_an_answer_is_computed_once_per_position_and_question():
    memo, calls = ByPosition(size=2), []

    def compute(tag: str):
        return lambda: calls.append(tag) or {"tag": tag, "n": len(calls)}

    first = memo.get(7, "q", compute("a"))
    assert memo.get(7, "q", compute("b")) is first
    assert memo.get(8, "q", compute("c"))["tag"] == "c"  # the position moved: computed again
    assert memo.get(8, "other", compute("d"))["tag"] == "d"
    assert memo.get(8, "third", compute("e"))["tag"] == "e"  # the oldest answer made room
    assert memo.get(8, "q", compute("f"))["tag"] == "f"
    assert memo.get(8, "third", compute("g"))["tag"] == "e"
    assert calls == ["a", "c", "d", "e", "f"]


def test_only_the_answers_at_the_latest_position_are_kept():
    memo = ByPosition()
    memo.get(3, "a", lambda: 1)
    memo.get(3, "b", lambda: 2)
    memo.get(4, "a", lambda: 3)
    assert list(memo._answers) == [(4, "a")]
    assert memo.get(3, "b", lambda: 9) == 9  # a reader behind the others: answered, not kept
    assert list(memo._answers) == [(4, "a")]


def test_a_failed_computation_is_not_remembered():
    memo = ByPosition()

    def fails():
        raise ValueError("bad option")

    for _ in range(2):
        try:
            memo.get(1, "q", fails)
        except ValueError:
            pass
    assert (memo.hits, memo.misses) == (0, 2)


def write(app: HousingChain, scenario: Scenario) -> None:
    ordered = [line for _, _, line in sorted(scenario.steps, key=lambda s: (s[0], s[1]))]
    assert all(r.accepted for r in app.run(ordered, today=TODAY, policy=POLICY))


def test_a_report_asked_again_after_a_step_includes_the_step(tmp_path):
    settings = Settings(data=tmp_path)
    app = HousingChain(env=settings.event_store_env("events"))
    s = Scenario()
    s.apply("2026-02-01", "m-1", "c-1", "other", "Farsta")
    write(app, s)
    cases = UseCases(settings)
    options = ReportOptions(by="year")
    first = cases.report(SUPERVISOR, "throughput", options)
    again = cases.report(SUPERVISOR, "throughput", options)
    assert again == first
    assert cases._answers.hits == 1

    more = Scenario()
    more.apply("2026-03-01", "m-2", "c-2", "other", "Farsta")
    write(app, more)
    after = cases.report(SUPERVISOR, "throughput", options)
    assert [r["applications"] for r in first["rows"]] == [1]
    assert [r["applications"] for r in after["rows"]] == [2]
    # every read is still in the access log, served from memory or not
    reads = [r for r in cases.audit._select("ORDER BY seq", ()) if r.action == "report.read"]
    assert [r.outcome for r in reads] == ["allowed"] * 3
    app.close()
