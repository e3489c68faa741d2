"""The reports, computed from the fact tables for any period or date.

Definitions (docs/metrics.md has them in full): days are whole days between effective dates
(end − start); the median is the usual one; the 90th percentile interpolates linearly between
closest ranks (`statistics.quantiles(..., n=10, method="inclusive")`); a period group is the
period of the interval's end date; "three months" is `domain.calendar.unexecuted_deadline`.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from itertools import accumulate
from typing import Any, Protocol

from domain.calendar import add_months, quarter_bounds, unexecuted_deadline
from domain.commands import PERMANENT_DESTINATIONS
from domain.due import visit_interval_after
from domain.errors import DomainError
from domain.policy import Policy
from projections.projector import DAY_COLUMNS
from projections.view import ChainView

PERMANENT = {d.value for d in PERMANENT_DESTINATIONS}
INTERVALS: dict[str, tuple[str, str]] = {
    "application-to-decision": ("applied_on", "decided_on"),
    "decision-to-move-in": ("decided_on", "move_in_on"),
    "move-in-to-exit": ("move_in_on", "exit_on"),
    "application-to-housed": ("applied_on", "exit_on"),
}
GROUPINGS = ("year", "quarter", "month", "target-group", "district")
PERIODS = ("year", "quarter", "month")


class ReportError(ValueError):
    """A report asked for with options that do not fit; the message names the option."""


_parse = lru_cache(maxsize=100_000)(date.fromisoformat)


def days(start: str, end: str) -> int:
    return (_parse(end) - _parse(start)).days


def period(day: str, by: str) -> str:
    if by == "year":
        return day[:4]
    if by == "month":
        return day[:7]
    if by == "quarter":
        return f"{day[:4]}Q{(int(day[5:7]) - 1) // 3 + 1}"
    raise ReportError(f"--by must be one of {', '.join(PERIODS)}, not {by!r}")


def period_bounds(label: str, by: str) -> tuple[date, date]:
    if by == "year":
        return date(int(label), 1, 1), date(int(label), 12, 31)
    if by == "quarter":
        return quarter_bounds(label)
    start = date.fromisoformat(label + "-01")
    return start, add_months(start, 1) - timedelta(days=1)


def next_period(label: str, by: str) -> str:
    return period((period_bounds(label, by)[1] + timedelta(days=1)).isoformat(), by)


def summary(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean_days": None, "median_days": None, "p90_days": None}
    p90 = (values[0] if len(values) == 1
           else statistics.quantiles(values, n=10, method="inclusive")[8])
    return {
        "count": len(values),
        "mean_days": round(statistics.fmean(values), 1),
        "median_days": round(float(statistics.median(values)), 1),
        "p90_days": round(float(p90), 1),
    }


def summaries(view: ChainView, values_sql: str, params: Iterable[Any] = ()
              ) -> dict[Any, dict[str, Any]]:
    """`summary` of the whole days `d` per group `g` of a query. The database counts each
    (group, days) pair, so a report over tens of thousands of cases moves a few hundred
    rows into Python, not one per case; the count, mean, median and percentile computed
    from those counts are exactly `summary`'s (tests/test_report_properties.py checks it)."""
    counted: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for r in view.query(f"SELECT g, d, COUNT(*) AS k FROM ({values_sql}) v GROUP BY g, d",
                        params):
        counted[r["g"]].append((int(r["d"]), int(r["k"])))
    return {group: _summary_of_counts(sorted(pairs)) for group, pairs in counted.items()}


