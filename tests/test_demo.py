"""The demo municipality: reproducible, valid import lines that the real service accepts."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from application.store import HousingChain
from domain.calendar import add_months
from domain.commands import ApplyLine, import_line_adapter
from domain.policy import Policy
from runtime.demo import generate, write

END = date(2026, 10, 30)
TODAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def lines() -> list[dict]:
    return generate()


def test_same_seed_same_lines_other_seed_other_lines(lines: list[dict]) -> None:
    assert generate() == lines
    assert json.dumps(generate(seed=2017)) == json.dumps(lines)
    assert generate(seed=2018) != lines


def test_lines_are_json_ready_sorted_and_without_ids(lines: list[dict]) -> None:
    assert 6_000 <= len(lines) <= 10_500
    dates = [line["on"] for line in lines]
    assert dates == sorted(dates)
    assert all("id" not in line for line in lines)
    assert date.fromisoformat(dates[0]) >= date(2022, 1, 3)
    assert date.fromisoformat(dates[-1]) <= END
    json.dumps(lines)  # no dates, decimals or sets left


def test_every_line_validates(lines: list[dict]) -> None:
    for n, line in enumerate(lines, 1):
        step = import_line_adapter.validate_python(line)
        assert step.type == line["type"], n
    applies = [line for line in lines if line["type"] == "apply"]
    with_identity = [line for line in applies if "personal_number" in line["client"]]
    assert 0.2 <= len(with_identity) / len(applies) <= 0.45


def test_every_line_is_accepted_by_the_service(lines: list[dict], tmp_path: Path) -> None:
    app = HousingChain(env={
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "e.sqlite"),
    })
    steps = []
    for n, line in enumerate(lines, 1):
        step = import_line_adapter.validate_python({**line, "id": f"demo:{n}"})
        if isinstance(step, ApplyLine):
            step = step.without_identity()
        steps.append(step)
    refused = []
    for i in range(0, len(steps), 200):
        chunk = steps[i:i + 200]
        results = app.run(chunk, today=TODAY, policy=Policy())
        refused += [(r.command_id, r.reason) for r in results if not r.accepted]
    assert refused == []

    # the aggregates end where the lines say
    cases = {line["case"] for line in lines if line["type"] == "apply"}
    closed = {
        line["case"] for line in lines
        if line["type"] == "exit" or (line["type"] == "decide" and line["outcome"] == "denied")
    }
    for case_id in sorted(cases):
        assert app.get_case(case_id).is_open == (case_id not in closed), case_id


def test_the_mix_is_plausible(lines: list[dict]) -> None:
    by_case: dict[str, list[dict]] = {}
    for line in lines:
        if "case" in line:
            by_case.setdefault(line["case"], []).append(line)
    assert len(by_case) == 200

    decisions = [line for line in lines if line["type"] == "decide"]
    denied = [d for d in decisions if d["outcome"] == "denied"]
    assert 0.08 <= len(denied) / len(by_case) <= 0.22
    assert all(d["reason"] for d in denied)
    programmes = Counter(d["programme"] for d in decisions if d["outcome"] == "granted")
    assert programmes.most_common(1)[0][0] == "training_apartment"
    assert set(programmes) == {"training_apartment", "housing_first", "municipal_contract"}

    exits = Counter(line["destination"] for line in lines if line["type"] == "exit")
    assert exits["first_hand_lease"] >= 15
    assert exits["own_housing"] >= 15
    assert exits["terminated"] > 0 and exits["withdrawn"] > 0 and exits["moved_away"] > 0

    closed = {line["case"] for line in denied} | {
        line["case"] for line in lines if line["type"] == "exit"
    }
    still_open = set(by_case) - closed
    assert 0.15 <= len(still_open) / len(by_case) <= 0.35
    moved_in = {line["case"] for line in lines if line["type"] == "move_in"}
    assert still_open & moved_in, "some open cases are in training"
    assert still_open - moved_in, "some open cases are still waiting"

    late = 0  # granted decisions not executed within three months
    for steps in by_case.values():
        granted = [s for s in steps if s["type"] == "decide" and s["outcome"] == "granted"]
        if not granted:
            continue
        limit = add_months(date.fromisoformat(granted[0]["on"]), 3)
        executed = [s for s in steps if s["type"] in ("move_in", "exit")]
        until = date.fromisoformat(executed[0]["on"]) if executed else END
        late += until > limit
    assert late >= 10

    apartments = [line for line in lines if line["type"] == "register_apartment"]
    assert 60 <= len(apartments) <= 95
    assert len({a["landlord"] for a in apartments}) >= 3
    lettings = Counter(line["apartment"] for line in lines if line["type"] == "move_in")
    assert any(n > 1 for n in lettings.values()), "vacated apartments are let again"
    refusals = [line for line in lines if line["type"] == "landlord_decision"
                and not line["approved"]]
    assert refusals
    kinds = Counter(line["kind"] for line in lines if line["type"] == "record_visit")
    assert kinds.most_common(1)[0][0] == "home_visit" and kinds["follow_up"] > 0
    arrears = sum(line["type"] == "rent_arrears" for line in lines)
    plans = sum(line["type"] == "repayment_plan" for line in lines)
    assert 0 < plans <= arrears


def test_scales_with_cases() -> None:
    small = generate(cases=20, seed=7)
    assert len({line["case"] for line in small if line["type"] == "apply"}) == 20
    assert len(small) < 1_500


def test_write(tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    count = write(path, cases=30, seed=3)
    text = path.read_text(encoding="utf-8").splitlines()
    assert count == len(text)
    assert [json.loads(t) for t in text] == generate(cases=30, seed=3)
    compact = [json.dumps(json.loads(t), ensure_ascii=False, separators=(",", ":")) for t in text]
    assert compact == text


def test_the_demo_moves_some_clients_repairs_apartments_and_renews_time_limited_leases(
        lines: list[dict]) -> None:
    counts = Counter(line["type"] for line in lines)
    assert counts["move_apartment"] >= 2
    assert counts["apartment_to_repair"] == counts["apartment_repaired"] >= 2
    leases = {line["case"] for line in lines if line["type"] == "move_in" and "lease_end" in line}
    renewed = {line["case"] for line in lines if line["type"] == "renew_lease"}
    assert leases and renewed and renewed <= leases


def test_the_demo_uses_the_case_file(lines: list[dict]) -> None:
    """`make run` shows the case file: plans and their reviews, temporary placements, Housing
    First cases with weekly coordinator meetings and inspections, interrupted support,
    payments against arrears with repayment plans, support levels."""
    kinds = Counter(line["type"] for line in lines)
    for kind in ("plan", "plan_review", "temporary_placement", "placement_ended",
                 "support_interrupted", "support_resumed", "rent_payment", "repayment_plan",
                 "support_level", "move_apartment"):
        assert kinds[kind] > 0, kind
    housing_first = {line["case"] for line in lines if line["type"] == "decide"
                     and line.get("programme") == "housing_first"}
    meetings: dict[str, list[date]] = {}
    for line in lines:
        if line["type"] == "record_visit" and line["kind"] == "coordinator_meeting":
            meetings.setdefault(line["case"], []).append(date.fromisoformat(line["on"]))
    assert housing_first and set(meetings) <= housing_first
    gaps = [(b - a).days for days in meetings.values() for a, b in zip(days, days[1:], strict=False)]
    assert gaps and max(gaps) <= 8  # weekly, as Järfälla's coordinator meets
    assert any(line["type"] == "record_visit" and line["kind"] == "inspection"
               and line["case"] in housing_first for line in lines)
    assert any(line["type"] == "repayment_plan" and line.get("instalments") for line in lines)
