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
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from itertools import accumulate
from operator import itemgetter
from typing import Any, Protocol

from domain.calendar import add_months, quarter_bounds, unexecuted_deadline
from domain.commands import PERMANENT_DESTINATIONS
from domain.due import next_visit
from domain.errors import DomainError
from domain.policy import Policy
from domain.stages import IN_HOME
from projections.projector import DAY_COLUMNS
from projections.view import ChainView

PERMANENT = {d.value for d in PERMANENT_DESTINATIONS}
INTERVALS: dict[str, tuple[str, str]] = {
    "application-to-decision": ("applied_on", "decided_on"),
    "decision-to-move-in": ("decided_on", "move_in_on"),
    "move-in-to-exit": ("move_in_on", "exit_on"),
    "application-to-housed": ("applied_on", "exit_on"),
}
PERIODS = ("year", "quarter", "month")
# What a case is grouped by besides a period (`--by`): the case row's column, or for the
# landlord the landlord of the apartment of the first move-in ("(none)" before one).
DIMENSIONS: dict[str, str] = {
    "programme": "COALESCE(rm_cases.programme, '(none)')",
    "target-group": "rm_cases.target_group",
    "district": "rm_cases.district",
    "referral-source": "COALESCE(rm_cases.referral, '(none)')",
    "landlord": "COALESCE((SELECT a.landlord FROM rm_apartments a "
                "WHERE a.apartment_id = rm_cases.first_apartment), '(none)')",
}
GROUPINGS = (*PERIODS, *DIMENSIONS)


# The version of each report's definition (docs/metrics.md, "Changelog of the definitions"):
# a report's answer carries it, so a figure can be compared with one computed under another
# definition. Bump a report's number whenever what it counts changes, and say how there.
DEFINITION_VERSIONS: dict[str, int] = {
    "waiting-times": 1, "throughput": 1, "queue": 1,
    "ivo": 2,  # 2: a limit on the quarter's last day puts the decision in that quarter
    "caseload": 2,  # 2: the cases and visits as they stood on --as-of, not by the latest facts
    "arrears": 2,  # 2: --as-of (the amounts, plans and stage by then)
    "stock": 2,  # 2: status and reuse as they stood on --as-of
    "returns": 1, "history": 1, "evictions": 1, "refusals": 1, "by-name": 1,
    "kpis": 2,  # 2: temporary placements begun in the year against the year before
    "placements": 1, "supply": 1,
    "homelessness": 1,
}


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
    return {group: _summary_of_counts(sorted(pairs))
            for group, pairs in counted_days(view, values_sql, params).items()}


def counted_days(view: ChainView, values_sql: str, params: Iterable[Any] = ()
                 ) -> dict[Any, list[tuple[int, int]]]:
    """(days, how many) per group of a query, counted by the database."""
    counted: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for r in view.query(f"SELECT g, d, COUNT(*) AS k FROM ({values_sql}) v GROUP BY g, d",
                        params):
        counted[r["g"]].append((int(r["d"]), int(r["k"])))
    return counted


def summary_of_groups(counted: dict[Any, list[tuple[int, int]]], groups: Iterable[Any]
                      ) -> dict[str, Any]:
    """`summary` of the values of several groups together."""
    merged: Counter[int] = Counter()
    for g in groups:
        for d, k in counted.get(g, ()):
            merged[d] += k
    return _summary_of_counts(sorted(merged.items())) if merged else summary([])


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


def districts(view: ChainView) -> list[str]:
    """The districts of the cases and the notices."""
    return sorted(d for (d,) in view.rows("SELECT district FROM rm_cases UNION "
                                          "SELECT district FROM rm_notices") if d)


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
    group = _period_sql(end, by) if by in PERIODS else DIMENSIONS[by]
    done = [*where, f"{end} IS NOT NULL", f"{end} <= ?"]
    done_params = [*params, day]
    _bound(done, done_params, end, date_from, date_to)
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
    if by in DIMENSIONS:
        return _throughput_by(view, by, date_from, date_to)
    if by not in PERIODS:
        raise ReportError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    # the database adds the days up per period: a few hundred rows come into Python, not one
    # a day and measure (which held the interpreter while the dashboard's other reports ran)
    counts: dict[str, Counter] = defaultdict(Counter)
    for label, measure, n in view.rows(f"SELECT {_period_sql('day', by)} AS g, measure, "
                                       "SUM(n) FROM rm_daily GROUP BY 1, 2"):
        counts[label][measure] += int(n)
    first_application = view.rows(
        "SELECT MIN(day) FROM rm_daily WHERE measure = 'applications'")[0][0]
    if not counts or first_application is None:
        return {"rows": []}
    first = period(date_from.isoformat() if date_from else first_application, by)
    last = period(date_to.isoformat(), by) if date_to else max(counts)
    # active at the end of the day before `first`: applied by then and not yet closed (a case
    # closes on or after the day it applied)
    start = period_bounds(first, by)[0]
    # a step dated in year 1 (accepted before steps' dates were bounded) has no day before
    before = (start - timedelta(days=1)).isoformat() if start > date.min else "0000-12-31"
    at_start = int(view.rows(
        "SELECT COALESCE(SUM(CASE WHEN measure = 'applications' THEN n ELSE -n END), 0) "
        "FROM rm_daily WHERE day <= ? AND (measure = 'applications' "
        "OR substr(measure, 1, 5) = 'exit:')", (before,))[0][0])

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


def _throughput_by(view: ChainView, by: str, date_from: date | None,
                   date_to: date | None) -> dict[str, Any]:
    """Throughput per programme, target group, district, referral source or landlord over
    the whole of `--from`..`--to` (default: all time): one row per group, the same fields
    as a period's row. The database counts, grouped; no case row comes into Python."""
    first = date_from.isoformat() if date_from else "0000-01-01"
    last = date_to.isoformat() if date_to else "9999-12-31"
    before = (date_from - timedelta(days=1)).isoformat() if date_from else "0000-00-00"

    def within(column: str) -> str:
        return f"SUM(CASE WHEN {column} >= ? AND {column} <= ? THEN 1 ELSE 0 END)"

    def open_on() -> str:
        return "SUM(CASE WHEN applied_on <= ? AND (closed_on IS NULL OR closed_on > ?) " \
               "THEN 1 ELSE 0 END)"

    granted = "(CASE WHEN outcome = 'granted' THEN decided_on END)"
    # one pass over the case rows, by group and destination; the groups' sums added up here
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 5)
    exits: dict[str, Counter] = defaultdict(Counter)
    for g, destination, *sums, closed in view.rows(
            f"SELECT {DIMENSIONS[by]} AS g, destination, "
            f"{within('applied_on')} AS a, {within(granted)} AS gr, "
            f"{within('takeover_approved_on')} AS t, {open_on()} AS s, {open_on()} AS e, "
            f"{within('closed_on')} AS x FROM rm_cases GROUP BY 1, 2",
            [first, last, first, last, first, last, before, before, last, last, first, last]):
        totals[g] = [t + int(s or 0) for t, s in zip(totals[g], sums, strict=True)]
        if closed:
            exits[g][destination] += int(closed)
    rows = [(g, *t) for g, t in totals.items()]
    out = []
    for g, applications, grants, takeovers, at_start, at_end in sorted(rows):
        c = exits.get(g, Counter())
        leaving = sum(v for k, v in c.items() if k not in ("deceased", "denied"))
        permanent = sum(v for k, v in c.items() if k in PERMANENT)
        out.append({"group": g, "applications": int(applications), "grants": int(grants),
                    "exits": dict(sorted(c.items())), "active_at_end": int(at_end),
                    "net_change": int(at_end) - int(at_start),
                    "permanent_share": round(permanent / leaving, 3) if leaving else None,
                    "takeovers": int(takeovers)})
    return {"rows": out}