def _summary_of_counts(pairs: list[tuple[int, int]]) -> dict[str, Any]:
    """`summary` of the values `d` each repeated `k` times, (d, k) sorted by d."""
    ends = list(accumulate(k for _, k in pairs))  # rank of each value's last copy, plus one
    n, total = ends[-1], sum(d * k for d, k in pairs)

    def at(rank: int) -> int:
        return pairs[bisect_right(ends, rank)][0]

    if n == 1:
        p90: float = pairs[0][0]
    else:  # statistics.quantiles(..., n=10, method="inclusive")[8]
        j, delta = divmod(9 * (n - 1), 10)
        p90 = (at(j) * (10 - delta) + at(j + 1) * delta) / 10
    return {
        "count": n,
        "mean_days": round(total / n, 1),
        "median_days": round((at((n - 1) // 2) + at(n // 2)) / 2, 1),
        "p90_days": round(float(p90), 1),
    }


def _within(day: str | None, date_from: date | None, date_to: date | None) -> bool:
    if day is None:
        return False
    return not ((date_from and day < date_from.isoformat())
                or (date_to and day > date_to.isoformat()))


def waiting_times(
    view: ChainView, interval: str, by: str = "year", date_from: date | None = None,
    date_to: date | None = None, as_of: date | None = None, programme: str | None = None,
    target_group: str | None = None, district: str | None = None,
) -> dict[str, Any]:
    if interval not in INTERVALS:
        raise ReportError(f"--interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
    if by not in GROUPINGS:
        raise ReportError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    start, end = INTERVALS[interval]
    start_day, end_day = DAY_COLUMNS[start], DAY_COLUMNS[end]
    if interval == "application-to-housed":
        permanent = f"destination IN ({', '.join(repr(d) for d in sorted(PERMANENT))})"
        end = f"(CASE WHEN {permanent} THEN exit_on END)"
        end_day = f"(CASE WHEN {permanent} THEN exit_day END)"
    where, params = [f"{start} IS NOT NULL"], []
    for column, value in (("programme", programme), ("target_group", target_group),
                          ("district", district)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if interval == "decision-to-move-in":
        where.append("outcome = 'granted'")
    day = (as_of or date.today()).isoformat()
    group = (_period_sql(end, by) if by in PERIODS
             else "target_group" if by == "target-group" else "district")
    done = [*where, f"{end} IS NOT NULL", f"{end} <= ?"]
    done_params = [*params, day]
    if date_from:
        done.append(f"{end} >= ?")
        done_params.append(date_from.isoformat())
    if date_to:
        done.append(f"{end} <= ?")
        done_params.append(date_to.isoformat())
    groups = summaries(view, f"SELECT {group} AS g, {end_day} - {start_day} AS d "
                             f"FROM rm_cases WHERE {' AND '.join(done)}", done_params)
    still = view.query(
        f"SELECT COUNT(*) AS n, AVG(? - {start_day}) AS mean FROM rm_cases "
        f"WHERE {' AND '.join(where)} AND {start} <= ? AND ({end} IS NULL OR {end} > ?) "
        "AND (closed_on IS NULL OR closed_on > ?)",
        [(as_of or date.today()).toordinal(), *params, day, day, day],
    )[0]
    return {
        "rows": [{"group": key, **stats} for key, stats in sorted(groups.items())],
        "still_waiting": {
            "count": still["n"],
            "mean_days_so_far": round(float(still["mean"]), 1) if still["n"] else None,
            "as_of": day,
        },
    }


def _period_sql(column: str, by: str) -> str:
    """The period label of an ISO date column, in SQL both SQLite and PostgreSQL speak."""
    if by == "year":
        return f"substr({column}, 1, 4)"
    if by == "month":
        return f"substr({column}, 1, 7)"
    return (f"substr({column}, 1, 4) || 'Q' || "
            f"CAST((CAST(substr({column}, 6, 2) AS INTEGER) + 2) / 3 AS TEXT)")


def throughput(view: ChainView, by: str = "year", date_from: date | None = None,
               date_to: date | None = None) -> dict[str, Any]:
    if by not in PERIODS:
        raise ReportError(f"--by must be one of {', '.join(PERIODS)}, not {by!r}")
    daily = [(r["day"], r["measure"], int(r["n"]))
             for r in view.query("SELECT day, measure, n FROM rm_daily")]
    if not daily:
        return {"rows": []}
    counts: dict[str, Counter] = defaultdict(Counter)
    for day, measure, n in daily:
        counts[period(day, by)][measure] += n
    first_application = min(day for day, measure, _ in daily if measure == "applications")
    first = period(date_from.isoformat() if date_from else first_application, by)
    last = period(date_to.isoformat(), by) if date_to else max(counts)
    # active at the end of the day before `first`: applied by then and not yet closed (a case
    # closes on or after the day it applied)
    before = (period_bounds(first, by)[0] - timedelta(days=1)).isoformat()
    at_start = sum(n if measure == "applications" else -n for day, measure, n in daily
                   if day <= before and (measure == "applications" or measure[:5] == "exit:"))

    out = []
    label = first
    while label <= last:
        c = counts.get(label, Counter())
        exits = {k[5:]: v for k, v in sorted(c.items()) if k.startswith("exit:")}
        leaving = sum(v for k, v in exits.items() if k not in ("deceased", "denied"))
        permanent = sum(v for k, v in exits.items() if k in PERMANENT)
        at_end = at_start + c["applications"] - sum(exits.values())
        out.append({
            "group": label,
            "applications": c["applications"],
            "grants": c["grants"],
            "exits": exits,
            "active_at_end": at_end,
            "net_change": at_end - at_start,
            "permanent_share": round(permanent / leaving, 3) if leaving else None,
            "takeovers": c["takeovers"],
        })
        at_start = at_end
        label = next_period(label, by)
    return {"rows": out}


def queue(view: ChainView, as_of: date, by: str | None = None) -> dict[str, Any]:
    day = as_of.isoformat()
    rows = view.query(
        "SELECT case_id, client_id, target_group, district, programme, decided_on FROM rm_cases "
        "WHERE outcome = 'granted' AND decided_on <= ? AND (move_in_on IS NULL OR move_in_on > ?) "
        "AND (closed_on IS NULL OR closed_on > ?)", (day, day, day))
    out = sorted(({"case": r["case_id"], "client": r["client_id"],
                   "target_group": r["target_group"], "district": r["district"],
                   "programme": r["programme"], "decision_date": r["decided_on"],
                   "days_waiting": days(r["decided_on"], day)} for r in rows),
                 key=lambda r: (-r["days_waiting"], r["case"]))
    result: dict[str, Any] = {"as_of": day, "rows": out}
    if by is not None:
        if by not in ("target-group", "district"):
            raise ReportError(f"--by must be target-group or district for the queue, not {by!r}")
        key = "target_group" if by == "target-group" else "district"
        grouped: dict[str, list[int]] = defaultdict(list)
        for r in out:
            grouped[r[key]].append(r["days_waiting"])
        result["groups"] = [{"group": k, **summary(v)} for k, v in sorted(grouped.items())]
    return result


def ivo(view: ChainView, quarter: str) -> dict[str, Any]:
    try:
        start, end = quarter_bounds(quarter)
    except ValueError as exc:
        raise ReportError(f"--quarter: {exc}") from None
    first, last = start.isoformat(), end.isoformat()
    rows = view.query(  # only decisions that can be late, or executed, within the quarter
        "SELECT case_id, client_id, programme, decided_on, move_in_on, closed_on FROM rm_cases "
        "WHERE outcome = 'granted' AND decided_on <= ? "
        "AND (move_in_on IS NULL OR move_in_on >= ?) AND (closed_on IS NULL OR closed_on >= ?)",
        (add_months(end, -2).isoformat(), first, first))
    out = []
    for r in rows:
        limit = unexecuted_deadline(date.fromisoformat(r["decided_on"])).isoformat()
        moved, closed = r["move_in_on"], r["closed_on"]
        base = {"case": r["case_id"], "client": r["client_id"], "decision_date": r["decided_on"],
                "programme": r["programme"]}
        if moved and first <= moved <= last and moved > limit:
            out.append({**base, "days_waiting": days(r["decided_on"], moved),
                        "status": "executed_late", "executed_on": moved})
        elif (limit < last and (moved is None or moved > last)
              and (closed is None or closed > last)):
            out.append({**base, "days_waiting": days(r["decided_on"], last),
                        "status": "unexecuted", "executed_on": None})
    out.sort(key=lambda r: (r["status"] != "unexecuted", r["decision_date"], r["case"]))
    return {"quarter": quarter.upper(), "first_day": first, "last_day": last, "rows": out}


def caseload(view: ChainView, as_of: date, policy: Policy, date_from: date | None = None,
             date_to: date | None = None) -> dict[str, Any]:
    """Per housing pilot: cases in a tenancy whose latest visit they made, and overdue visits."""
    day = as_of.isoformat()
    rows = view.rows(
        "SELECT case_id, housing_pilot, caseworker, move_in_on, last_home_visit FROM rm_cases "
        "WHERE stage IN ('training', 'takeover_review', 'takeover_approved')")
    pilots: dict[str, dict[str, Any]] = {}
    due_after: dict[tuple[str, str], date] = {}  # many cases share a move-in and a visit day
    for case, housing_pilot, caseworker, move_in_on, last_home_visit in rows:
        pilot = housing_pilot or f"(none; caseworker {caseworker})"
        entry = pilots.get(pilot)
        if entry is None:
            entry = pilots[pilot] = {"pilot": pilot, "cases": 0, "overdue_visits": 0,
                                     "overdue": []}
        entry["cases"] += 1
        anchor = last_home_visit or move_in_on
        due = due_after.get((anchor, move_in_on))
        if due is None:
            due = due_after[anchor, move_in_on] = visit_interval_after(
                _parse(anchor), _parse(move_in_on), policy)
        if due < as_of:
            entry["overdue_visits"] += 1
            entry["overdue"].append({"case": case, "due": due.isoformat(),
                                     "days_overdue": (as_of - due).days})
    course = view.query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN course_sessions >= 4 THEN 1 ELSE 0 END), 0)"
        " AS done FROM rm_cases WHERE move_in_on IS NOT NULL"
        + (" AND move_in_on >= ?" if date_from else "")
        + (" AND move_in_on <= ?" if date_to else ""),
        [d.isoformat() for d in (date_from, date_to) if d])[0]
    tenants, completed = course["n"], int(course["done"])
    for entry in pilots.values():
        entry["overdue"].sort(key=lambda o: (o["due"], o["case"]))
    return {
        "as_of": day,
        "rows": sorted(pilots.values(), key=lambda p: (-p["cases"], p["pilot"])),
        "course": {"new_tenants": tenants, "completed": completed,
                   "completion_rate": round(completed / tenants, 3) if tenants else None},
    }


def arrears(view: ChainView) -> dict[str, Any]:
    rows = [(Decimal(amount), case, client, stage, without_plan)
            for case, client, stage, amount, without_plan in view.rows(
                "SELECT case_id, client_id, stage, arrears, arrears_without_plan "
                "FROM rm_cases WHERE arrears <> '0'")]
    rows.sort(key=lambda r: (-r[0], r[1]))
    return {"rows": [{"case": case, "client": client, "stage": stage, "amount": str(amount),
                      "repayment_plan": not without_plan}
                     for amount, case, client, stage, without_plan in rows],
            "total": str(sum((r[0] for r in rows), Decimal(0))),
            "without_plan": sum(1 for r in rows if r[4])}


def stock(view: ChainView, as_of: date) -> dict[str, Any]:
    day = as_of.isoformat()
    statuses = {r["status"]: r["n"] for r in view.query(
        "SELECT status, COUNT(*) AS n FROM rm_apartments GROUP BY status")}
    vacated = view.query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN end_reason = 'let' THEN 1 ELSE 0 END), 0)"
        " AS relet FROM rm_vacancies WHERE kind = 'vacated'")[0]
    spells = summaries(
        view, "SELECT 1 AS g, (CASE WHEN end_on IS NULL OR end_on > ? THEN ? ELSE end_day END)"
        " - start_day AS d FROM rm_vacancies WHERE start_on <= ? AND (end_reason IS NULL OR "
        "end_reason = 'let' OR end_on > ?)", (day, as_of.toordinal(), day, day))
    relet = int(vacated["relet"])
    return {
        "as_of": day,
        "status": dict(sorted(statuses.items())),
        "vacated": vacated["n"],
        "relet": relet,
        "reuse_rate": round(relet / vacated["n"], 3) if vacated["n"] else None,
        "vacant_days": spells.get(1, summary([])),
    }


