"""Working days: weekdays that are not public holidays in Sweden or Norway.

Policy periods may be counted in working days ("reach the person within 1 working day");
the 48-hour outreach deadline is clock time. Holidays come from the `holidays` package. Not
for workflow code (the package's lazy imports break the sandbox): the service computes a
deadline when it records the step, and the workflow reads it from the snapshot.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def _holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year))


def is_working_day(day: date, country: str = "SE") -> bool:
    return day.weekday() < 5 and day not in _holidays(country, day.year)


def add_working_days(day: date, count: int, country: str = "SE") -> date:
    """The `count`-th working day after `day` (0: `day` itself if it is one, else the next)."""
    current = day
    if count == 0:
        while not is_working_day(current, country):
            current += timedelta(days=1)
        return current
    remaining = count
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current, country):
            remaining -= 1
    return current
