"""Row listings for the web's pages: the eviction notices with their clocks, and the
apartments with who lives there. Reads the fact tables only."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from domain.notice_deadlines import outreach_deadline, reach_deadline
from domain.policy import Policy
from projections.view import ChainView

NOTICE_FIELDS = ("notice_id", "kind", "source", "client_id", "district", "notice_date",
                 "eviction_date", "reached_on", "outreach_required_on", "visited_on",
                 "escalated_on", "outcome", "closed_on", "case_id")
# the fields of an apartment's row that say who lives there (`apartments`)
TENANT_FIELDS = ("case_id", "client")


def notices(view: ChainView, policy: Policy, now: datetime, open_only: bool = True,
            districts: frozenset[str] | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """The notices (the open ones: not closed), the most urgent first, each with its clock:
    the reach deadline (`domain.notice_deadlines`) until the tenant is reached, then, when
    outreach is required and no visit is recorded, the 48-hour outreach deadline counted
    from the later of the reach deadline and the start of the day outreach was required
    (the read model keeps days, not moments). `hours_left` is negative when overdue."""
    where, params = [], []
    if open_only:
        where.append("closed_on IS NULL")
    if districts is not None:
        if not districts:
            return []
        where.append(f"district IN ({', '.join('?' * len(districts))})")
        params += sorted(districts)
    sql = f"SELECT {', '.join(NOTICE_FIELDS)} FROM rm_notices"
    if where:
        sql += " WHERE " + " AND ".join(where)
    zone = ZoneInfo(policy.time_zone)
    out = []
    for r in view.query(sql, params):
        row = dict(r)
        reach = reach_deadline(date.fromisoformat(row["notice_date"]), policy)
        clock, deadline = None, None
        if row["closed_on"] is None and row["reached_on"] is None and not row["outreach_required_on"]:
            clock, deadline = "reach", reach
        elif row["closed_on"] is None and row["outreach_required_on"] and not row["visited_on"]:
            start = max(reach, datetime.combine(date.fromisoformat(row["outreach_required_on"]),
                                                time(0), zone))
            clock, deadline = "outreach", outreach_deadline(start, policy)
        row.update(clock=clock, deadline=deadline.astimezone(zone).isoformat(timespec="minutes")
                   if deadline else None,
                   hours_left=round((deadline - now).total_seconds() / 3600, 1)
                   if deadline else None)
        out.append(row)
    out.sort(key=lambda x: (x["hours_left"] is None, x["hours_left"] or 0, x["notice_id"]))
    return out[:limit]


def apartments(view: ChainView, today: date, limit: int = 2000) -> list[dict[str, Any]]:
    """Each apartment: landlord, rooms, status and the case living there (if any), and its
    vacant days: `vacant_since` and `vacant_days` of the vacancy still open (the days since
    it was registered or vacated, repairs included, as in the stock report), and
    `vacant_days_total`, every vacancy of the apartment up to `today`."""
    rows = view.query(
        "SELECT a.apartment_id AS apartment, a.landlord, a.rooms, a.status, a.registered_on, "
        "a.case_id, (SELECT c.client_id FROM rm_cases c WHERE c.case_id = a.case_id "
        "LIMIT 1) AS client, (SELECT v.start_on FROM rm_vacancies v WHERE v.apartment_uuid = "
        "a.apartment_uuid AND v.end_on IS NULL AND v.start_on <= ? ORDER BY v.start_on DESC "
        "LIMIT 1) AS vacant_since, "
        "(SELECT SUM(COALESCE(v.end_day, ?) - v.start_day) FROM rm_vacancies v WHERE "
        "v.apartment_uuid = a.apartment_uuid AND v.start_on <= ?) AS vacant_days_total "
        "FROM rm_apartments a ORDER BY a.apartment_id LIMIT ?",
        (today.isoformat(), today.toordinal(), today.isoformat(), limit))
    out = []
    for r in rows:
        row = dict(r)
        since = row["vacant_since"]
        row["vacant_days"] = (today - date.fromisoformat(since)).days if since else None
        row["vacant_days_total"] = int(row["vacant_days_total"] or 0)
        out.append(row)
    return out