def returns(view: ChainView, date_from: date | None = None,
            date_to: date | None = None) -> dict[str, Any]:
    where, params = [f"e.destination IN ({', '.join('?' * len(PERMANENT))})"], sorted(PERMANENT)
    if date_from:
        where.append("e.exit_on >= ?")
        params.append(date_from.isoformat())
    if date_to:
        where.append("e.exit_on <= ?")
        params.append(date_to.isoformat())
    # the client's first application after the exit, and its case (the first by case id
    # on that day): one look-up per exit in the (client_id, applied_on, case_id) index
    rows = view.rows(
        "SELECT e.case_id, e.client_id, e.exit_on, e.destination, "
        "(SELECT a.applied_on || ' ' || a.case_id FROM rm_cases a "
        " WHERE a.client_id = e.client_id AND a.applied_on > e.exit_on "
        " ORDER BY a.applied_on, a.case_id LIMIT 1) AS returned "
        f"FROM rm_exits e WHERE {' AND '.join(where)}", params)
    rows.sort(key=lambda r: (r[2], r[0]))  # by exit date, then case
    out = []
    returned = dict.fromkeys((6, 12, 24), 0)
    for case, client, exit_on, destination, again in rows:
        entry = {"case": case, "client": client, "exit_on": exit_on,
                 "destination": destination, "returned_case": None, "applied_on": None,
                 "within_6_months": False, "within_12_months": False,
                 "within_24_months": False}
        if again:
            applied_on, entry["returned_case"] = again.split(" ", 1)
            entry["applied_on"] = applied_on
            exited = _parse(exit_on)
            for months in (6, 12, 24):
                if applied_on <= add_months(exited, months).isoformat():
                    entry[f"within_{months}_months"] = True
                    returned[months] += 1
        out.append(entry)
    return {
        "exits_to_permanent_housing": len(out),
        **{f"returned_within_{m}_months": n for m, n in returned.items()},
        "rows": out,
    }


