"""Calendar arithmetic shared by the aggregates, the workflow timers and the reports.

"Three months" in Swedish social-services law is three calendar months: a decision of
2026-01-31 is late when it is not executed on or before 2026-04-30. One definition, used
everywhere, so the workflow's deadline and the inspectorate report can never disagree.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later, clamped to the month's last day."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def unexecuted_deadline(decision_date: date, quarter: int = 1) -> date:
    """The last day on which a granted decision still counts as executed in time.

    `quarter` 1 is the three-month limit; 2, 3, ... are the following quarterly reports.
    A decision not executed on or before this day is reported for that quarter.
    """
    return add_months(decision_date, 3 * quarter)


def is_late(decision_date: date, executed_on: date | None, as_of: date) -> bool:
    """True when, on `as_of`, the decision was past its three-month limit unexecuted."""
    limit = unexecuted_deadline(decision_date)
    if executed_on is not None and executed_on <= limit:
        return False
    return as_of > limit


def quarter_of(day: date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def quarter_bounds(label: str) -> tuple[date, date]:
    """First and last day of a quarter written `2026Q3`."""
    year_text, _, q_text = label.upper().partition("Q")
    if not (year_text.isdigit() and q_text.isdigit() and 1 <= int(q_text) <= 4
            and 1 <= int(year_text) <= 9998):
        raise ValueError(f"quarter must be written like 2026Q3, got {label!r}")
    year, q = int(year_text), int(q_text)
    start = date(year, 3 * (q - 1) + 1, 1)
    return start, add_months(start, 3) - timedelta(days=1)
