"""The projector: folds domain events into fact rows, page by page, without I/O.

Rows are plain dicts keyed by the aggregate's id (hex). The view loads the rows a page
touches, the projector changes them in memory, and the view writes them back together with
the tracking record in one transaction. Dates are ISO strings, so they sort and compare as
text in SQL and in Python.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from domain.calendar import unexecuted_deadline

CASE_EVENTS = {
    "Applied", "AssessmentStarted", "Granted", "Denied", "Offered", "LandlordApproved", "Assigned",
    "StageStalledNoted", "ReminderEscalatedNoted",
    "LandlordRefused", "MovedIn", "VisitRecorded", "CourseSessionAttended",
    "RentArrearsRecorded", "RepaymentPlanAgreed", "ComplaintRecorded", "TakeoverReferred",
    "TakeoverApproved", "TakeoverRefused", "Exited", "UnexecutedDecisionNoted",
    "VisitOverdueNoted", "TakeoverEligibilityNoted",
    "PlanMade", "PlanReviewed", "TemporaryPlacementStarted", "PlacementEnded",
    "SupportInterrupted", "SupportResumed", "ApartmentMoved", "RentPaymentRecorded",
    "SupportLevelSet", "LeaseRenewed",
    "CaseFileDueNoted",
}
APARTMENT_EVENTS = {
    "Registered", "OfferedTo", "OfferWithdrawn", "Occupied", "Vacated", "TakenOver", "Returned",
    "MovedInto", "ToRepair", "Repaired",
}
NOTICE_EVENTS = {
    "NoticeRegistered", "ContactAttempted", "OutreachAssigned", "OutreachVisited",
    "OutcomeRecorded", "HousingCaseOpened", "OutreachRequired", "OutreachEscalated",
}
CASE_TOPIC = "domain.case:Case."
NOTICE_TOPIC = "domain.notice:Notice."
APARTMENT_TOPIC = "domain.apartment:Apartment."
# The stored topics the projection reads; command markers and identities are never selected.
TOPICS = tuple(sorted(
    [CASE_TOPIC + e for e in CASE_EVENTS] + [APARTMENT_TOPIC + e for e in APARTMENT_EVENTS]
    + [NOTICE_TOPIC + e for e in NOTICE_EVENTS]
))

CASE_COLUMNS = (
    "case_uuid", "case_id", "client_id", "target_group", "district", "stage", "applied_on",
    "decided_on", "outcome", "programme", "apartment", "move_in_on", "takeover_approved_on",
    "exit_on", "destination", "closed_on", "caseworker", "housing_pilot", "last_home_visit",
    "last_follow_up", "course_sessions", "course_completed_on", "arrears", "arrears_without_plan",
    "complaints", "assigned_pilot", "stage_since", "last_checklist", "arrears_since",
    "applied_day", "decided_day", "move_in_day", "exit_day",
    "referral", "housing_situation", "first_apartment", "closed_day", "last_contact_day",
    # the case file: the plan's date, its open sub-goals' follow-ups (JSON {id: date}) and
    # who is responsible for each sub-goal (JSON {id: actor})
    "plan_on", "follow_ups", "sub_goal_owners",
    "interrupted_on",  # support interrupted and not resumed: since
    # the repayment plan's instalments (JSON [{amount, due}]) and what was paid since it
    "instalments", "paid_since_plan",
    "support_level", "lease_end",  # the level now (its changes: rm_steps); a lease's last day
    # the granted decision's three-month limit (domain.calendar.unexecuted_deadline), so that
    # the IVO report and the kpis compare dates in SQL instead of computing it per row
    "deadline_on",
    # pseudonymous facts about the client given on apply (None when not given): the
    # homelessness count's sex and age band
    "sex", "birth_year",
    # the programme's own follow-ups (policy `programmes`): the worklist's next ones
    "last_inspection", "last_coordinator_meeting",
)
# Beside the ISO dates the waiting times are measured between, their day numbers
# (date.toordinal()): a difference of two integers is what a report over tens of thousands
# of cases can afford per row, parsing two dates is not.
DAY_COLUMNS = {"applied_on": "applied_day", "decided_on": "decided_day",
               "move_in_on": "move_in_day", "exit_on": "exit_day"}
APARTMENT_COLUMNS = (
    "apartment_uuid", "apartment_id", "landlord", "rooms", "registered_on", "status", "case_id",
    "lettings", "left_on",
    "accessible", "landlord_type",  # 1 when adapted (functional impairments); its landlord's kind
)
NOTICE_COLUMNS = (
    "notice_uuid", "notice_id", "kind", "source", "client_id", "district", "notice_date",
    "eviction_date", "reached_on", "outreach_required_on", "visited_on", "escalated_on",
    "outcome", "closed_on", "case_id",
)
# Per effective day, how many applications, grants, takeovers and exits by destination
# (`exit:<destination>`): the throughput report adds these up per period instead of grouping
# every case row, and a page adds its counts to the stored ones.
DAILY_COLUMNS = ("day", "measure", "n")
LATEST_COLUMNS = ("what", "day")  # the latest effective date of the dated steps, per table
# One row per exit from the chain, written once: what the returns report starts from, kept
# apart from the case rows so that its index is not rewritten by every later event.
EXIT_COLUMNS = ("case_uuid", "case_id", "client_id", "exit_on", "destination")
# `landlord`: the apartment's, copied when the vacancy begins, so that the stock by landlord
# groups the vacancies without looking each one's apartment up.
VACANCY_COLUMNS = ("apartment_uuid", "start_on", "kind", "end_on", "end_reason", "start_day",
                   "end_day", "landlord")
# One row per step a person took on a case (system notes are not steps), written once and
# keyed by the event's version: what a report at a past date reads where the case row keeps
# only the latest value — the stage then, arrears and repayment plans with their dates, the
# home visits (who made the latest one by then), refusals with their reasons, and the days
# of contact that the by-name list's "inactive" is measured from.
STEP_COLUMNS = ("case_uuid", "version", "on_day", "step_day", "event", "stage", "actor", "detail",
                "gap")
# `gap`, on a step that is a contact: the days since the case's previous contact, so that the
# by-name list finds the gaps longer than a policy's limit in an index, not by reading every
# step.
# The apartment's status after each of its events, by version: its status on any past date.
APARTMENT_STEP_COLUMNS = ("apartment_uuid", "version", "on_day", "status")
# One row per temporary placement while waiting: its kind, first night, last morning (planned
# or ended; null while open) and cost per night; the placements report counts nights from it.
PLACEMENT_COLUMNS = ("case_uuid", "placement", "kind", "start_on", "end_on", "cost_per_night",
                     "district")
# One row per interruption of the support (hospital, prison, treatment, other): the IVO report
# lists those not resumed within three months, each quarter, like unexecuted decisions.
INTERRUPTION_COLUMNS = ("case_uuid", "interrupted_on", "kind", "resumed_on")
SYSTEM_NOTES = {"StageStalledNoted", "ReminderEscalatedNoted", "UnexecutedDecisionNoted",
                "VisitOverdueNoted", "TakeoverEligibilityNoted", "CaseFileDueNoted"}
# Steps that are not a contact with the person: an assignment is staff administration, and a
# closure ends the case rather than keeping it active (docs/metrics.md, by-name).
NOT_CONTACT = {"Assigned", "Exited", "Denied"}
ENCRYPTED_PREFIX = "enc:v1:"
NOT_CODED = "(reason not coded)"
def new_case(uuid: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CASE_COLUMNS)
    row.update(case_uuid=uuid, course_sessions=0, arrears="0", arrears_without_plan=0,
               complaints=0)
    return row


@dataclass
class Page:
    """The rows one page of events touches, loaded by the view, changed here."""

    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    apartments: dict[str, dict[str, Any]] = field(default_factory=dict)
    open_vacancies: dict[str, dict[str, Any]] = field(default_factory=dict)
    notices: dict[str, dict[str, Any]] = field(default_factory=dict)
    vacancies: dict[tuple[str, str | None, str], dict[str, Any]] = field(default_factory=dict)
    daily: Counter[tuple[str, str]] = field(default_factory=Counter)
    exits: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    apartment_steps: list[dict[str, Any]] = field(default_factory=list)
    placements: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    interruptions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # the changing columns of each case row as loaded (view.CHANGING): saving a row then
    # writes only the columns the page changed
    cases_before: dict[str, tuple[Any, ...]] = field(default_factory=dict)


def iso(value: Any) -> str | None:
    return None if value is None else value.isoformat() if hasattr(value, "isoformat") else value


@lru_cache(maxsize=10_000)
def day_number(on: str | None) -> int | None:
    return None if on is None else date.fromisoformat(on).toordinal()


def reason_code(e: dict[str, Any]) -> str:
    """What a refusal is counted by: its coded reason when the event has one, else the text
    as given; an encrypted text (`enc:v1:...`) is never copied into the view."""
    code = e.get("reason_code")
    if code:
        return str(code)
    text = (e.get("reason") or "").strip()
    if not text:
        return "(no reason given)"
    return NOT_CODED if text.startswith(ENCRYPTED_PREFIX) else text


def project_case(page: Page, uuid: str, name: str, e: dict[str, Any]) -> None:
    on = iso(e.get("on"))
    if name == "Applied":
        row = page.cases.setdefault(uuid, new_case(uuid))
        row.update(case_id=e["case_id"], client_id=e["client_id"], target_group=e["target_group"],
                   district=e["district"], stage="applied", applied_on=on, caseworker=e["actor"],
                   applied_day=day_number(on), referral=e.get("referral"),
                   housing_situation=e.get("housing_situation"), sex=e.get("sex"),
                   birth_year=e.get("birth_year"))
        page.daily[on, "applications"] += 1
    row = page.cases.get(uuid)
    if row is None:  # an event of a case the view never saw open: nothing to fold it into
        return
    stage_before = row["stage"]
    paid = Decimal(0)  # a rent payment: what it took off the arrears
    if name == "AssessmentStarted":
        row["stage"] = "assessment"
    elif name == "Granted":
        row.update(stage="waiting", decided_on=on, outcome="granted", programme=e["programme"],
                   decided_day=day_number(on),
                   deadline_on=unexecuted_deadline(date.fromisoformat(on)).isoformat())
        page.daily[on, "grants"] += 1
    elif name == "Denied":
        row.update(stage="closed", decided_on=on, outcome="denied", destination="denied",
                   closed_on=on, decided_day=day_number(on), closed_day=day_number(on))
        page.daily[on, "exit:denied"] += 1
    elif name == "Offered":
        row.update(stage="offered", apartment=e["apartment"])
    elif name == "LandlordApproved":
        row["stage"] = "approved"
    elif name == "LandlordRefused":
        row.update(stage="waiting", apartment=None)
    elif name == "MovedIn":
        row["stage"] = "training"
        if row["move_in_on"] is None:  # the first night; moves do not reset it
            row.update(move_in_on=on, move_in_day=day_number(on), first_apartment=e["apartment"])
        row["lease_end"] = iso(e.get("lease_end"))
    elif name == "VisitRecorded":
        if e.get("checklist") is not None:
            row["last_checklist"] = on
        if e["kind"] == "home_visit":
            row.update(last_home_visit=on, housing_pilot=e["actor"])
        elif e["kind"] == "follow_up":
            row["last_follow_up"] = on
        elif e["kind"] == "inspection":
            row["last_inspection"] = on
        elif e["kind"] == "coordinator_meeting":
            row["last_coordinator_meeting"] = on
    elif name == "LeaseRenewed":
        row["lease_end"] = iso(e["lease_end"])
    elif name == "CourseSessionAttended":
        row["course_sessions"] += 1
        if row["course_sessions"] == 4:
            row["course_completed_on"] = on
    elif name == "RentArrearsRecorded":
        row["arrears"] = str(Decimal(row["arrears"]) + Decimal(str(e["amount"])))
        if not row["arrears_without_plan"]:
            row["arrears_since"] = on
        row["arrears_without_plan"] = 1
    elif name == "RepaymentPlanAgreed":
        row.update(arrears_without_plan=0, paid_since_plan="0",
                   instalments=json.dumps(e.get("instalments") or []))
    elif name == "RentPaymentRecorded":
        paid = Decimal(row["arrears"]) - Decimal(str(e["balance"]))
        row.update(arrears=str(Decimal(str(e["balance"]))) if paid != Decimal(row["arrears"])
                   else "0",
                   paid_since_plan=str(Decimal(row.get("paid_since_plan") or "0") + paid))
        if Decimal(str(e["balance"])) == 0:
            row["arrears_without_plan"] = 0
    elif name == "ComplaintRecorded":
        row["complaints"] += 1
    elif name == "TakeoverReferred":
        row["stage"] = "takeover_review"
    elif name == "TakeoverApproved":
        row.update(stage="takeover_approved", takeover_approved_on=on)
        page.daily[on, "takeovers"] += 1
    elif name == "TakeoverRefused":
        row["stage"] = "training"
    elif name == "Exited":
        row.update(stage="closed", exit_on=on, destination=e["destination"], closed_on=on,
                   exit_day=day_number(on), closed_day=day_number(on))
        page.daily[on, "exit:" + e["destination"]] += 1
        page.exits[uuid] = {"case_uuid": uuid, "case_id": row["case_id"],
                            "client_id": row["client_id"], "exit_on": on,
                            "destination": e["destination"]}
    elif name == "Assigned":
        row["caseworker" if e["role"] == "caseworker" else "assigned_pilot"] = e["to"]
    elif name in ("PlanMade", "PlanReviewed"):
        project_plan(row, name, on, e)
    elif name == "TemporaryPlacementStarted":
        page.placements[uuid, e["placement"]] = {
            "case_uuid": uuid, "placement": e["placement"], "kind": e["kind"],
            "start_on": iso(e["start"]), "end_on": iso(e.get("end")),
            "cost_per_night": None if e.get("cost_per_night") is None else str(e["cost_per_night"]),
            "district": row["district"]}
    elif name == "PlacementEnded" and (uuid, e["placement"]) in page.placements:
        page.placements[uuid, e["placement"]]["end_on"] = iso(e["end"])
    elif name == "SupportLevelSet":
        row["support_level"] = e["level"]
    elif name == "ApartmentMoved":  # the move-in date (the first night) stays
        row["apartment"] = e["apartment"]
    elif name == "SupportInterrupted":
        row["interrupted_on"] = on
        page.interruptions[uuid, on] = {"case_uuid": uuid, "interrupted_on": on,
                                        "kind": e["kind"], "resumed_on": None}
    elif name == "SupportResumed":
        row["interrupted_on"] = None
        since = iso(e["interrupted_on"])
        if (uuid, since) in page.interruptions:
            page.interruptions[uuid, since]["resumed_on"] = on
    if name == "Applied" or row["stage"] != stage_before:
        row["stage_since"] = on
    if name in SYSTEM_NOTES:
        return
    detail: str | None = None
    if name == "RentArrearsRecorded":
        detail = str(e["amount"])
    elif name == "RentPaymentRecorded":  # what it took off the arrears, as a negative amount
        detail = str(-paid)
    elif name == "SupportLevelSet":
        detail = str(e["level"])
    elif name == "VisitRecorded":
        detail = e["kind"]
    elif name in ("LandlordRefused", "TakeoverRefused", "Denied"):
        detail = reason_code(e)
    contact = name not in NOT_CONTACT
    gap = (day_number(on) - row["last_contact_day"]
           if contact and row["last_contact_day"] is not None else None)
    page.steps.append({"case_uuid": uuid, "version": e["originator_version"], "on_day": on,
                       "step_day": day_number(on), "event": name, "stage": row["stage"],
                       "actor": e["actor"], "detail": detail, "gap": gap})
    if contact:
        row["last_contact_day"] = day_number(on)


def project_plan(row: dict[str, Any], name: str, on: str | None, e: dict[str, Any]) -> None:
    """The plan's date and its open sub-goals' follow-up dates (what the worklist needs; the
    goals and notes are the client's text and stay in the event store)."""
    if name == "PlanMade":
        row["plan_on"] = on
        follow_ups = {g["id"]: g["follow_up"] for g in e["sub_goals"]}
        row["sub_goal_owners"] = json.dumps(
            {g["id"]: g["responsible"] for g in e["sub_goals"] if g.get("responsible")},
            sort_keys=True)
    else:
        follow_ups = json.loads(row["follow_ups"] or "{}")
        for r in e["reviews"]:
            if r.get("next_follow_up"):
                follow_ups[r["sub_goal"]] = r["next_follow_up"]
            else:
                follow_ups.pop(r["sub_goal"], None)
    row["follow_ups"] = json.dumps(follow_ups, sort_keys=True)


def project_apartment(page: Page, uuid: str, name: str, e: dict[str, Any]) -> None:
    on = iso(e.get("on"))
    if name == "Registered":
        page.apartments[uuid] = {
            "apartment_uuid": uuid, "apartment_id": e["apartment_id"], "landlord": e["landlord"],
            "rooms": e["rooms"], "registered_on": on, "status": "vacant", "case_id": None,
            "lettings": 0, "left_on": None, "accessible": 1 if e.get("accessible") else 0,
            "landlord_type": e.get("landlord_type"),
        }
        open_vacancy(page, uuid, on, "registered", e["landlord"])
        page.apartment_steps.append({"apartment_uuid": uuid, "version": e["originator_version"],
                                     "on_day": on, "status": "vacant"})
        return
    row = page.apartments.get(uuid)
    if row is None:
        return
    _apartment_event(page, uuid, row, name, on, e)
    page.apartment_steps.append({"apartment_uuid": uuid, "version": e["originator_version"],
                                 "on_day": on, "status": row["status"]})


def _apartment_event(page: Page, uuid: str, row: dict[str, Any], name: str, on: str | None,
                     e: dict[str, Any]) -> None:
    if name == "OfferedTo":
        row.update(status="offered", case_id=e["case"])
    elif name == "OfferWithdrawn":
        row.update(status="vacant", case_id=None)
    elif name in ("Occupied", "MovedInto"):
        row.update(status="occupied", lettings=row["lettings"] + 1)
        if name == "MovedInto":
            row["case_id"] = e["case"]
        close_vacancy(page, uuid, on, "let")
    elif name == "Vacated":
        row.update(status="vacant", case_id=None)
        open_vacancy(page, uuid, on, "vacated", row["landlord"])
    elif name == "TakenOver":
        row.update(status="taken_over", left_on=on)
    elif name == "ToRepair":  # its vacancy goes on: vacant days count the repair too
        row["status"] = "under_repair"
    elif name == "Repaired":
        row["status"] = "vacant"
    elif name == "Returned":
        row.update(status="returned", left_on=on)
        close_vacancy(page, uuid, on, "returned")


def open_vacancy(page: Page, uuid: str, on: str | None, kind: str, landlord: str) -> None:
    vacancy = {"apartment_uuid": uuid, "start_on": on, "kind": kind, "end_on": None,
               "end_reason": None, "start_day": day_number(on), "end_day": None,
               "landlord": landlord}
    page.open_vacancies[uuid] = vacancy
    page.vacancies[uuid, on, kind] = vacancy


def close_vacancy(page: Page, uuid: str, on: str | None, reason: str) -> None:
    vacancy = page.open_vacancies.pop(uuid, None)
    if vacancy is not None:
        vacancy.update(end_on=on, end_reason=reason, end_day=day_number(on))
        page.vacancies[uuid, vacancy["start_on"], vacancy["kind"]] = vacancy


def project_notice(page: Page, uuid: str, name: str, e: dict[str, Any]) -> None:
    """Eviction notices and outreach assignments: when reached, visited, escalated, closed."""
    on = iso(e.get("on"))
    if name == "NoticeRegistered":
        row = dict.fromkeys(NOTICE_COLUMNS)
        row.update(notice_uuid=uuid, notice_id=e["notice_id"], kind=e["kind"],
                   source=e["source"], client_id=e["client_id"], district=e["district"],
                   notice_date=on, eviction_date=iso(e.get("eviction_date")))
        page.notices[uuid] = row
        return
    row = page.notices.get(uuid)
    if row is None:
        return
    reached = (name in ("ContactAttempted", "OutreachVisited") and e.get("reached")) or (
        name == "OutcomeRecorded" and e.get("outcome") == "contact_made")
    if reached and row["reached_on"] is None:
        row["reached_on"] = on
    if name == "OutreachVisited" and row["visited_on"] is None:
        row["visited_on"] = on
    elif name == "OutreachRequired":
        row["outreach_required_on"] = on
    elif name == "OutreachEscalated":
        row["escalated_on"] = on
    elif name == "HousingCaseOpened":
        row["case_id"] = e["case_id"]
    elif name == "OutcomeRecorded" and e["outcome"] in ("eviction_averted", "eviction_executed"):
        row.update(outcome=e["outcome"], closed_on=on)
    elif name == "OutcomeRecorded" and row["outcome"] is None:
        row["outcome"] = e["outcome"]
