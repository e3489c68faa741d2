"""What the pages call things: stages, steps, events, due items, report columns and the
step forms' fields. English message ids, translated by the catalogues."""

from __future__ import annotations

from application.labels import COLUMNS, DUE, STAGES
from domain.policy import DEFAULT_REASON_CODES
from interfaces.web.i18n import N_

__all__ = ["COLUMNS", "DUE", "STAGES"]

STEPS = {
    "apply": N_("Register application"), "start_assessment": N_("Start assessment"),
    "decide": N_("Decide"), "offer": N_("Offer an apartment"),
    "landlord_decision": N_("Landlord's decision"), "move_in": N_("Move in"),
    "record_visit": N_("Record a visit"), "course_session": N_("Housing course session"),
    "rent_arrears": N_("Rent arrears"), "repayment_plan": N_("Repayment plan"),
    "complaint": N_("Complaint"), "refer_takeover": N_("Refer for takeover"),
    "takeover_decision": N_("Takeover decision"), "assign": N_("Assign"),
    "exit": N_("Close the case"), "register_apartment": N_("Register an apartment"),
    "return_apartment": N_("Return an apartment"),
    "plan": N_("Individual plan"), "plan_review": N_("Review the plan"),
    "temporary_placement": N_("Temporary accommodation"),
    "placement_ended": N_("End temporary accommodation"),
    "support_interrupted": N_("Support interrupted"), "support_resumed": N_("Support resumed"),
    "support_level": N_("Support level"), "move_apartment": N_("Move to another apartment"),
    "rent_payment": N_("Rent payment"), "renew_lease": N_("Renew the lease"),
    "apartment_to_repair": N_("Apartment under repair"),
    "apartment_repaired": N_("Apartment repaired"),
}
EVENTS = {
    "Applied": N_("Application registered"), "AssessmentStarted": N_("Assessment started"),
    "Granted": N_("Granted"), "Denied": N_("Denied"), "Offered": N_("Apartment offered"),
    "LandlordApproved": N_("Landlord approved"), "LandlordRefused": N_("Landlord refused"),
    "MovedIn": N_("Moved in"), "VisitRecorded": N_("Visit recorded"),
    "CourseSessionAttended": N_("Course session attended"),
    "RentArrearsRecorded": N_("Rent arrears recorded"),
    "RepaymentPlanAgreed": N_("Repayment plan agreed"),
    "ComplaintRecorded": N_("Complaint recorded"), "TakeoverReferred": N_("Referred for takeover"),
    "TakeoverApproved": N_("Takeover approved"), "TakeoverRefused": N_("Takeover refused"),
    "Exited": N_("Case closed"), "Assigned": N_("Assigned"),
    "StageStalledNoted": N_("Stalled stage noted"),
    "ReminderEscalatedNoted": N_("Reminder escalated"),
    "UnexecutedDecisionNoted": N_("Unexecuted decision noted"),
    "VisitOverdueNoted": N_("Overdue visit noted"),
    "TakeoverEligibilityNoted": N_("Takeover eligibility noted"),
    "PlanMade": N_("Individual plan made"), "PlanReviewed": N_("Plan reviewed"),
    "TemporaryPlacementStarted": N_("Temporary accommodation started"),
    "PlacementEnded": N_("Temporary accommodation ended"),
    "SupportInterrupted": N_("Support interrupted"), "SupportResumed": N_("Support resumed"),
    "SupportLevelSet": N_("Support level set"), "ApartmentMoved": N_("Moved to another apartment"),
    "RentPaymentRecorded": N_("Rent payment recorded"), "LeaseRenewed": N_("Lease renewed"),
    "CaseFileDueNoted": N_("Case file item due noted"),
    "ToRepair": N_("Apartment under repair"), "Repaired": N_("Apartment repaired"),
    "MovedInto": N_("Moved into the apartment"),
}
VALUES = {
    "granted": N_("granted"), "denied": N_("denied"),
    "training_apartment": N_("training apartment"), "housing_first": N_("Housing First"),
    "municipal_contract": N_("municipal contract"),
    "home_visit": N_("home visit"), "follow_up": N_("follow-up"), "inspection": N_("inspection"),
    "caseworker": N_("caseworker"), "housing_pilot": N_("housing pilot"),
    "supervisor": N_("supervisor"), "landlord": N_("landlord"), "admin": N_("administrator"),
    "first_hand_lease": N_("first-hand lease"), "own_housing": N_("own housing"),
    "terminated": N_("terminated"), "withdrawn": N_("withdrawn"), "deceased": N_("deceased"),
    "moved_away": N_("moved away"),
    "substance_abuse": N_("substance abuse"),
    "psychiatric_disability": N_("psychiatric disability"), "co_morbidity": N_("co-morbidity"),
    "families_with_children": N_("families with children"), "young_adults": N_("young adults"),
    "elderly": N_("elderly"), "newly_arrived": N_("newly arrived"),
    "exposed_to_violence": N_("exposed to violence"),
    "functional_impairment": N_("functional impairment"), "other": N_("other"),
    "self": N_("self-referral"), "healthcare": N_("healthcare"), "other_unit": N_("other unit"),
    "without_housing": N_("without housing"), "at_risk": N_("at risk of losing housing"),
    "unsuitable": N_("unsuitable housing"),
    "unexecuted": N_("unexecuted"), "executed_late": N_("executed late"),
    "true": N_("yes"), "false": N_("no"),
    "allowed": N_("allowed"), "denied_access": N_("refused"),
    "refused_by_case": N_("refused by the case"), "failed": N_("no answer (an error)"),
    "assigned": N_("assigned"), "unit": N_("unit"), "none": N_("none"),
    "phone": N_("phone"), "sms": N_("text message"), "letter": N_("letter"),
    "email": N_("e-mail"), "contact_made": N_("contact made"),
    "meeting_booked": N_("meeting booked"), "support_granted": N_("support granted"),
    "eviction_averted": N_("eviction averted"), "eviction_executed": N_("eviction executed"),
    "eviction": N_("eviction notice"), "outreach": N_("outreach"),
    "enforcement_authority": N_("Enforcement Authority"), "reach": N_("reach the tenant"),
    "vacant": N_("vacant"), "offered": N_("offered"), "occupied": N_("occupied"),
    "taken_over": N_("taken over"), "returned": N_("returned"),
    "under_repair": N_("under repair"), "coordinator_meeting": N_("coordinator meeting"),
    "complaint": N_("complaint"), "warning": N_("warning (demand to correct)"),
    "hospital": N_("hospital"), "prison": N_("prison"), "treatment": N_("treatment"),
    "hotel": N_("hotel"), "shelter": N_("shelter"), "camping_cabin": N_("camping cabin"),
    "family": N_("family or friends"),
    "met": N_("met"), "partly": N_("partly met"), "not_met": N_("not met"),
    # the coded reasons (policy reason_codes)
    "rent_history": N_("rent history"), "references": N_("references"),
    "household_size": N_("household size"), "disturbance": N_("disturbance"),
    "arrears": N_("rent arrears"), "complaints": N_("complaints"),
    "credit_check": N_("credit check"), "not_homeless": N_("not homeless"),
    "other_support_suffices": N_("other support suffices"), "own_means": N_("own means"),
}
# the dashboard's choices for the waiting times (projections.reports INTERVALS, PERIODS and
# DIMENSIONS, the ones a supervisor asks for)
INTERVALS = {
    "application-to-decision": N_("Application to decision"),
    "decision-to-move-in": N_("Decision to move-in"),
    "move-in-to-exit": N_("Move-in to exit"),
    "application-to-housed": N_("Application to permanent housing"),
}
PERIODS = {"month": N_("Month"), "quarter": N_("Quarter"), "year": N_("Year")}
# the access log's actions (application/use_cases.py `record`)
ACTIONS = {
    "case.read": N_("read the case"), "case.history": N_("read the history"),
    "case.step": N_("recorded a step"), "case.repair": N_("repaired the case's workflow"),
    "identity.reveal": N_("revealed the identity"), "identity.erase": N_("erased the identity"),
    "worklist.read": N_("read a worklist"), "report.read": N_("read a report"),
    "access_log.read": N_("read the access log"), "audit.review": N_("reviewed the log"),
    "audit.verify": N_("verified the log"), "notice.list": N_("listed the notices"),
    "notice.read": N_("read a notice"), "notice.step": N_("recorded a notice step"),
    "stock.step": N_("changed the stock"), "projections.read": N_("read the projections"),
    "projections.rebuild": N_("rebuilt the read models"), "keys.rotate": N_("rotated the keys"),
    "case.import": N_("imported records into the case"), "import": N_("imported a file"),
    "codec.decode": N_("decoded Temporal payloads"),
}
QUEUE_GROUPS = {"target-group": N_("Target group"), "district": N_("District")}
WAIT_GROUPS = {"period": N_("Period"), "programme": N_("Programme"),
               "target-group": N_("Target group"), "district": N_("District")}