def queue(view: ChainView, as_of: date, by: str | None = None) -> dict[str, Any]:
    if by not in (None, "target-group", "district"):
        raise ReportError(f"--by must be target-group or district for the queue, not {by!r}")
    day = as_of.isoformat()
    rows = view.query(
        "SELECT case_id, client_id, target_group, district, programme, decided_on, deadline_on "
        "FROM rm_cases WHERE outcome = 'granted' AND decided_on <= ? AND (move_in_on IS NULL OR "
        "move_in_on > ?) AND (closed_on IS NULL OR closed_on > ?)", (day, day, day))
    out = sorted(({"case": r["case_id"], "client": r["client_id"],
                   "target_group": r["target_group"], "district": r["district"],
                   "programme": r["programme"], "decision_date": r["decided_on"],
                   "days_waiting": days(r["decided_on"], day), "deadline": r["deadline_on"]}
                  for r in rows),
                 key=lambda r: (-r["days_waiting"], r["case"]))
    return queue_answer(day, out, by)


def queue_answer(day: str, rows: list[dict[str, Any]], by: str | None) -> dict[str, Any]:
    """The queue's figures from its rows (the whole queue, or the cases a reader may see)."""
    # the three-month limit (`unexecuted_deadline`) passed before D: reported to the IVO
    # at the quarter's end unless executed by then
    result: dict[str, Any] = {"as_of": day, "rows": rows,
                              "past_deadline": sum(1 for r in rows if r["deadline"] < day)}
    if by is not None:
        key = "target_group" if by == "target-group" else "district"
        grouped: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            grouped[r[key]].append(r["days_waiting"])
        result["groups"] = [{"group": k, **summary(v)} for k, v in sorted(grouped.items())]
    return result


IVO_UNEXECUTED = "three-month limit on or before the quarter's last day, not executed by its end"
IVO_EXECUTED_LATE = "first move-in within the quarter, after the three-month limit"
IVO_INTERRUPTED = "support interrupted, not resumed within three months"
IVO_RESUMED_LATE = "interrupted support resumed within the quarter, after the three-month limit"


# The IVO rows of a quarter [first, last], as SQL on the decision's three-month limit that the
# projector stores (`deadline_on`): the report selects the rows with it and labels them below,
# and the kpis count them with the same text, so the two cannot disagree.
IVO_DECISIONS_SQL = (
    "outcome = 'granted' AND ((move_in_on >= ? AND move_in_on <= ? AND move_in_on > deadline_on)"
    " OR (deadline_on <= ? AND (move_in_on IS NULL OR move_in_on > ?)"
    " AND (closed_on IS NULL OR closed_on > ?)))")


def _bound(where: list[str], params: list[Any], column: str, date_from: date | None,
           date_to: date | None) -> None:
    """Add `column` between the dates (either may be open) to a WHERE list and its params."""
    if date_from:
        where.append(f"{column} >= ?")
        params.append(date_from.isoformat())
    if date_to:
        where.append(f"{column} <= ?")
        params.append(date_to.isoformat())


def _ivo_params(first: str, last: str) -> tuple[str, ...]:
    return (first, last, last, last, last)


def ivo(view: ChainView, quarter: str) -> dict[str, Any]:
    try:
        start, end = quarter_bounds(quarter)
    except ValueError as exc:
        raise ReportError(f"--quarter: {exc}") from None
    first, last = start.isoformat(), end.isoformat()
    rows = view.query(  # only the decisions late, or executed late, within the quarter
        "SELECT case_id, client_id, programme, decided_on, move_in_on, closed_on, deadline_on "
        f"FROM rm_cases WHERE {IVO_DECISIONS_SQL}", _ivo_params(first, last))
    out = []
    for r in rows:
        limit = r["deadline_on"]
        moved, closed = r["move_in_on"], r["closed_on"]
        base = {"case": r["case_id"], "client": r["client_id"], "decision_date": r["decided_on"],
                "programme": r["programme"]}
        if moved and first <= moved <= last and moved > limit:
            out.append({**base, "days_waiting": days(r["decided_on"], moved),
                        "status": "executed_late", "executed_on": moved, "deadline": limit,
                        "rule": IVO_EXECUTED_LATE})
        elif (limit <= last and (moved is None or moved > last)
              and (closed is None or closed > last)):
            # the limit is on or before the quarter's last day and the decision is still not
            # executed at the end of that day: late in this quarter (a limit on the last day
            # itself included — by the end of the day it has passed)
            out.append({**base, "days_waiting": days(r["decided_on"], last),
                        "status": "unexecuted", "executed_on": None, "deadline": limit,
                        "rule": IVO_UNEXECUTED})
    out += _ivo_interruptions(view, first, last)
    out.sort(key=lambda r: (r["status"] != "unexecuted", r["decision_date"], r["case"]))
    return {"quarter": quarter.upper(), "first_day": first, "last_day": last, "rows": out}


def _ivo_interruptions(view: ChainView, first: str, last: str) -> list[dict[str, Any]]:
    """Interrupted support not resumed within three months, reported like an unexecuted
    decision: each quarter whose last day is past the limit until it is resumed or the case
    closed, and once more in the quarter it is resumed late (domain/due.py
    `interruption_due` raises the same limit as a reminder)."""
    return [row for r in _interruptions_between(view, first, last)
            if (row := _interruption_row(r, first, last)) is not None]


def _interruptions_between(view: ChainView, first: str, last: str) -> list[dict[str, Any]]:
    """The interruptions that can be a row of a quarter from `first` to `last` (or of any
    quarter between, for a longer span): begun by `last`, not resumed before `first`, of a
    case not closed before `first`."""
    return view.query(
        "SELECT c.case_id, c.client_id, c.programme, c.decided_on, c.closed_on, "
        "i.interrupted_on, i.kind, i.resumed_on FROM rm_interruptions i "
        "JOIN rm_cases c ON c.case_uuid = i.case_uuid WHERE i.interrupted_on <= ? "
        "AND (i.resumed_on IS NULL OR i.resumed_on >= ?) AND (c.closed_on IS NULL OR "
        "c.closed_on >= ?)", (last, first, first))


def _interruption_row(r: dict[str, Any], first: str, last: str) -> dict[str, Any] | None:
    """An interruption's row in the quarter from `first` to `last`, or None."""
    found = _interruption_status(r, first, last)
    if found is None:
        return None
    status, limit = found
    row = {"case": r["case_id"], "client": r["client_id"], "decision_date": r["decided_on"],
           "programme": r["programme"], "interrupted_on": r["interrupted_on"],
           "interruption": r["kind"]}
    if status == "resumed_late":
        return {**row, "days_waiting": days(r["interrupted_on"], r["resumed_on"]),
                "status": status, "executed_on": r["resumed_on"], "deadline": limit,
                "rule": IVO_RESUMED_LATE}
    return {**row, "days_waiting": days(r["interrupted_on"], last), "status": status,
            "executed_on": None, "deadline": limit, "rule": IVO_INTERRUPTED}


@lru_cache(maxsize=8192)
def _resume_limit(interrupted_on: str) -> str:
    """The last day to resume support interrupted on that day (ISO dates): asked for each
    interruption in each quarter of the kpis' two years, of a few hundred distinct days."""
    return unexecuted_deadline(date.fromisoformat(interrupted_on)).isoformat()


