"""Bad input never crashes the importer: every line is either parsed or refused by number."""

from __future__ import annotations

import json
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.importer import UNDECODABLE, parse

TODAY = date(2026, 11, 24)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                       max_size=4),
    max_leaves=12,
)
valid = {
    "type": "apply", "case": "f-1", "on": "2026-01-05",
    "client": {"id": "kl-1", "target_group": "elderly", "district": "Farsta"},
}


@st.composite
def mutated_line(draw) -> str:
    line = json.loads(json.dumps(valid))
    target = draw(st.sampled_from([line, line["client"]]))
    key = draw(st.sampled_from([*target.keys(), "colour", "on", "case", "type"]))
    target[key] = draw(json_values | st.integers(min_value=10**18) | st.sampled_from(
        ["9999-12-31", "2026-02-30", "", "ÅÄÖ\u202e\u0000", "x" * 10_000]))
    return json.dumps(line, ensure_ascii=draw(st.booleans()))


lines = st.lists(
    st.one_of(
        st.text(),
        json_values.map(json.dumps),
        mutated_line(),
        st.just(json.dumps(valid)),
        st.just("[" * 100_000),
        st.just(f"{UNDECODABLE}not UTF-8 text (invalid start byte at byte 3)"),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines)
def test_every_line_is_parsed_or_refused_with_its_number_and_a_reason(texts):
    parsed, refused = parse(texts, source="fuzz", actor="import", today=TODAY)
    numbers = sorted([p.number for p in parsed] + [r.line for r in refused])
    assert numbers == [n for n, t in enumerate(texts, start=1) if t.strip()]
    assert all(r.reason for r in refused)
    for p in parsed:
        assert p.step.on is not None and p.step.actor and p.step.id
        assert "name" not in p.step.model_dump().get("client", {})
