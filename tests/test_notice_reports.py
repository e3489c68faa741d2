"""The evictions report: notices per period, reached within 48 hours, outcomes."""

from __future__ import annotations

from datetime import date

from application.notice_store import execute_notice_step, note_escalated
from application.store import HousingChain
from domain.notice_commands import (
    ContactAttempt,
    OpenCase,
    RecordOutcome,
    RegisterNotice,
)
from domain.policy import Policy
from projections import reports
from projections.runner import ProjectionRunner
from projections.view import open_view

TODAY = date(2026, 11, 24)


def test_evictions_report_counts_notices_reach_outcomes_and_cases(tmp_path):
    app = HousingChain(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    n = 0

    def do(step_class, **fields):
        nonlocal n
        n += 1
        step = step_class(actor="handlaggare.lind", id=f"n{n}", **fields)
        return execute_notice_step(app, step, today=TODAY, policy=Policy())

    # 2026Q1: reached the next day, eviction averted
    do(RegisterNotice, notice="e-1", client="kl-1", district="Farsta", on=date(2026, 2, 2))
    do(ContactAttempt, notice="e-1", reached=True, on=date(2026, 2, 3))
    do(RecordOutcome, notice="e-1", outcome="eviction_averted", on=date(2026, 3, 1))
    # 2026Q1: reached after five days (not within 48 h), eviction executed, a case opened
    do(RegisterNotice, notice="e-2", client="kl-2", district="Farsta", on=date(2026, 3, 2))
    do(ContactAttempt, notice="e-2", reached=False, on=date(2026, 3, 2))
    do(ContactAttempt, notice="e-2", reached=True,
       on=date(2026, 3, 7))
    do(OpenCase, notice="e-2", case="c-from-e2", target_group="families_with_children",
       on=date(2026, 3, 9))
    do(RecordOutcome, notice="e-2", outcome="eviction_executed", on=date(2026, 3, 10))
    # 2026Q2: an outreach assignment, not yet reached, escalated
    do(RegisterNotice, notice="o-1", kind="outreach", client="kl-3", district="Spånga",
       pilot="bolots.ahmed", on=date(2026, 4, 6))
    from application.notice_store import get_notice

    notice = get_notice(app, "o-1")
    assert note_escalated(app, "o-1", notice.outreach_due, on=date(2026, 4, 8), command_id="esc-o-1")

    runner = ProjectionRunner(app, open_view({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                              "SQLITE_DBNAME": str(tmp_path / "v.sqlite")}))
    runner.catch_up()
    rows = reports.evictions(runner.view, "quarter")["rows"]
    assert [r["group"] for r in rows] == ["2026Q1", "2026Q2"]
    q1, q2 = rows
    assert (q1["notices"], q1["reached_within_48_hours"], q1["share_reached_within_48_hours"]) \
        == (2, 1, 0.5)
    assert (q1["evictions_averted"], q1["evictions_executed"], q1["housing_cases_opened"]) \
        == (1, 1, 1)
    assert q1["kinds"] == {"eviction": 2}
    assert (q2["notices"], q2["kinds"], q2["escalated"], q2["reached_within_48_hours"]) \
        == (1, {"outreach": 1}, 1, 0)