def json_safe(value: Any) -> Any:
    """Event fields as JSON data: dates as ISO text, decimals and ids as text, enums by value."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # Decimal, UUID


class EventHistory(Protocol):
    def history(self, case_id: str) -> list[dict[str, Any]]: ...


def case_history(app: EventHistory, case: str) -> dict[str, Any]:
    """Every event of a case, from the event store itself rather than a copy in the view:
    the audit trail is the case's own event stream, read by the case's id, so it is never
    behind the store and never differs from it."""
    try:
        events = app.history(case)
    except DomainError as exc:
        raise ReportError(str(exc)) from None
    return {"case": case, "rows": [{"version": r["version"], "event": r["event"],
                                    "on": json_safe(r["on"]),
                                    "recorded": r["recorded"].isoformat(),
                                    "actor": r["actor"], "command_id": r["command_id"],
                                    "details": json_safe(r["details"])} for r in events]}


def evictions(view: ChainView, by: str = "year", date_from: date | None = None,
              date_to: date | None = None) -> dict[str, Any]:
    """Eviction notices and outreach per period of the notice date: how many, how many were
    reached within 48 hours (the effective date of the first contact no more than two days
    after the notice's), outcomes, and evictions averted against executed."""
    if by not in PERIODS:
        raise ReportError(f"--by must be one of {', '.join(PERIODS)}, not {by!r}")
    rows = view.query("SELECT kind, notice_date, reached_on, escalated_on, outcome, case_id "
                      "FROM rm_notices")
    groups: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if not _within(r["notice_date"], date_from, date_to):
            continue
        c = groups[period(r["notice_date"], by)]
        c[f"kind:{r['kind']}"] += 1
        c["notices"] += 1
        if r["reached_on"] and days(r["notice_date"], r["reached_on"]) <= 2:
            c["reached_within_48_hours"] += 1
        if r["escalated_on"]:
            c["escalated"] += 1
        if r["outcome"]:
            c[f"outcome:{r['outcome']}"] += 1
        if r["case_id"]:
            c["housing_cases_opened"] += 1
    out = []
    for label, c in sorted(groups.items()):
        out.append({
            "group": label,
            "notices": c["notices"],
            "kinds": {k[5:]: v for k, v in sorted(c.items()) if k.startswith("kind:")},
            "reached_within_48_hours": c["reached_within_48_hours"],
            "share_reached_within_48_hours": round(c["reached_within_48_hours"] / c["notices"], 3),
            "escalated": c["escalated"],
            "outcomes": {k[8:]: v for k, v in sorted(c.items()) if k.startswith("outcome:")},
            "evictions_averted": c["outcome:eviction_averted"],
            "evictions_executed": c["outcome:eviction_executed"],
            "housing_cases_opened": c["housing_cases_opened"],
        })
    return {"rows": out}


REPORTS: dict[str, Callable[..., dict[str, Any]]] = {
    "waiting-times": waiting_times, "throughput": throughput, "queue": queue, "ivo": ivo,
    "caseload": caseload, "arrears": arrears, "stock": stock, "returns": returns,
    "history": case_history, "evictions": evictions,
}


def flatten(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for CSV: nested objects become `parent.child` columns."""
    flat = []
    for row in rows:
        out: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, dict):
                out.update({f"{k}.{ik}": iv for ik, iv in v.items()})
            elif isinstance(v, list):
                out[k] = len(v)
            else:
                out[k] = v
        flat.append(out)
    return flat