def _interruption_status(r: dict[str, Any], first: str, last: str) -> tuple[str, str] | None:
    """(`resumed_late` or `support_interrupted`, the limit) when the interruption is a row of
    the quarter from `first` to `last`."""
    resumed, closed = r["resumed_on"], r["closed_on"]
    if r["interrupted_on"] > last or (resumed is not None and resumed < first) or (
            closed is not None and closed < first):
        return None
    limit = _resume_limit(r["interrupted_on"])
    if resumed and first <= resumed <= last and resumed > limit:
        return "resumed_late", limit
    if limit <= last and (resumed is None or resumed > last) and (closed is None or closed > last):
        return "support_interrupted", limit
    return None


def latest_facts(view: ChainView, day: str) -> bool:
    """True when no step is dated after `day`: the latest facts are then the facts of that
    day, and the case and apartment rows answer without the dated steps (the index on the
    steps' latest date is kept as a fact, rm_latest)."""
    found = dict(view.rows("SELECT what, day FROM rm_latest"))
    latest, apartments = found.get("rm_steps"), found.get("rm_apartment_steps")
    return (latest is None or latest <= day) and (apartments is None or apartments <= day)


# a case row's tenancy, as `tenancy_load` takes it, and whether the case is in one
TENANCY_COLUMNS = "case_id, housing_pilot AS pilot, caseworker, move_in_on, last_home_visit, programme"
IN_TENANCY = f"stage IN ({', '.join(repr(stage.value) for stage in IN_HOME)})"


def _tenancies_sql(view: ChainView, day: str) -> tuple[str, tuple[str, ...]]:
    """The cases in a tenancy at the end of `day` as (case, pilot, caseworker, move-in, latest
    home visit, programme), the pilot being the one who made that visit: from the case rows
    for the latest facts, else the latest home visit by then from the index of home visits
    alone."""
    if latest_facts(view, day):
        return f"SELECT {TENANCY_COLUMNS} FROM rm_cases WHERE {IN_TENANCY}", ()
    return ("SELECT case_id, SUBSTR(visit, 12) AS pilot, caseworker, move_in_on, "
            "SUBSTR(visit, 1, 10) AS last_home_visit, programme FROM (SELECT c.case_id, "
            "c.caseworker, c.move_in_on, c.programme, (SELECT v.on_day || ' ' || v.actor "
            "FROM rm_steps v WHERE v.case_uuid = c.case_uuid AND v.event = 'VisitRecorded' "
            "AND v.detail = 'home_visit' AND v.on_day <= ? ORDER BY v.version DESC LIMIT 1) "
            "AS visit FROM rm_cases c WHERE c.move_in_on <= ? AND (c.closed_on IS NULL OR "
            "c.closed_on > ?)) t", (day, day, day))


def pilot_caseloads(view: ChainView, as_of: date) -> list[int]:
    """The `cases` of `caseload`'s rows that have a housing pilot, counted by the database."""
    sql, params = _tenancies_sql(view, as_of.isoformat())
    return [n for _, n in view.rows(f"SELECT pilot, COUNT(*) AS n FROM ({sql}) p "
                                    "WHERE pilot IS NOT NULL AND pilot <> '' GROUP BY pilot", params)]


def caseload(view: ChainView, as_of: date, policy: Policy, date_from: date | None = None,
             date_to: date | None = None) -> dict[str, Any]:
    """Per housing pilot: the cases in a tenancy on `as_of` whose latest home visit by then
    they made, and the visits overdue on that day by the programme's rules (as the worklist
    has them: domain/due.py `next_visit`). From the dated steps, so a past date gets the
    caseload as it stood then, not today's."""
    day = as_of.isoformat()
    members: dict[str, list[tuple[str, str, int | None]]] = defaultdict(list)
    due_after: DueAfter = {}
    for row in view.rows(*_tenancies_sql(view, day)):
        pilot, case, due, days = tenancy_load(row, as_of, policy, due_after)
        members[pilot].append((case, due, days))
    return {
        "as_of": day,
        "rows": pilot_order(pilot_row(pilot, loads) for pilot, loads in members.items()),
        "course": course_completion(view, date_from, date_to),
    }


# many cases share a move-in, a visit day and a programme: (due date, days overdue) once for
# each such triple (days None when not overdue)
DueAfter = dict[tuple[str | None, str, str | None], tuple[str, int | None]]


def tenancy_load(row: Sequence[Any], as_of: date, policy: Policy,
                 due_after: DueAfter) -> tuple[str, str, str, int | None]:
    """A tenancy row of `_tenancies_sql` as (pilot, case, next visit due, days overdue on
    `as_of` or None); a case without a pilot counts under its caseworker's name."""
    case, housing_pilot, caseworker, move_in_on, last_home_visit, programme = row[:6]
    due = due_after.get((last_home_visit, move_in_on, programme))
    if due is None:
        on = next_visit(_parse(move_in_on), _parse(last_home_visit) if last_home_visit
                        else None, policy.rules(programme))
        due = due_after[last_home_visit, move_in_on, programme] = (
            on.isoformat(), (as_of - on).days if on < as_of else None)
    return housing_pilot or f"(none; caseworker {caseworker})", case, due[0], due[1]


def pilot_row(pilot: str, loads: Iterable[tuple[str, str, int | None]]) -> dict[str, Any]:
    """A pilot's row of the caseload from their cases' (case, due, days overdue or None)."""
    loads = list(loads)
    late = sorted((due, case, days) for case, due, days in loads if days is not None)
    return {"pilot": pilot, "cases": len(loads), "overdue_visits": len(late),
            "overdue": [{"case": case, "due": due, "days_overdue": days}
                        for due, case, days in late]}


def pilot_order(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The caseload's rows, the largest caseload first."""
    return sorted(rows, key=lambda p: (-p["cases"], p["pilot"]))


def course_completion(view: ChainView, date_from: date | None = None,
                      date_to: date | None = None) -> dict[str, Any]:
    """New tenants (moved in between the dates) and how many of them completed the housing
    course (four sessions)."""
    course = view.query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN course_sessions >= 4 THEN 1 ELSE 0 END), 0)"
        " AS done FROM rm_cases WHERE move_in_on IS NOT NULL"
        + (" AND move_in_on >= ?" if date_from else "")
        + (" AND move_in_on <= ?" if date_to else ""),
        [d.isoformat() for d in (date_from, date_to) if d])[0]
    tenants, completed = course["n"], int(course["done"])
    return {"new_tenants": tenants, "completed": completed,
            "completion_rate": round(completed / tenants, 3) if tenants else None}


def arrears(view: ChainView, as_of: date | None = None) -> dict[str, Any]:
    """Rent arrears per case as they stood at the end of `as_of` (default: the latest
    facts): the amounts recorded by then, whether a plan was agreed after the latest of
    them, and the case's stage on that day."""
    day = (as_of or date.max).isoformat()
    if latest_facts(view, day):
        rows = [(Decimal(amount), case, client, stage, without_plan)
                for case, client, stage, amount, without_plan in view.rows(
                    "SELECT case_id, client_id, stage, arrears, arrears_without_plan "
                    "FROM rm_cases WHERE arrears <> '0'")]
        return _arrears_answer(as_of, day, rows)
    per_case: dict[str, list[Any]] = {}
    for case, client, event, detail, stage in _arrears_steps(view, day):
        entry = per_case.setdefault(case, [Decimal(0), case, client, stage, 0])
        if event == "RentArrearsRecorded":
            entry[0] += Decimal(detail)
            entry[4] = 1
        elif event == "RentPaymentRecorded":  # detail: minus what it took off
            entry[0] += Decimal(detail)
            entry[4] = entry[4] if entry[0] else 0
        else:
            entry[4] = 0
    return _arrears_answer(as_of, day, [tuple(r) for r in per_case.values() if r[0]])