# the fields of each case step's form: (name, kind, options)
FIELDS = {
    "outcome": N_("Outcome"), "programme": N_("Programme"), "reason": N_("Reason"),
    "apartment": N_("Apartment"), "approved": N_("Approved"), "kind": N_("Kind"),
    "rent_paid": N_("Rent paid"), "home_insurance": N_("Home insurance"),
    "in_housing_queue": N_("In the housing queue"), "session": N_("Session (1–4)"),
    "amount": N_("Amount (SEK)"), "note": N_("Note"), "role": N_("Role"), "to": N_("User id"),
    "destination": N_("Exit destination"), "on": N_("Effective date"),
    "landlord": N_("Landlord"), "rooms": N_("Rooms"),
    "reached": N_("Tenant reached"), "channel": N_("Channel"), "pilot": N_("Housing pilot"),
    "reason_code": N_("Reason (code)"), "lease_end": N_("Last day of the lease"),
    "goal": N_("Overall goal"), "sub_goals": N_("Sub-goals"), "id": N_("Id"),
    "responsible": N_("Responsible (user id)"), "follow_up": N_("Follow-up date"),
    "reviews": N_("Review of the open sub-goals"), "result": N_("Result"),
    "next_follow_up": N_("Next follow-up (partly or not met)"),
    "placement": N_("Placement id"), "start": N_("First night"),
    "end": N_("Last morning"), "cost_per_night": N_("Cost per night (SEK)"),
    "level": N_("Support level (1–4)"),
}
# eviction-prevention notices: the steps after registration and their forms' fields
NOTICE_STEPS = {
    "register": N_("Register a notice"), "contact_attempt": N_("Contact attempt"),
    "assign_outreach": N_("Assign outreach"), "outreach_visit": N_("Outreach visit"),
    "outcome": N_("Record an outcome"),
}
NOTICE_FORMS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "contact_attempt": [("reached", "select", ("true", "false")),
                        ("channel", "select", ("phone", "sms", "letter", "email", "home_visit",
                                               "other"))],
    "assign_outreach": [("pilot", "text", ())],
    "outreach_visit": [("reached", "select", ("true", "false"))],
    "outcome": [("outcome", "select", ("contact_made", "meeting_booked", "support_granted",
                                       "eviction_averted", "eviction_executed"))],
}
YES_NO = ("true", "false")
STEP_FORMS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "start_assessment": [],
    "decide": [("outcome", "select", ("granted", "denied")),
               ("programme", "select?", ("training_apartment", "housing_first",
                                         "municipal_contract")),
               ("reason_code", "select?", tuple(DEFAULT_REASON_CODES["denial"])),
               ("reason", "text?", ())],
    "offer": [("apartment", "text", ())],
    "landlord_decision": [("approved", "select", YES_NO),
                          ("reason_code", "select?", tuple(DEFAULT_REASON_CODES["landlord"])),
                          ("reason", "text?", ())],
    "move_in": [("apartment", "text", ()), ("lease_end", "date?", ())],
    "record_visit": [("kind", "select", ("home_visit", "follow_up", "inspection",
                                         "coordinator_meeting")),
                     ("rent_paid", "select?", YES_NO), ("home_insurance", "select?", YES_NO),
                     ("in_housing_queue", "select?", YES_NO)],
    "course_session": [("session", "number", ("1", "4"))],
    "rent_arrears": [("amount", "decimal", ())],
    "repayment_plan": [],
    "complaint": [("kind", "select", ("complaint", "warning")), ("note", "text?", ())],
    "refer_takeover": [],
    "takeover_decision": [("approved", "select", YES_NO),
                          ("reason_code", "select?", tuple(DEFAULT_REASON_CODES["takeover"])),
                          ("reason", "text?", ())],
    "renew_lease": [("lease_end", "date", ())],
    "assign": [("role", "select", ("caseworker", "housing_pilot")), ("to", "text", ())],
    "exit": [("destination", "exits", ())],
    # the case file (domain/stages.py CASE_FILE_WAITING, CASE_FILE_IN_HOME)
    "plan": [("goal", "text?", ()), ("sub_goals", "sub_goals", ())],
    "plan_review": [("reviews", "reviews", ("met", "partly", "not_met"))],
    "temporary_placement": [("placement", "text", ()),
                            ("kind", "select", ("hotel", "shelter", "camping_cabin", "family",
                                                "other")),
                            ("start", "date?", ()), ("end", "date?", ()),
                            ("cost_per_night", "decimal?", ())],
    "placement_ended": [("placement", "placements", ()), ("end", "date?", ())],
    "support_interrupted": [("kind", "select", ("hospital", "prison", "treatment", "other"))],
    "support_resumed": [],
    "support_level": [("level", "number", ("1", "4"))],
    "rent_payment": [("amount", "decimal", ())],
    "move_apartment": [("apartment", "text", ())],
}
SUB_GOAL_ROWS = 3  # empty rows of the plan form; a row left empty is not a sub-goal
SUB_GOAL_FIELDS = ("id", "goal", "responsible", "follow_up")
REVIEW_FIELDS = ("result", "note", "next_follow_up")
CHECKLIST = ("rent_paid", "home_insurance", "in_housing_queue")


