"""The reports, computed from the fact tables for any period or date.

Definitions (docs/metrics.md has them in full): days are whole days between effective dates
(end − start); the median is the usual one; the 90th percentile interpolates linearly between
closest ranks (`statistics.quantiles(..., n=10, method="inclusive")`); a period group is the
period of the interval's end date; "three months" is `domain.calendar.unexecuted_deadline`.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from domain.calendar import add_months, quarter_bounds, unexecuted_deadline
from domain.commands import PERMANENT_DESTINATIONS
from domain.policy import Policy
from projections.view import ChainView
from workflows.due import visit_interval_after

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


def _within(day: str | None, date_from: date | None, date_to: date | None) -> bool:
    if day is None:
        return False
    return not ((date_from and day < date_from.isoformat())
                or (date_to and day > date_to.isoformat()))


def _filters(programme: str | None, target_group: str | None, district: str | None):
    def keep(row: dict[str, Any]) -> bool:
        return ((programme is None or row["programme"] == programme)
                and (target_group is None or row["target_group"] == target_group)
                and (district is None or row["district"] == district))
    return keep


def _days_sql(view: ChainView, start: str, end: str) -> str:
    """Whole days from `start` to `end` (ISO date expressions), in the view's SQL dialect."""
    if view.mark == "?":
        return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"
    return f"(CAST({end} AS date) - CAST({start} AS date))"


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
    if interval == "application-to-housed":
        end = (f"(CASE WHEN destination IN ({', '.join(repr(d) for d in sorted(PERMANENT))}) "
               "THEN exit_on END)")
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
    groups: dict[str, list[int]] = defaultdict(list)
    for r in view.query(f"SELECT {group} AS g, {_days_sql(view, start, end)} AS d "
                        f"FROM rm_cases WHERE {' AND '.join(done)}", done_params):
        groups[r["g"]].append(r["d"])
    still = view.query(
        f"SELECT COUNT(*) AS n, AVG({_days_sql(view, start, '?')}) AS mean FROM rm_cases "
        f"WHERE {' AND '.join(where)} AND {start} <= ? AND ({end} IS NULL OR {end} > ?) "
        "AND (closed_on IS NULL OR closed_on > ?)",
        [day, *params, day, day, day],
    )[0]
    return {
        "rows": [{"group": key, **summary(sorted(values))}
                 for key, values in sorted(groups.items())],
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
    counts: dict[str, Counter] = defaultdict(Counter)
    for key, column, where in (
        ("applications", "applied_on", "applied_on IS NOT NULL"),
        ("grants", "decided_on", "outcome = 'granted'"),
        ("takeovers", "takeover_approved_on", "takeover_approved_on IS NOT NULL"),
    ):
        for r in view.query(f"SELECT {_period_sql(column, by)} AS p, COUNT(*) AS n "
                            f"FROM rm_cases WHERE {where} GROUP BY 1"):
            counts[r["p"]][key] = r["n"]
    for r in view.query(f"SELECT {_period_sql('closed_on', by)} AS p, destination, "
                        "COUNT(*) AS n FROM rm_cases WHERE closed_on IS NOT NULL GROUP BY 1, 2"):
        counts[r["p"]]["exit:" + r["destination"]] = r["n"]
    if not counts:
        return {"rows": []}
    bounds = view.query("SELECT MIN(applied_on) AS first FROM rm_cases")[0]
    first = period(date_from.isoformat() if date_from else bounds["first"], by)
    last = period(date_to.isoformat(), by) if date_to else max(counts)

    def active(day: date) -> int:
        text = day.isoformat()
        r = view.query("SELECT COUNT(*) AS n FROM rm_cases WHERE applied_on <= ? "
                       "AND (closed_on IS NULL OR closed_on > ?)", (text, text))[0]
        return r["n"]

    out = []
    label = first
    at_start = active(period_bounds(first, by)[0] - timedelta(days=1))
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
    rows = view.query(
        "SELECT case_id, housing_pilot, caseworker, move_in_on, last_home_visit, "
        "course_sessions FROM rm_cases "
        "WHERE stage IN ('training', 'takeover_review', 'takeover_approved')")
    pilots: dict[str, dict[str, Any]] = {}
    for r in rows:
        pilot = r["housing_pilot"] or f"(none; caseworker {r['caseworker']})"
        entry = pilots.setdefault(pilot, {"pilot": pilot, "cases": 0, "overdue_visits": 0,
                                          "overdue": []})
        entry["cases"] += 1
        move_in = _parse(r["move_in_on"])
        anchor = _parse(r["last_home_visit"] or r["move_in_on"])
        due = visit_interval_after(anchor, move_in, policy)
        if due < as_of:
            entry["overdue_visits"] += 1
            entry["overdue"].append({"case": r["case_id"], "due": due.isoformat(),
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
    rows = view.query("SELECT case_id, client_id, stage, arrears, arrears_without_plan "
                      "FROM rm_cases WHERE arrears <> '0'")
    out = sorted(({"case": r["case_id"], "client": r["client_id"], "stage": r["stage"],
                   "amount": str(Decimal(r["arrears"])),
                   "repayment_plan": not r["arrears_without_plan"]} for r in rows),
                 key=lambda r: (-Decimal(r["amount"]), r["case"]))
    total = sum((Decimal(r["amount"]) for r in out), Decimal(0))
    return {"rows": out, "total": str(total),
            "without_plan": sum(1 for r in out if not r["repayment_plan"])}


def stock(view: ChainView, as_of: date) -> dict[str, Any]:
    day = as_of.isoformat()
    statuses = {r["status"]: r["n"] for r in view.query(
        "SELECT status, COUNT(*) AS n FROM rm_apartments GROUP BY status")}
    vacated = view.query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN end_reason = 'let' THEN 1 ELSE 0 END), 0)"
        " AS relet FROM rm_vacancies WHERE kind = 'vacated'")[0]
    ends = f"(CASE WHEN end_on IS NULL OR end_on > {view.mark} THEN {view.mark} ELSE end_on END)"
    spells = [r["d"] for r in view.query(
        f"SELECT {_days_sql(view, 'start_on', ends.replace(view.mark, '?'))} AS d "
        "FROM rm_vacancies WHERE start_on <= ? AND (end_reason IS NULL OR end_reason = 'let' "
        "OR end_on > ?)", (day, day, day, day))]
    relet = int(vacated["relet"])
    return {
        "as_of": day,
        "status": dict(sorted(statuses.items())),
        "vacated": vacated["n"],
        "relet": relet,
        "reuse_rate": round(relet / vacated["n"], 3) if vacated["n"] else None,
        "vacant_days": summary(sorted(spells)),
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
    rows = view.query(
        "SELECT e.case_id, e.client_id, e.exit_on, e.destination, "
        "(SELECT MIN(a.applied_on) FROM rm_cases a WHERE a.client_id = e.client_id "
        " AND a.applied_on > e.exit_on) AS applied_on "
        f"FROM rm_cases e WHERE {' AND '.join(where)}", params)
    firsts = {(r["client_id"], r["applied_on"]) for r in rows if r["applied_on"]}
    returned_case: dict[tuple[str, str], str] = {}
    if firsts:
        clients = sorted({c for c, _ in firsts})
        for start in range(0, len(clients), 500):
            chunk = clients[start:start + 500]
            for a in view.query(
                "SELECT client_id, applied_on, case_id FROM rm_cases WHERE client_id IN "
                f"({', '.join('?' * len(chunk))}) ORDER BY case_id", chunk):
                key = (a["client_id"], a["applied_on"])
                if key in firsts:
                    returned_case.setdefault(key, a["case_id"])
    out = []
    for r in rows:
        exit_on = _parse(r["exit_on"])
        entry = {"case": r["case_id"], "client": r["client_id"], "exit_on": r["exit_on"],
                 "destination": r["destination"],
                 "returned_case": returned_case.get((r["client_id"], r["applied_on"])),
                 "applied_on": r["applied_on"]}
        for months in (6, 12, 24):
            entry[f"within_{months}_months"] = bool(
                r["applied_on"] and r["applied_on"] <= add_months(exit_on, months).isoformat())
        out.append(entry)
    out.sort(key=lambda e: (e["exit_on"], e["case"]))
    return {
        "exits_to_permanent_housing": len(out),
        **{f"returned_within_{m}_months": sum(e[f"within_{m}_months"] for e in out)
           for m in (6, 12, 24)},
        "rows": out,
    }


def _plain(obj: dict[str, Any]) -> Any:
    """eventsourcing's JSON wraps dates, decimals and ids as {"_type_": ..., "_data_": ...}."""
    return obj["_data_"] if set(obj) == {"_type_", "_data_"} else obj


def audit_details(text: str) -> dict[str, Any]:
    from projections.projector import AUDIT_HIDDEN

    data = json.loads(text, object_hook=_plain)
    return {k: v for k, v in data.items() if k not in AUDIT_HIDDEN}


def case_history(view: ChainView, case: str) -> dict[str, Any]:
    rows = view.query(
        "SELECT e.version, e.event, e.on_date, e.recorded, e.actor, e.command_id, e.details "
        "FROM rm_case_events e JOIN rm_cases c ON c.case_uuid = e.case_uuid "
        "WHERE c.case_id = ? ORDER BY e.version", (case,))
    if not rows:
        raise ReportError(f"case {case} is not in the read models")
    return {"case": case, "rows": [{"version": r["version"], "event": r["event"],
                                    "on": r["on_date"], "recorded": r["recorded"],
                                    "actor": r["actor"], "command_id": r["command_id"],
                                    "details": audit_details(r["details"])} for r in rows]}


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
