"""A step recorded on someone's behalf keeps both names: who did it (the actor) and who
recorded it (the signed-in person), and the case history shows both."""

from __future__ import annotations

from projections import reports
from tests.builders import client


def test_a_step_recorded_on_behalf_of_another_actor_keeps_who_recorded_it(chain):
    apply = chain.line("apply", on=chain.next_day(), case="rb-1", client=client("k-rb1"),
                       actor="handlaggare.ek")
    chain.app.run([apply], today=chain.today, policy=chain.policy, recorded_by="ops.admin")
    start = chain.step("start_assessment", "rb-1", actor="handlaggare.ek")
    chain.app.execute(start, today=chain.today, policy=chain.policy, recorded_by="ops.admin")
    rows = reports.case_history(chain.app, "rb-1")["rows"]
    assert [(r["actor"], r.get("recorded_by")) for r in rows] == [
        ("handlaggare.ek", "ops.admin"), ("handlaggare.ek", "ops.admin")]


def test_a_step_recorded_by_its_own_actor_names_no_one_else(chain):
    apply = chain.line("apply", on=chain.next_day(), case="rb-2", client=client("k-rb2"),
                       actor="handlaggare.lind")
    chain.app.run([apply], today=chain.today, policy=chain.policy, recorded_by="handlaggare.lind")
    [row] = reports.case_history(chain.app, "rb-2")["rows"]
    assert row["actor"] == "handlaggare.lind" and "recorded_by" not in row


def test_a_retried_step_answers_with_the_first_recorder(chain):
    apply = chain.line("apply", on=chain.next_day(), case="rb-3", client=client("k-rb3"),
                       actor="handlaggare.ek")
    [first] = chain.app.run([apply], today=chain.today, policy=chain.policy, recorded_by="ops.a")
    [again] = chain.app.run([apply], today=chain.today, policy=chain.policy, recorded_by="ops.b")
    assert again.duplicate and again.recorded_by == first.recorded_by == "ops.a"