def step_fields(step: str, form: dict[str, str]) -> dict[str, object]:
    """A step form's text fields as the import-line shape (checked by the use case)."""
    fields: dict[str, object] = {"type": step}
    checklist = {}
    for name, kind, _ in STEP_FORMS.get(step, []):
        if kind in ("sub_goals", "reviews"):
            fields[name] = _rows(name, form)
            continue
        raw = (form.get(name) or "").strip()
        if not raw:
            continue
        value: object = raw
        if raw in YES_NO and kind.startswith("select") and set(_[:2] if _ else ()) == set(YES_NO):
            value = raw == "true"
        if name in CHECKLIST:
            checklist[name] = value
        else:
            fields[name] = value
    if checklist:
        fields["checklist"] = checklist
    if form.get("on"):
        fields["on"] = form["on"].strip()
    return fields


def _rows(name: str, form: dict[str, str]) -> list[dict[str, str]]:
    """The rows of a repeated part of a form (`sub_goals-0-goal`, …): the filled-in fields of
    each row that has any; a review row counts when it has a result."""
    rows: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        part, _, rest = key.partition("-")
        index, _, field = rest.partition("-")
        if part == name and index.isdigit() and field and value.strip():
            rows.setdefault(int(index), {})[field] = value.strip()
    wanted = [rows[i] for i in sorted(rows)]
    if name == "reviews":
        wanted = [r for r in wanted if r.get("result")]
    return wanted


def notice_fields(step: str, form: dict[str, str]) -> dict[str, object]:
    """A notice step form's fields as the notice step's shape (checked by the use case)."""
    fields: dict[str, object] = {"type": step}
    for name, _kind, _options in NOTICE_FORMS.get(step, []):
        raw = (form.get(name) or "").strip()
        if raw:
            fields[name] = (raw == "true") if name == "reached" else raw
    if form.get("on"):
        fields["on"] = form["on"].strip()
    return fields
