"""Every report by name, with the options it takes: the one dispatch the CLI, the API, the
scheduled reports and the web pages share.

An option a report does not take is refused with its name, never silently ignored: a
supervisor who asks for `stock --by landlord` must not get an answer to another question.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from application.errors import BadInput
from domain.commands import Programme, TargetGroup
from domain.policy import Policy
from projections import reports
from projections.view import ChainView

# the dates and years a report is asked for: the calendar arithmetic of periods and limits
# (a quarter after the last day, three months on) stays inside Python's dates
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)
# the options whose values the domain enumerates: what a value is, and the values
ENUMERATED: dict[str, tuple[str, tuple[str, ...]]] = {
    "programme": ("programme", tuple(p.value for p in Programme)),
    "target_group": ("target group", tuple(g.value for g in TargetGroup)),
}


def unknown_value(value: str, what: str, known: Iterable[str]) -> str:
    return f"{value!r} is not a {what}; known: {', '.join(known) or 'none yet'}"


class ReportOptions(BaseModel):
    """The options of `housing-chain report` and of `GET /api/reports/{name}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("date_from", "date_to", "as_of")
    @classmethod
    def _a_day_of_the_calendar(cls, value: date | None) -> date | None:
        if value is not None and not FIRST_DAY <= value <= LAST_DAY:
            raise ValueError(f"must be a day from {FIRST_DAY} to {LAST_DAY}")
        return value

    @field_validator("programme", "target_group")
    @classmethod
    def _a_known_value(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An unknown value would filter every case away: an empty report that reads as
        "none waited" instead of "no such programme"."""
        what, known = ENUMERATED[info.field_name]
        if value is not None and value not in known:
            raise ValueError(unknown_value(value, what, known))
        return value

    @field_validator("year")
    @classmethod
    def _a_year_of_the_calendar(cls, value: int | None) -> int | None:
        if value is not None and not FIRST_DAY.year <= value <= LAST_DAY.year:
            raise ValueError(f"must be a year from {FIRST_DAY.year} to {LAST_DAY.year}")
        return value

    date_from: date | None = None
    date_to: date | None = None
    as_of: date | None = None
    by: str | None = None
    interval: str | None = None
    quarter: str | None = None
    programme: str | None = None
    target_group: str | None = None
    district: str | None = None
    year: int | None = None

    def given(self) -> dict[str, str]:
        """The options set, as text (for the access log and messages)."""
        return {k: str(v) for k, v in self.model_dump(exclude_none=True).items()}


def report_options(**fields: Any) -> ReportOptions:
    """ReportOptions from what a reader typed, or BadInput naming the option (as the CLI
    does; the API says its query parameter) and what is wrong with it."""
    try:
        options = ReportOptions(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        raise BadInput(f"{OPTION_NAMES.get(field, field)}: {message}") from None
    if options.date_from and options.date_to and options.date_from > options.date_to:
        # an empty period: answered, it reads as "nothing happened"
        raise BadInput(f"--from: {options.date_from} is after --to ({options.date_to})")
    return options


OPTION_NAMES = {"date_from": "--from", "date_to": "--to", "as_of": "--as-of", "by": "--by",
                "interval": "--interval", "quarter": "--quarter", "programme": "--programme",
                "target_group": "--target-group", "district": "--district",
                "year": "--year"}
# the query parameter of each option, in the API and the web pages: the period's ends are
# `from` and `to`
QUERY_NAMES = {field: {"date_from": "from", "date_to": "to"}.get(field, field)
               for field in OPTION_NAMES}


class Report(BaseModel):
    name: str
    options: tuple[str, ...]
    summary: str


def _waiting(view: ChainView, o: ReportOptions, policy: Policy, today: date) -> dict[str, Any]:
    return reports.waiting_times(view, o.interval or "application-to-decision", o.by or "year",
                                 o.date_from, o.date_to, o.as_of or today, o.programme,
                                 o.target_group, o.district)


def _ivo(view: ChainView, o: ReportOptions, policy: Policy, today: date) -> dict[str, Any]:
    if not o.quarter:
        raise reports.ReportError("report ivo needs --quarter, e.g. --quarter 2026Q3")
    return reports.ivo(view, o.quarter)


def _kpis(view: ChainView, o: ReportOptions, policy: Policy, today: date) -> dict[str, Any]:
    if not o.year:
        raise reports.ReportError("report kpis needs --year, e.g. --year 2026")
    return reports.kpis(view, policy, o.year)


Runner = Callable[[ChainView, ReportOptions, Policy, date], dict[str, Any]]
REPORTS: dict[str, tuple[Runner, tuple[str, ...], str]] = {
    "waiting-times": (_waiting, ("interval", "by", "date_from", "date_to", "as_of", "programme",
                                 "target_group", "district"),
                      "days from one step to another, by period or group"),
    "throughput": (lambda v, o, p, t: reports.throughput(v, o.by or "year", o.date_from, o.date_to),
                   ("by", "date_from", "date_to"), "inflow, outflow by destination, active"),
    "queue": (lambda v, o, p, t: reports.queue(v, o.as_of or t, o.by), ("as_of", "by"),
              "granted and waiting on a date, with days waiting"),
    "ivo": (_ivo, ("quarter",), "decisions unexecuted after three months, for the inspectorate"),
    "caseload": (lambda v, o, p, t: reports.caseload(v, o.as_of or t, p, o.date_from, o.date_to),
                 ("as_of", "date_from", "date_to"), "cases per housing pilot"),
    "arrears": (lambda v, o, p, t: reports.arrears(v, o.as_of), ("as_of",),
                "rent arrears per case, on a date"),
    "stock": (lambda v, o, p, t: reports.stock(v, o.as_of or t, o.by), ("as_of", "by"),
              "the apartments, their status and vacant days, on a date, by landlord"),
    "returns": (lambda v, o, p, t: reports.returns(v, o.date_from, o.date_to),
                ("date_from", "date_to"), "returns to homelessness after an exit to housing"),
    "evictions": (lambda v, o, p, t: reports.evictions(v, o.by or "year", o.date_from, o.date_to),
                  ("by", "date_from", "date_to"), "eviction notices, reached within 48 h, outcomes"),
    "by-name": (lambda v, o, p, t: reports.by_name(v, p, o.by or "month", o.date_from, o.date_to),
                ("by", "date_from", "date_to"),
                "by-name list: active, inflow and outflow by kind, net change (Built for Zero)"),
    "kpis": (_kpis, ("year",), "the municipalities' targets next to the year's figures"),
    "refusals": (lambda v, o, p, t: reports.refusals(v, o.by or "year", o.date_from, o.date_to),
                 ("by", "date_from", "date_to"),
                 "landlord refusals, refused takeovers and denials, per period and reason"),
    "homelessness": (lambda v, o, p, t: reports.homelessness(v, o.as_of or t, o.by),
                     ("as_of", "by"),
                     "persons in each of Socialstyrelsen's four situations on a date, by sex, "
                     "age band, target group or district"),
    "placements": (lambda v, o, p, t: reports.placements(v, o.by or "month", o.date_from,
                                                         o.date_to, o.as_of or t),
                   ("by", "date_from", "date_to", "as_of"),
                   "temporary placements while waiting: placements, nights and cost per period"),
    "supply": (lambda v, o, p, t: reports.supply(v, o.date_from, o.date_to),
               ("date_from", "date_to"),
               "apartments registered per year, landlord and landlord type; how many accessible"),
}
REPORT_NAMES = (*REPORTS, "history")
CATALOGUE = [Report(name=n, options=tuple(OPTION_NAMES[o] for o in spec[1]), summary=spec[2])
             for n, spec in REPORTS.items()]


def check_options(name: str, options: ReportOptions) -> None:
    """Refuse an unknown report, and any option the report does not take, by name."""
    if name not in REPORTS:
        raise reports.ReportError(f"no report {name!r}; reports: {', '.join(REPORT_NAMES)}")
    taken = set(REPORTS[name][1])
    unsupported = [OPTION_NAMES[k] for k in options.model_dump(exclude_none=True) if k not in taken]
    if unsupported:
        takes = ", ".join(OPTION_NAMES[o] for o in REPORTS[name][1]) or "no options"
        raise reports.ReportError(
            f"report {name} does not take {', '.join(unsupported)} (it takes {takes})")


def check_district(view: ChainView, district: str | None, units: Iterable[str] = ()) -> None:
    """Refuse a district nobody knows, listing the known ones. No setting lists a
    municipality's districts: they are those of a case or a notice in the read models, and
    the reader's own units, so that a unit with no case yet is asked about without error."""
    if district is None:
        return
    known = sorted({*reports.districts(view), *units})
    if district not in known:
        raise reports.ReportError(f"--district: {unknown_value(district, 'district', known)}")


def run_report(view: ChainView, name: str, options: ReportOptions, policy: Policy,
               today: date, units: Iterable[str] = ()) -> dict[str, Any]:
    """The report's answer; `units` are the reader's, districts known beside the read
    models' (`check_district`)."""
    check_options(name, options)
    if options.as_of and options.as_of > today:  # days waited counted up to a day to come
        raise reports.ReportError(f"--as-of: {options.as_of} is after today ({today}): a "
                                  "report tells what has happened")
    check_district(view, options.district, units)
    answer = REPORTS[name][0](view, options, policy, today)
    return {"definition_version": reports.DEFINITION_VERSIONS[name], **answer}


flatten = reports.flatten


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a report's CSV holds: its `rows`, or, for a report of one set of figures (the
    stock without `by`), those figures as one row, so the CSV is never empty when the JSON
    is not."""
    if "rows" in result:
        return list(result["rows"])
    return [{k: v for k, v in result.items() if not isinstance(v, list)}]


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    """A report's rows as CSV, nested objects as `parent.child` columns."""
    flat = reports.flatten(rows)
    columns = list(dict.fromkeys(k for r in flat for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _inert(v) for k, v in r.items()} for r in flat)
    return buffer.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """Typed text a spreadsheet would run as a formula (`=HYPERLINK(...)` in a note), kept as
    text by a leading apostrophe (OWASP's CSV injection advice); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
