"""The two deadlines of an eviction-prevention notice: one definition, for the workflow's
timers and for the read models.

* Reach: the tenant must be reached by the end of the `reach_within_working_days`-th working
  day after the notice date (default 1), counted with the country's public holidays
  (`domain.workdays`) and ending at midnight in the municipality's time zone. A notice of
  Friday 2025-01-03 in Sweden must be answered by the end of Tuesday 2025-01-07 (Monday the
  6th is Epiphany); 0 working days means the end of the notice day itself (or of the next
  working day when the notice came on a weekend or holiday).
* Outreach: a housing pilot must be at the door within `outreach_hours` (48) of clock time
  from the moment outreach became required (the reach deadline noted, or an outreach
  assignment registered) — across nights, weekends and holidays alike.

Pure (zoneinfo and the `holidays` tables only), so workflow code may import it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.policy import Policy
from domain.workdays import add_working_days


def last_reach_day(notice_date: date, policy: Policy) -> date:
    """The last (working) day on which reaching the tenant counts as in time."""
    return add_working_days(notice_date, policy.reach_within_working_days, policy.country)


def reach_deadline(notice_date: date, policy: Policy) -> datetime:
    """The moment the reach period ends: midnight after `last_reach_day`, local time."""
    day_after = last_reach_day(notice_date, policy) + timedelta(days=1)
    return datetime.combine(day_after, time(0), ZoneInfo(policy.time_zone))


def outreach_deadline(started: datetime, policy: Policy) -> datetime:
    """`outreach_hours` of clock time after `started` (an aware moment).

    Computed in UTC: adding hours to a local time would add wall-clock hours, one too many
    or too few across a daylight-saving change.
    """
    return started.astimezone(UTC) + timedelta(hours=policy.outreach_hours)