def _arrears_steps(view: ChainView, day: str) -> list[tuple[Any, ...]]:
    """(case, client, event, detail, stage on `day`) of the arrears steps by `day`, by case and
    version. The steps come from the index on the steps' kind alone; a case's id, client and
    stage that day are looked up once a case, not once a step. The stage that day is the
    stage of the case's last step dated by then; when the step that began its current stage
    is dated by then, every later step kept that stage, so it is the current one (most
    tenancies: no look-up in the steps)."""
    kinds = ("event IN ('RentArrearsRecorded', 'RepaymentPlanAgreed', 'RentPaymentRecorded') "
             "AND on_day <= ?")
    cases = {uuid: (case, client, stage) for uuid, case, client, stage in view.rows(
        "SELECT k.case_uuid, c.case_id, c.client_id, CASE WHEN c.stage_since <= ? THEN c.stage "
        "ELSE (SELECT t.stage FROM rm_steps t WHERE t.case_uuid = k.case_uuid AND t.on_day <= ? "
        "ORDER BY t.version DESC LIMIT 1) END "
        f"FROM (SELECT DISTINCT case_uuid FROM rm_steps WHERE {kinds}) k "
        "JOIN rm_cases c ON c.case_uuid = k.case_uuid", (day, day, day))}
    # a case's steps in order of version; the answer orders the cases itself
    steps = sorted(view.rows(f"SELECT case_uuid, version, event, detail FROM rm_steps WHERE {kinds}",
                             (day,)))
    return [(cases[uuid][0], cases[uuid][1], event, detail, cases[uuid][2])
            for uuid, _, event, detail in steps]


def _arrears_answer(as_of: date | None, day: str, rows: list[Any]) -> dict[str, Any]:
    rows.sort(key=itemgetter(1))  # by case, then (stable) by amount, largest first
    rows.sort(key=itemgetter(0), reverse=True)
    return arrears_answer(None if as_of is None else day,
                          [{"case": case, "client": client, "stage": stage, "amount": str(amount),
                            "repayment_plan": not without_plan}
                           for amount, case, client, stage, without_plan in rows])


