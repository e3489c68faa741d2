"""Calendar arithmetic: three calendar months, clamped to the month's last day."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import add_months, is_late, quarter_bounds, quarter_of, unexecuted_deadline

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


# --- add_months --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 1, 31), 3, date(2026, 4, 30)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2025, 11, 30), 3, date(2026, 2, 28)),
        (date(2026, 8, 31), 1, date(2026, 9, 30)),
        (date(2026, 5, 31), 1, date(2026, 6, 30)),
        (date(2026, 3, 31), 12, date(2027, 3, 31)),
    ],
    ids=["jan31+3", "jan31+1", "leap-jan31+1", "nov30+3-across-year", "aug31+1", "may31+1",
         "mar31+12"],
)
def test_add_months_clamps_to_the_last_day_of_a_shorter_month(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2023, 2, 28), 12, date(2024, 2, 28)),
        (date(2023, 11, 29), 3, date(2024, 2, 29)),
        (date(2099, 11, 29), 3, date(2100, 2, 28)),  # 2100 is not a leap year
    ],
    ids=["feb29+1y", "feb29+4y", "feb28+1y-into-leap", "nov29+3-leap", "century-not-leap"],
)
def test_add_months_knows_leap_years(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 10, 31), 15, date(2028, 1, 31)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 31), -13, date(2024, 12, 31)),
        (date(2026, 6, 17), 0, date(2026, 6, 17)),
    ],
    ids=["across-year", "more-than-a-year", "back-across-year", "back-clamped",
         "back-more-than-a-year", "zero"],
)
def test_add_months_crosses_years_both_ways(day, months, expected):
    assert add_months(day, months) == expected


@given(days, st.integers(min_value=-120, max_value=120))
def test_add_months_keeps_the_day_or_clamps_it_to_the_month_end(day, months):
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    last = calendar.monthrange(result.year, result.month)[1]
    assert result.day == min(day.day, last)


@given(days, st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
def test_add_months_never_goes_backwards(day, a, b):
    low, high = sorted((a, b))
    assert day <= add_months(day, low) <= add_months(day, high)


# --- the three-month limit for unexecuted decisions ------------------------------------------


def test_a_decision_of_january_31_is_late_after_april_30():
    assert unexecuted_deadline(date(2026, 1, 31)) == date(2026, 4, 30)


@pytest.mark.parametrize(
    ("quarter", "expected"),
    [
        (1, date(2026, 4, 30)),
        (2, date(2026, 7, 31)),
        (3, date(2026, 10, 31)),
        (4, date(2027, 1, 31)),
        (5, date(2027, 4, 30)),
    ],
)
def test_unexecuted_deadline_per_quarter(quarter, expected):
    assert unexecuted_deadline(date(2026, 1, 31), quarter) == expected


def test_later_quarters_count_from_the_decision_date_not_from_the_previous_deadline():
    decided = date(2025, 11, 30)
    first = unexecuted_deadline(decided, 1)
    assert first == date(2026, 2, 28)
    # chaining from the clamped deadline would give 2026-05-28
    assert unexecuted_deadline(decided, 2) == date(2026, 5, 30)
    assert add_months(first, 3) == date(2026, 5, 28)


@given(days, st.integers(min_value=1, max_value=12))
def test_unexecuted_deadline_is_three_calendar_months_per_quarter(decided, quarter):
    assert unexecuted_deadline(decided, quarter) == add_months(decided, 3 * quarter)
    assert unexecuted_deadline(decided, quarter) < unexecuted_deadline(decided, quarter + 1)


# --- is_late -----------------------------------------------------------------------------

DECIDED = date(2026, 1, 31)
LIMIT = date(2026, 4, 30)


def test_unexecuted_decision_is_not_late_on_the_limit_day():
    assert not is_late(DECIDED, None, as_of=LIMIT)


def test_unexecuted_decision_is_late_the_day_after_the_limit():
    assert is_late(DECIDED, None, as_of=LIMIT + timedelta(days=1))


def test_unexecuted_decision_is_not_late_before_the_limit():
    assert not is_late(DECIDED, None, as_of=date(2026, 2, 15))


def test_decision_executed_on_the_limit_day_is_never_late():
    assert not is_late(DECIDED, LIMIT, as_of=LIMIT)
    assert not is_late(DECIDED, LIMIT, as_of=date(2027, 12, 31))


def test_decision_executed_before_the_limit_is_never_late():
    assert not is_late(DECIDED, date(2026, 2, 1), as_of=date(2030, 1, 1))


def test_decision_executed_after_the_limit_stays_late():
    executed = LIMIT + timedelta(days=2)
    assert not is_late(DECIDED, executed, as_of=LIMIT)
    assert is_late(DECIDED, executed, as_of=LIMIT + timedelta(days=1))
    assert is_late(DECIDED, executed, as_of=executed)
    assert is_late(DECIDED, executed, as_of=date(2027, 1, 1))


# --- quarters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2026, 1, 1), "2026Q1"),
        (date(2026, 3, 31), "2026Q1"),
        (date(2026, 4, 1), "2026Q2"),
        (date(2026, 6, 30), "2026Q2"),
        (date(2026, 7, 1), "2026Q3"),
        (date(2026, 9, 30), "2026Q3"),
        (date(2026, 10, 1), "2026Q4"),
        (date(2026, 12, 31), "2026Q4"),
    ],
)
def test_quarter_of(day, label):
    assert quarter_of(day) == label


@pytest.mark.parametrize(
    ("label", "bounds"),
    [
        ("2026Q1", (date(2026, 1, 1), date(2026, 3, 31))),
        ("2026Q2", (date(2026, 4, 1), date(2026, 6, 30))),
        ("2026Q3", (date(2026, 7, 1), date(2026, 9, 30))),
        ("2026Q4", (date(2026, 10, 1), date(2026, 12, 31))),
        ("2024q1", (date(2024, 1, 1), date(2024, 3, 31))),
    ],
)
def test_quarter_bounds(label, bounds):
    assert quarter_bounds(label) == bounds


@pytest.mark.parametrize("label", ["2026Q0", "2026Q5"])
def test_quarter_bounds_refuses_a_quarter_outside_one_to_four(label):
    with pytest.raises(ValueError, match="quarter must be written like 2026Q3"):
        quarter_bounds(label)


@pytest.mark.parametrize("label", ["2026", "Q3", "2026-Q3", ""])
def test_quarter_bounds_refuses_malformed_labels(label):
    with pytest.raises(ValueError):
        quarter_bounds(label)


@given(days)
def test_a_day_lies_within_the_bounds_of_its_quarter(day):
    start, end = quarter_bounds(quarter_of(day))
    assert start <= day <= end
    assert quarter_of(start) == quarter_of(end) == quarter_of(day)
    assert quarter_of(start - timedelta(days=1)) != quarter_of(day)
    assert quarter_of(end + timedelta(days=1)) != quarter_of(day)


def test_policy_file_overrides_defaults_and_names_unknown_settings(tmp_path):
    import json

    import pytest

    from domain.policy import Policy

    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"municipality": "Vallentuna",
                                "takeover_minimum_months": {"training_apartment": 18}}))
    policy = Policy.load(path)
    assert policy.municipality == "Vallentuna"
    assert policy.takeover_minimum("training_apartment") == 18
    assert policy.weekly_visit_days == 7
    path.write_text(json.dumps({"weekly_visit_dayz": 5}))
    with pytest.raises(ValueError, match="unknown setting\\(s\\) weekly_visit_dayz"):
        Policy.load(path)


def test_a_policy_file_naming_a_programme_that_does_not_exist_is_refused(tmp_path):
    import json

    import pytest

    from domain.commands import Programme
    from domain.policy import PROGRAMMES, Policy

    assert PROGRAMMES == tuple(p.value for p in Programme)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"programmes": {"housing_frist": {"inspection_months": 2}}}))
    with pytest.raises(ValueError, match="programmes: unknown programme\\(s\\) housing_frist"):
        Policy.load(path)
    path.write_text(json.dumps({"takeover_minimum_months": {"trainig_apartment": 9}}))
    with pytest.raises(ValueError, match="takeover_minimum_months: unknown programme"):
        Policy.load(path)
    path.write_text(json.dumps({"programmes": {"housing_first": {"inspection_months": 2}}}))
    assert Policy.load(path).rules("housing_first").inspection_months == 2


@pytest.mark.parametrize("label", ["abc", "Q3", "20x6Q1", "2026Q5", "2026Q", "9999Q4", "-1Q1"])
def test_a_quarter_not_written_like_2026q3_is_refused_saying_how_to_write_it(label):
    with pytest.raises(ValueError, match="quarter must be written like 2026Q3"):
        quarter_bounds(label)