def arrears_answer(as_of: str | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The arrears' totals from their rows (every case, or the cases a reader may see)."""
    return {"as_of": as_of, "rows": rows,
            "total": str(sum((Decimal(r["amount"]) for r in rows), Decimal(0))),
            "without_plan": sum(1 for r in rows if not r["repayment_plan"])}


NOT_RECORDED = "(not recorded)"


def stock(view: ChainView, as_of: date, by: str | None = None,
          landlords: Iterable[str] | None = None) -> dict[str, Any]:
    """The stock as it stood on `as_of`: each apartment registered by then in its status of
    that day (from its dated status changes), the vacancies begun by then and those let
    again by then, and the vacant days up to that day; `by="landlord"` adds a row per
    landlord with the same figures, `by="landlord-type"` one per kind of landlord (municipal
    company, private; "(not recorded)" when the registration did not say). `landlords`
    limits every figure to those landlords' apartments (what a landlord may see)."""
    if by not in (None, "landlord", "landlord-type"):
        raise ReportError(f"--by must be landlord or landlord-type for the stock, not {by!r}")
    day = as_of.isoformat()
    if by == "landlord-type":
        owner = f"COALESCE(a.landlord_type, '{NOT_RECORDED}')"
        landlord = (f"COALESCE((SELECT t.landlord_type FROM rm_apartments t WHERE "
                    f"t.apartment_uuid = v.apartment_uuid), '{NOT_RECORDED}')")
    else:
        owner = "a.landlord"
        landlord = "v.landlord"  # copied onto the vacancy when it begins (no look-up a row)
    statuses: dict[str, Counter] = defaultdict(Counter)
    status_of = ("a.status" if latest_facts(view, day) else
                 "(SELECT s.status FROM rm_apartment_steps s WHERE s.apartment_uuid = "
                 "a.apartment_uuid AND s.on_day <= ? ORDER BY s.version DESC LIMIT 1)")
    only = sorted(set(landlords)) if landlords is not None else None
    of_a = "" if only is None else f" AND a.landlord IN ({', '.join('?' * len(only))})"
    of_v = "" if only is None else f" AND v.landlord IN ({', '.join('?' * len(only))})"
    some = only or []
    for g, status, n in view.rows(
            f"SELECT g, status, COUNT(*) AS n FROM (SELECT {owner} AS g, {status_of} AS status "
            f"FROM rm_apartments a WHERE a.registered_on <= ?{of_a}) x GROUP BY g, status",
            ((day, day) if "?" in status_of else (day,)) + tuple(some)):
        statuses[g][status] += int(n)
    vacated = {g: (int(n), int(relet)) for g, n, relet in view.rows(
        f"SELECT {landlord} AS g, COUNT(*) AS n, COALESCE(SUM(CASE WHEN end_reason = 'let' AND "
        "end_on <= ? THEN 1 ELSE 0 END), 0) AS relet FROM rm_vacancies v WHERE kind = 'vacated' "
        f"AND start_on <= ?{of_v} GROUP BY 1", (day, day, *some))}
    spells = counted_days(
        view, f"SELECT {landlord} AS g, (CASE WHEN end_on IS NULL OR end_on > ? THEN ? "
        "ELSE end_day END) - start_day AS d FROM rm_vacancies v WHERE start_on <= ? AND "
        f"(end_reason IS NULL OR end_reason = 'let' OR end_on > ?){of_v}",
        (day, as_of.toordinal(), day, day, *some))

    def figures(groups: Iterable[str]) -> dict[str, Any]:
        groups = list(groups)
        status = sum((statuses.get(g, Counter()) for g in groups), Counter())
        n = sum(vacated.get(g, (0, 0))[0] for g in groups)
        relet = sum(vacated.get(g, (0, 0))[1] for g in groups)
        return {"status": dict(sorted(status.items())), "vacated": n, "relet": relet,
                "reuse_rate": round(relet / n, 3) if n else None,
                "vacant_days": summary_of_groups(spells, groups)}

    landlords = sorted(set(statuses) | set(vacated) | set(spells))
    result = {"as_of": day, **figures(landlords)}
    if by is not None:
        result["rows"] = [{by.replace("-", "_"): g, **figures([g])} for g in landlords]
    return result


def returns(view: ChainView, date_from: date | None = None,
            date_to: date | None = None) -> dict[str, Any]:
    where, params = [f"e.destination IN ({', '.join('?' * len(PERMANENT))})"], sorted(PERMANENT)
    _bound(where, params, "e.exit_on", date_from, date_to)
    # the client's first application after the exit, and its case (the first by case id
    # on that day): one look-up per exit in the (client_id, applied_on, case_id) index, for
    # the clients with more than one case only (found in one pass over that index)
    rows = view.rows(
        "SELECT e.case_id, e.client_id, e.exit_on, e.destination, "
        "CASE WHEN e.client_id IN (SELECT client_id FROM rm_cases GROUP BY client_id "
        "HAVING COUNT(*) > 1) THEN (SELECT a.applied_on || ' ' || a.case_id FROM rm_cases a "
        " WHERE a.client_id = e.client_id AND a.applied_on > e.exit_on "
        " ORDER BY a.applied_on, a.case_id LIMIT 1) END AS returned "
        f"FROM rm_exits e WHERE {' AND '.join(where)}", params)
    rows.sort(key=lambda r: (r[2], r[0]))  # by exit date, then case
    out = []
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
        out.append(entry)
    return returns_answer(out)


def returns_answer(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The returns' figures from their rows (every exit, or the cases a reader may see)."""
    return {
        "exits_to_permanent_housing": len(rows),
        **{f"returned_within_{m}_months": sum(1 for r in rows if r[f"within_{m}_months"])
           for m in (6, 12, 24)},
        "rows": rows,
    }


# The reports that list cases by id. A reader who may see only some cases (a caseworker or
# supervisor of some units) gets these lists with their cases only (`cases_only`).
CASE_LISTS = ("queue", "ivo", "arrears", "returns", "caseload")


def cases_only(name: str, answer: dict[str, Any], keep: Callable[[str], bool],
               by: str | None = None) -> dict[str, Any]:
    """A report's answer with only the cases `keep` accepts: the report of those cases, its
    figures computed again from the rows kept, so a count never includes a case the list
    leaves out. The caseload is the exception: a pilot's counts (`cases`, `overdue_visits`)
    stay whole, a pilot's workload being a staff figure that names no case, and its list of
    overdue visits keeps the reader's cases. A return is kept by the case that exited; the
    case it returned with is named only when the reader may read it too."""
    if name == "caseload":
        return {**answer, "rows": [{**p, "overdue": [o for o in p["overdue"] if keep(o["case"])]}
                                   for p in answer["rows"]]}
    rows = [r for r in answer["rows"] if keep(r["case"])]
    if name == "queue":
        return {**answer, **queue_answer(answer["as_of"], rows, by)}
    if name == "arrears":
        return {**answer, **arrears_answer(answer["as_of"], rows)}
    if name == "returns":
        return {**answer, **returns_answer([
            r if r["returned_case"] is None or keep(r["returned_case"])
            else {**r, "returned_case": None, "returned_to_another_unit": True} for r in rows])}
    if name == "ivo":
        return {**answer, "rows": rows}
    raise ValueError(f"report {name} lists no cases")


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
    return {"case": case, "definition_version": DEFINITION_VERSIONS["history"],
            "rows": [{"version": r["version"], "event": r["event"],
                                    "on": json_safe(r["on"]),
                                    "recorded": r["recorded"].isoformat(),
                                    "actor": r["actor"], "command_id": r["command_id"],
                                    **({"recorded_by": r["recorded_by"]}
                                       if r.get("recorded_by") else {}),
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


def by_name(view: ChainView, policy: Policy, by: str = "month", date_from: date | None = None,
            date_to: date | None = None) -> dict[str, Any]:
    """The by-name list measures (Built for Zero) per period: active on its last day, inflow
    and outflow by kind, and net change. Levels (active) and flows are computed separately,
    from the same facts, so that net change = inflow − outflow is a check, not a definition
    (tests/test_report_properties.py). Contact days come from the dated steps; the database
    finds the gaps longer than `policy.inactive_after_days` with a window function."""
    if by not in PERIODS:
        raise ReportError(f"--by must be one of {', '.join(PERIODS)}, not {by!r}")
    n = policy.inactive_after_days
    label = lru_cache(maxsize=None)(lambda day: period(date.fromordinal(day).isoformat(), by))
    opened, closed = [], []
    for day, measure, k in view.rows(
            "SELECT day, measure, n FROM rm_daily WHERE measure = 'applications' "
            "OR substr(measure, 1, 5) = 'exit:'"):
        (opened if measure == "applications" else closed).append((_parse(day).toordinal(), k))
    if not opened:
        return {"inactive_after_days": n, "rows": []}
    # inactive spells: a gap between two contacts longer than n days, and the time after the
    # last contact once it is longer than n days. The gaps come from the covering index on
    # (gap, step_day), counted per (gap, day) in the index's order (no sort), then by the
    # day each begins and the day each ends.
    gaps = view.rows("SELECT step_day, gap, COUNT(*) FROM rm_steps WHERE gap > ? "
                     "GROUP BY gap, step_day", (n,))
    gap_starts: Counter[int] = Counter()
    gap_ends: Counter[int] = Counter()
    for day, gap, k in gaps:
        gap_starts[day - gap + n] += k
        gap_ends[day] += k
    # the cases' passes read the covering index on (last contact, closed, destination): the
    # inactive spells after the last contact by the day each begins (in the index's order)
    # and, when closed, by the day each ends; the closures within n days of a contact
    permanent = ", ".join(repr(d) for d in sorted(PERMANENT))
    spell_starts = [(last + n, k) for last, k in view.rows(
        "SELECT last_contact_day, COUNT(*) FROM rm_cases WHERE last_contact_day IS NOT NULL "
        "AND (closed_day IS NULL OR closed_day > last_contact_day + ?) GROUP BY last_contact_day",
        (n,))]
    spell_ends = view.rows("SELECT closed_day, COUNT(*) FROM rm_cases WHERE closed_day > "
                           "last_contact_day + ? GROUP BY closed_day", (n,))
    closures = view.rows(
        f"SELECT closed_day, CASE WHEN destination IN ({permanent}) THEN 1 ELSE 0 END, "
        "COUNT(*) FROM rm_cases WHERE last_contact_day + ? >= closed_day GROUP BY 1, 2", (n,))
    # applications by a client seen before (not the client's first case, by date then case
    # id; only clients with more than one case can have one), each with the client's latest
    # exit to housing before it (a look-up in the exits' (client, date) index)
    again = [(_parse(applied_on).toordinal(), housed_exit) for applied_on, housed_exit in view.rows(
        "SELECT x.applied_on, (SELECT MAX(e.exit_on) FROM rm_exits e WHERE e.client_id = "
        f"x.client_id AND e.exit_on < x.applied_on AND e.destination IN ({permanent})) "
        "FROM (SELECT client_id, applied_on, ROW_NUMBER() OVER (PARTITION BY client_id "
        "ORDER BY applied_on, case_id) AS k FROM rm_cases WHERE client_id IN (SELECT client_id "
        "FROM rm_cases GROUP BY client_id HAVING COUNT(*) > 1)) x WHERE k > 1")]

    flows: dict[str, Counter] = defaultdict(Counter)
    for day, k in opened:
        flows[label(day)]["newly_identified"] += int(k)
    for day, housed_exit in again:
        kind = ("returned_from_housing" if housed_exit and date.fromordinal(day)
                <= add_months(_parse(housed_exit), 24) else "returned_from_inactive")
        flows[label(day)]["newly_identified"] -= 1
        flows[label(day)][kind] += 1
    starts: list[tuple[int, int]] = []  # (day an inactive spell begins, how many)
    ends: list[tuple[int, int]] = []
    for s, k in (*gap_starts.items(), *spell_starts):
        flows[label(s)]["moved_to_inactive"] += int(k)
        starts.append((s, k))
    for r, k in gap_ends.items():
        flows[label(r)]["returned_from_inactive"] += int(k)
        ends.append((r, k))
    ends.extend(spell_ends)
    for day, housed, k in closures:
        flows[label(day)]["housed" if housed else "no_longer_eligible"] += int(k)
    opened_days, opened_n = _cumulative(opened)
    closed_days, closed_n = _cumulative(closed)
    start_days, start_n = _cumulative(starts)
    end_days, end_n = _cumulative(ends)

    def active(day: int) -> int:
        """Open at the end of `day` (applied, not closed) and not inactive then."""
        def upto(days: list[int], counts: list[int]) -> int:
            i = bisect_right(days, day)
            return counts[i - 1] if i else 0
        return (upto(opened_days, opened_n) - upto(closed_days, closed_n)
                - (upto(start_days, start_n) - upto(end_days, end_n)))

    # from the first application (a case closes on or after it applied) to the last fact
    first = date_from.isoformat() if date_from else date.fromordinal(opened_days[0]).isoformat()
    last = date_to.isoformat() if date_to else date.fromordinal(
        max(opened_days[-1], closed_days[-1] if closed_days else 0)).isoformat()
    first, last = period(first, by), period(last, by)
    out = []
    at_start = active(period_bounds(first, by)[0].toordinal() - 1)
    current = first
    while current <= last:
        c = flows.get(current, Counter())
        inflow = {k: c[k] for k in ("newly_identified", "returned_from_housing",
                                    "returned_from_inactive")}
        outflow = {k: c[k] for k in ("housed", "moved_to_inactive", "no_longer_eligible")}
        at_end = active(period_bounds(current, by)[1].toordinal())
        out.append({"group": current, "active_at_end": at_end,
                    "inflow": {**inflow, "total": sum(inflow.values())},
                    "outflow": {**outflow, "total": sum(outflow.values())},
                    "net_change": at_end - at_start})
        at_start = at_end
        current = next_period(current, by)
    return {"inactive_after_days": n, "rows": out}


def _cumulative(per_day: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted days and the running total of their counts."""
    merged: Counter[int] = Counter()
    for day, k in per_day:
        merged[day] += int(k)
    days_ = sorted(merged)
    return days_, list(accumulate(merged[d] for d in days_))


# Göteborg's municipal contracts: the mean wait fell from 9 months to 3.5; 3.5 average months
MUNICIPAL_WAIT_TARGET_DAYS = round(3.5 * 365.25 / 12, 1)  # 106.5
# Göteborg's F100: 33 apartments a year to people with functional impairments who could
# have had special-service housing but want, and are judged to manage, ordinary housing
F100_LETTINGS_PER_YEAR = 33


def _quarter_sql(column: str) -> str:
    """The quarter of an ISO date column as one number, year * 4 + quarter - 1 (SQLite and
    PostgreSQL alike)."""
    return (f"(CAST(SUBSTR({column}, 1, 4) AS INTEGER) * 4 "
            f"+ (CAST(SUBSTR({column}, 6, 2) AS INTEGER) - 1) / 3)")


def _late_decision_quarters(view: ChainView, last: date) -> list[tuple[int, Any, Any, int]]:
    """The granted decisions whose limit is on or before `last` and that were not executed
    by it, counted per (limit's, move-in's, closing's) quarter, as numbers (`_quarter_sql`;
    None for no move-in, no closing)."""
    return view.rows(
        f"SELECT {_quarter_sql('deadline_on')} AS qd, CASE WHEN move_in_on IS NULL THEN NULL "
        f"ELSE {_quarter_sql('move_in_on')} END AS qm, CASE WHEN closed_on IS NULL THEN NULL "
        f"ELSE {_quarter_sql('closed_on')} END AS qc, COUNT(*) AS n FROM rm_cases "
        "WHERE outcome = 'granted' AND deadline_on <= ? "
        "AND (move_in_on IS NULL OR move_in_on > deadline_on) GROUP BY 1, 2, 3",
        (last.isoformat(),))


def unexecuted_per_quarter(view: ChainView, quarters: Sequence[str]) -> list[int]:
    """For each quarter, the `ivo` rows of status `unexecuted` (a decision past its limit and
    neither executed nor closed by the quarter's last day), from one grouped pass: a
    decision is such a row in the quarters from its limit's up to, not including, the first
    of its move-in's and its closing's."""
    numbers = []
    for quarter in quarters:
        try:
            start, _ = quarter_bounds(quarter)
        except ValueError as exc:
            raise ReportError(f"quarter: {exc}") from None
        numbers.append(start.year * 4 + (start.month - 1) // 3)
    if not numbers:
        return []
    counts = dict.fromkeys(numbers, 0)
    last = quarter_bounds(quarters[numbers.index(max(numbers))])[1]
    for qd, qm, qc, n in _late_decision_quarters(view, last):
        for q in counts:
            if qd <= q and (qm is None or qm > q) and (qc is None or qc > q):
                counts[q] += n
    return [counts[q] for q in numbers]


def unexecuted_series(view: ChainView, quarters: Sequence[str]) -> list[dict[str, Any]]:
    """The dashboard's IVO series: `unexecuted_per_quarter` for consecutive quarters, each
    with the change from the quarter before and the least-squares trend through them all."""
    counts = unexecuted_per_quarter(view, quarters)
    return [{"quarter": q, "ivo_count": n, "change": None if i == 0 else n - counts[i - 1],
             "trend": t} for i, (q, n, t) in enumerate(zip(quarters, counts, trend(counts),
                                                           strict=True))]


def trend(values: Sequence[float]) -> list[float]:
    """The least-squares straight line through the values (equally spaced), point by point."""
    n = len(values)
    if n < 2:
        return list(values)
    mx, my = (n - 1) / 2, sum(values) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    slope = sum((i - mx) * (v - my) for i, v in enumerate(values)) / sxx
    return [round(my + slope * (i - mx), 2) for i in range(n)]


def course_completion_per_year(view: ChainView, years: Sequence[int]) -> list[dict[str, Any]]:
    """`course_completion` of the tenants who moved in during each year, in one pass."""
    if not years:
        return []
    found = {int(y): (n, int(done)) for y, n, done in view.rows(
        "SELECT SUBSTR(move_in_on, 1, 4) AS y, COUNT(*) AS n, "
        "COALESCE(SUM(CASE WHEN course_sessions >= 4 THEN 1 ELSE 0 END), 0) AS done "
        "FROM rm_cases WHERE move_in_on >= ? AND move_in_on <= ? GROUP BY 1",
        (date(min(years), 1, 1).isoformat(), date(max(years), 12, 31).isoformat()))}
    out = []
    for year in years:
        tenants, completed = found.get(year, (0, 0))
        out.append({"year": year, "new_tenants": tenants, "completed": completed,
                    "completion_rate": round(completed / tenants, 3) if tenants else None})
    return out


def _ivo_counts(view: ChainView, *years: int) -> list[int]:
    """The rows `ivo` gives for each year's four quarters, added up, in one pass over the
    granted cases. `IVO_DECISIONS_SQL` read per quarter q: a decision is a row in q when its
    move-in fell in q after the deadline, or when q ended on or after the deadline with the
    case neither moved in nor closed by then, so in the quarters from the deadline's up to,
    not including, the first of the move-in's and the closing's. The database counts the
    cases per (deadline, move-in, closing) quarter; the interruptions come as `ivo` finds
    them."""
    wanted = {y * 4 + q: i for i, y in enumerate(years) for q in range(4)}
    counts = [0] * len(years)
    for qd, qm, qc, n in _late_decision_quarters(view, date(max(years), 12, 31)):
        if qm is not None and qm in wanted:  # moved in late (the filter: after the deadline)
            counts[wanted[qm]] += n
        end = min(q for q in (qm, qc, max(wanted) + 1) if q is not None)
        for q in range(max(qd, min(wanted)), end):
            if q in wanted:
                counts[wanted[q]] += n
    bounds = [(i, *(d.isoformat() for d in quarter_bounds(f"{y}Q{q}")))
              for i, y in enumerate(years) for q in range(1, 5)]
    found = _interruptions_between(view, min(b[1] for b in bounds), max(b[2] for b in bounds))
    for year_index, first, last in bounds:
        counts[year_index] += sum(1 for r in found if _interruption_status(r, first, last))
    return counts


def kpis(view: ChainView, policy: Policy, year: int) -> dict[str, Any]:
    """The municipalities' own targets (Vallentuna, Göteborg; DOMAIN.md) next to the year's
    figures, each computed by the report that defines it (docs/metrics.md, kpis)."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    through = throughput(view, "year", first, last)["rows"]
    row = through[0] if through else {"permanent_share": None, "takeovers": 0}
    vacated = view.query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN end_reason = 'let' AND end_on <= ? "
        "THEN 1 ELSE 0 END), 0) AS relet FROM rm_vacancies WHERE kind = 'vacated' "
        "AND start_on >= ? AND start_on <= ?", (last.isoformat(), first.isoformat(),
                                                 last.isoformat()))[0]
    reuse = round(int(vacated["relet"]) / vacated["n"], 3) if vacated["n"] else None

    this_year, year_before = _ivo_counts(view, year, year - 1)
    halved = year_before / 2 if year_before else None
    pilots = pilot_caseloads(view, last)
    per_pilot = round(statistics.fmean(pilots), 1) if pilots else None
    course = course_completion(view, first, last)["completion_rate"]
    waits = waiting_times(view, "decision-to-move-in", "year", first, last, last,
                          programme="municipal_contract")["rows"]
    wait = waits[0]["mean_days"] if waits else None

    let_fi = sum(n for _, n in functional_impairment_lettings(view, first, last))
    placed, placed_before = (placements_begun(view, y) for y in (year, year - 1))

    def kpi(measure: str, figure: Any, target: Any, met: bool | None, anchor: str,
            note: str | None = None) -> dict[str, Any]:
        return {"measure": measure, "figure": figure, "target": target,
                "met": None if figure is None else met,
                "definition": f"docs/metrics.md, {anchor}", "note": note}

    share = row["permanent_share"]
    return {"year": year, "rows": [
        kpi("exits to own housing or a first-hand lease (share)", share, ">= 0.5",
            share is not None and share >= 0.5, "throughput"),
        kpi("apartment reuse (vacated in the year, let again by its end)", reuse, ">= 0.5",
            reuse is not None and reuse >= 0.5, "kpis"),
        kpi("inspectorate (IVO) rows in the year's four quarters", this_year,
            None if halved is None else f"<= {halved:g} (half of {year - 1}'s {year_before})",
            None if halved is None else this_year <= halved, "ivo",
            None if halved else f"{year - 1} had no IVO rows: nothing to halve"),
        kpi("cases per housing pilot (mean, 31 December)", per_pilot, "35-45",
            per_pilot is not None and 35 <= per_pilot <= 45, "caseload"),
        kpi("housing-course completion among new tenants", course, "1.0",
            course is not None and course >= 1.0, "caseload"),
        kpi("temporary placements begun in the year (hotel, shelter, other)", placed,
            f"< {placed_before} ({year - 1}'s)" if placed_before else None,
            placed < placed_before if placed_before else None, "placements",
            None if placed_before else f"{year - 1} had no placements: nothing to reduce"),
        kpi("mean wait for a municipal contract, decision to move-in (days)", wait,
            f"<= {MUNICIPAL_WAIT_TARGET_DAYS} (3.5 months)",
            wait is not None and wait <= MUNICIPAL_WAIT_TARGET_DAYS, "waiting-times"),
        kpi("apartments let to people with functional impairments (F100)", let_fi,
            f">= {F100_LETTINGS_PER_YEAR}", let_fi >= F100_LETTINGS_PER_YEAR, "supply"),
        {**kpi("takeovers approved in the year", row["takeovers"], None, None, "throughput",
               "TakeoverApproved of the chain's apartments (first-hand leases taken over); "
               "no target is set for it"), "met": None},
    ]}


REFUSALS = {"LandlordRefused": "landlord_refusal", "TakeoverRefused": "takeover_refusal",
            "Denied": "denial"}


def refusals(view: ChainView, by: str = "year", date_from: date | None = None,
             date_to: date | None = None) -> dict[str, Any]:
    """Landlord refusals, refused takeovers and denials per period of their effective date
    and reason: the coded reason when the event has one, else the reason's text as given;
    an encrypted reason counts as "(reason not coded)" (the view never holds the token)."""
    if by not in PERIODS:
        raise ReportError(f"--by must be one of {', '.join(PERIODS)}, not {by!r}")
    where, params = [f"event IN ({', '.join('?' * len(REFUSALS))})"], list(REFUSALS)
    _bound(where, params, "on_day", date_from, date_to)
    counted = view.rows(f"SELECT {_period_sql('on_day', by)} AS g, event, detail, COUNT(*) AS n "
                        f"FROM rm_steps WHERE {' AND '.join(where)} GROUP BY 1, 2, 3", params)
    rows = sorted(({"group": g, "kind": REFUSALS[event], "reason": reason, "count": int(n)}
                   for g, event, reason, n in counted),
                  key=lambda r: (r["group"], r["kind"], -r["count"], r["reason"]))
    totals: Counter[str] = Counter()
    for r in rows:
        totals[r["kind"]] += r["count"]
    return {"rows": rows, "totals": dict(sorted(totals.items()))}


def placements_begun(view: ChainView, year: int) -> int:
    """`placements`' `placements` (started) of the year, counted by the database."""
    return int(view.rows("SELECT COUNT(*) FROM rm_placements WHERE start_on >= ? AND "
                         "start_on <= ?", (f"{year}-01-01", f"{year}-12-31"))[0][0])


def placements(view: ChainView, by: str = "month", date_from: date | None = None,
               date_to: date | None = None, as_of: date | None = None) -> dict[str, Any]:
    """Temporary placements while waiting, per period: placements started, nights spent (a
    night belongs to the period of its evening; an open placement counts up to `as_of`) and
    their cost (nights × cost per night, where one is recorded), by kind."""
    if by not in PERIODS:
        raise ReportError(f"--by must be one of {', '.join(PERIODS)}, not {by!r}")
    until = as_of or date.today()
    started: Counter[tuple[str, str]] = Counter()
    nights: Counter[tuple[str, str]] = Counter()
    cost: dict[tuple[str, str], Decimal] = {}
    # Not night by night per placement: the placements that begin and end each day, per kind
    # (counted by the database), swept over the days once — the nights of a day are the
    # placements open on its evening, their cost the sum of those placements' prices (kept
    # per price, so the cost's text is the one adding night by night gives).
    change: dict[str, dict[int, list[Any]]] = defaultdict(lambda: defaultdict(
        lambda: [0, Counter()]))
    for kind, start_on, end_on, per_night, k in view.rows(
            "SELECT kind, start_on, end_on, cost_per_night, COUNT(*) FROM rm_placements "
            "GROUP BY 1, 2, 3, 4"):
        start = _parse(start_on)
        end = min(_parse(end_on), until) if end_on else until
        if (date_from is None or start >= date_from) and (date_to is None or start <= date_to):
            started[period(start_on, by), kind] += k
        if start >= end:
            continue
        change[kind][start.toordinal()][0] += k
        change[kind][end.toordinal()][0] -= k
        if per_night is not None:
            change[kind][start.toordinal()][1][per_night] += k
            change[kind][end.toordinal()][1][per_night] -= k
    low = date_from.toordinal() if date_from else None
    high = date_to.toordinal() if date_to else None
    label = lru_cache(maxsize=None)(lambda day: period(date.fromordinal(day).isoformat(), by))
    for kind, by_day in change.items():
        open_, priced, days_ = 0, Counter(), sorted(by_day)
        for this, following in zip(days_, days_[1:], strict=False):
            open_ += by_day[this][0]
            priced.update(by_day[this][1])
            if not open_:
                continue
            first = this if low is None else max(this, low)
            last = following - 1 if high is None else min(following - 1, high)
            while first <= last:  # a run of nights with the same placements, period by period
                end_of_period = min(last, period_bounds(label(first), by)[1].toordinal())
                key = (label(first), kind)
                nights[key] += open_ * (end_of_period - first + 1)
                for per_night, k in priced.items():
                    if k:
                        cost[key] = (cost.get(key, Decimal(0))
                                     + Decimal(per_night) * (k * (end_of_period - first + 1)))
                first = end_of_period + 1
    keys = sorted(set(started) | set(nights))
    rows = [{"group": g, "kind": k, "placements": started[g, k], "nights": nights[g, k],
             "cost": str(cost.get((g, k), Decimal(0)))} for g, k in keys]
    return {"as_of": until.isoformat(), "rows": rows,
            "totals": {"placements": sum(started.values()), "nights": sum(nights.values()),
                       "cost": str(sum(cost.values(), Decimal(0)))}}


# Socialstyrelsen's homelessness count, in the order a person in more than one is counted in
# the first (the most acute): each person is counted once, so the situations add up to the
# persons.
SITUATIONS = ("acute", "institution", "long_term", "at_risk")
LONG_TERM_PROGRAMMES = ("training_apartment", "housing_first", "municipal_contract")
HOMELESSNESS_GROUPS = ("sex", "age-band", "target-group", "district")
AGE_BANDS = ((18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-54"), (55, "55-64"),
             (65, "65+"))


def age_band(birth_year: int | None, year: int) -> str:
    """The band of the age reached in the count's year (the birth year only is recorded)."""
    if birth_year is None:
        return "unknown"
    age = year - int(birth_year)
    if age < AGE_BANDS[0][0]:
        return "under 18"
    return [label for low, label in AGE_BANDS if age >= low][-1]


def homelessness(view: ChainView, as_of: date, by: str | None = None) -> dict[str, Any]:
    """The persons (distinct client ids) in each of the count's situations at the end of
    `as_of`: acute (a temporary placement open that night), in an institution without
    housing (applied from one, case open, not yet moved in), a long-term housing solution
    arranged by social services (in a training apartment, housing first or municipal
    contract tenancy, not taken over), and own housing at risk (an eviction notice open);
    a person in several is counted in the first of those. `by` splits the persons by sex,
    age band, target group or district (the case's, for a notice the notice's district)."""
    if by is not None and by not in HOMELESSNESS_GROUPS:
        raise ReportError(f"--by must be one of {', '.join(HOMELESSNESS_GROUPS)}, not {by!r}")
    day = as_of.isoformat()
    person: dict[str, tuple[str, tuple[Any, ...]]] = {}  # client -> (situation, facts)
    found: dict[str, list[tuple[Any, ...]]] = {s: [] for s in SITUATIONS}
    facts = "c.client_id, c.applied_on, c.case_id, c.sex, c.birth_year, c.target_group, c.district"
    found["acute"] = view.rows(
        f"SELECT {facts} FROM rm_placements p JOIN rm_cases c ON c.case_uuid = p.case_uuid "
        "WHERE p.start_on <= ? AND (p.end_on IS NULL OR p.end_on > ?)", (day, day))
    long_term = ", ".join(f"'{p}'" for p in LONG_TERM_PROGRAMMES)
    for *row, situation in view.rows(
            f"SELECT {facts}, CASE WHEN c.move_in_on <= ? AND c.programme IN ({long_term}) AND "
            "(c.takeover_approved_on IS NULL OR c.takeover_approved_on > ?) THEN 'long_term' "
            "WHEN c.housing_situation = 'institution' AND (c.move_in_on IS NULL OR "
            "c.move_in_on > ?) THEN 'institution' END FROM rm_cases c WHERE c.applied_on <= ? "
            "AND (c.closed_on IS NULL OR c.closed_on > ?)", (day, day, day, day, day)):
        if situation:
            found[situation].append(tuple(row))
    notices = view.rows(
        "SELECT client_id, district FROM rm_notices WHERE kind = 'eviction' AND notice_date <= ? "
        "AND (closed_on IS NULL OR closed_on > ?)", (day, day))
    for situation in SITUATIONS[:3]:
        # a person's latest case by application date (then case id) in the situation
        for client, *rest in sorted(found[situation], key=lambda r: (r[1], r[2])):
            if client not in person or person[client][0] == situation:
                person[client] = (situation, tuple(rest[2:]))
    at_risk = {client: district for client, district in sorted(notices) if client not in person}
    known: dict[str, tuple[Any, ...]] = {}  # an at-risk person's latest case by then, if any
    clients = sorted(at_risk)
    for start in range(0, len(clients), 500):
        chunk = clients[start:start + 500]
        for client, _, _, *rest in sorted(view.rows(
                f"SELECT {facts} FROM rm_cases c WHERE c.applied_on <= ? AND c.client_id IN "
                f"({', '.join('?' * len(chunk))})", (day, *chunk)), key=lambda r: (r[1], r[2])):
            known[client] = tuple(rest)
    for client, district in at_risk.items():
        sex, birth_year, target_group, _ = known.get(client, (None, None, "(no case)", None))
        person[client] = ("at_risk", (sex, birth_year, target_group, district))

    def group(f: tuple[Any, ...]) -> str:
        sex, birth_year, target_group, district = f
        if by == "sex":
            return sex or "unknown"
        if by == "age-band":
            return age_band(birth_year, as_of.year)
        return target_group if by == "target-group" else district

    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for situation, f in person.values():
        counts["(all)" if by is None else group(f)][situation] += 1
    rows = [{"group": g, **{s: c[s] for s in SITUATIONS}, "persons": sum(c.values())}
            for g, c in sorted(counts.items())]
    totals = {s: sum(r[s] for r in rows) for s in SITUATIONS}
    return {"as_of": day, "by": by, "rows": rows, "totals": {**totals, "persons": len(person)}}


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


def supply(view: ChainView, date_from: date | None = None,
           date_to: date | None = None) -> dict[str, Any]:
    """Apartments registered in the stock per year, landlord and landlord type, and how many
    of them are accessible (adapted for people with functional impairments); an apartment
    registered before the landlord type was recorded counts as "(not recorded)". Per year
    also the apartments let to people with functional impairments (Göteborg's F100 quota:
    cases of that target group by the year of their move-in)."""
    where, params = ["1 = 1"], []
    _bound(where, params, "registered_on", date_from, date_to)
    counted = view.rows(
        "SELECT SUBSTR(registered_on, 1, 4) AS y, landlord, landlord_type, COUNT(*) AS n, "
        "COALESCE(SUM(CASE WHEN accessible = 1 THEN 1 ELSE 0 END), 0) AS a FROM rm_apartments "
        f"WHERE {' AND '.join(where)} GROUP BY 1, 2, 3", params)
    rows = sorted(({"year": y, "landlord": landlord, "landlord_type": kind or NOT_RECORDED,
                    "registered": int(n), "accessible": int(a)}
                   for y, landlord, kind, n, a in counted),
                  key=lambda r: (r["year"], r["landlord"], r["landlord_type"]))
    years: dict[str, dict[str, Any]] = {}
    for r in rows:
        year = years.setdefault(r["year"], {"year": r["year"], "registered": 0, "accessible": 0,
                                            "by_landlord_type": Counter()})
        year["registered"] += r["registered"]
        year["accessible"] += r["accessible"]
        year["by_landlord_type"][r["landlord_type"]] += r["registered"]
    let = dict(functional_impairment_lettings(view, date_from, date_to))
    for y in sorted(set(let) - set(years)):
        years[y] = {"year": y, "registered": 0, "accessible": 0, "by_landlord_type": Counter()}
    return {"rows": rows, "years": [
        {**y, "by_landlord_type": dict(sorted(y["by_landlord_type"].items())),
         "let_to_functional_impairment": let.get(y["year"], 0)}
        for y in sorted(years.values(), key=lambda y: y["year"])]}


def functional_impairment_lettings(view: ChainView, date_from: date | None = None,
                                   date_to: date | None = None) -> list[tuple[str, int]]:
    """(year, cases of the target group `functional_impairment` that moved in that year):
    apartments let to people with functional impairments, the first move-in of each case."""
    where, params = ["target_group = 'functional_impairment'", "move_in_on IS NOT NULL"], []
    _bound(where, params, "move_in_on", date_from, date_to)
    return [(y, int(n)) for y, n in view.rows(
        f"SELECT SUBSTR(move_in_on, 1, 4) AS y, COUNT(*) AS n FROM rm_cases WHERE "
        f"{' AND '.join(where)} GROUP BY 1", params)]
