"""The HTTP API of a real embedded stack (`housing-chain up`: Temporal dev server, worker,
projection and API), over real HTTP.

What is checked is what a municipality relies on when it opens the API to its staff: a request
without a valid token gets nowhere; each role reaches exactly the cases and steps the access
rules give it; refusals are problem details in the domain's own words (the CLI's words too);
a retried request records once; every read is in the access log, the log shows tampering, and
the monthly review finds reads without a reason; reports come as CSV; the import streams; and
the CLI can work through the API with a token instead of reaching the stores itself.

Cases are set up through the API as the admin (fast: no CLI process per step); the CLI is run
only where the test is about the CLI.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from application.tokens import LocalIssuer
from domain.personal_number import mask_personal_numbers
from tests.backends import (
    BACKENDS,
    PG,
    create_database,
    drop_database,
    skip_or_fail_without_postgres,
    store_env,
)
from tests.builders import unique_id
from tests.stack import CLI, Stack

pytestmark = pytest.mark.slow

TODAY = date.today()
PROBLEM = "application/problem+json"

ADMIN = ("admin.api", ["admin"], [])
CASEWORKER = ("handlaggare.ek", ["caseworker"], ["Farsta"])
OTHER_UNIT_CASEWORKER = ("handlaggare.sp", ["caseworker"], ["Spånga"])
SUPERVISOR = ("enhetschef.farsta", ["supervisor"], ["Farsta"])
PILOT = ("bolots.ahmed", ["housing_pilot"], [])
OTHER_PILOT = ("pilot.nilsson", ["housing_pilot"], [])
LANDLORD = ("uthyrning.stockholmshem", ["landlord"], ["Stockholmshem"])
OTHER_LANDLORD = ("uthyrning.familjebostader", ["landlord"], ["Familjebostäder"])

STAGES = ("applied", "assessment", "waiting", "offered", "approved", "training")


def d(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Api:
    """The running stack, its base URL, an HTTP client and the stack's own token issuer."""

    stack: Stack
    base: str
    issuer: LocalIssuer
    http: httpx.Client

    def token(self, who: tuple[str, list[str], list[str]]) -> str:
        subject, roles, units = who
        return self.issuer.mint(subject, roles, units)

    def auth(self, who: tuple[str, list[str], list[str]] | str) -> dict[str, str]:
        token = who if isinstance(who, str) else self.token(who)
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str, who, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers={**self.auth(who), **kw.pop("headers", {})}, **kw)

    def post(self, path: str, who, **kw: Any) -> httpx.Response:
        return self.http.post(path, headers={**self.auth(who), **kw.pop("headers", {})}, **kw)

    def keyed(self, case: str, who, body: dict[str, Any], key: str) -> httpx.Response:
        """A step on the case under the caller's own Idempotency-Key."""
        return self.post(f"/api/cases/{case}/steps", who, json=body,
                         headers={"Idempotency-Key": key})

    def step(self, case: str | None, who=ADMIN, **fields: Any) -> dict[str, Any]:
        """A step that must be accepted (setting up a case)."""
        path = f"/api/cases/{case}/steps" if case else "/api/apartments/steps"
        response = self.post(path, who, json=fields)
        assert response.status_code == 200, response.text
        return response.json()

    def open_case(self, case: str, stage: str = "waiting", *, district: str = "Farsta",
                  landlord: str = "Stockholmshem", pilot: str | None = None) -> str:
        """A case of `district` (caseworker handlaggare.ek) driven to `stage`, with an
        apartment of its own from `landlord` once it is offered; a housing pilot assigned."""
        apartment = f"apt-{case}"
        if STAGES.index(stage) >= STAGES.index("offered"):
            self.step(None, type="register_apartment", apartment=apartment, landlord=landlord,
                      rooms=1, on=d(60))
        plan = [
            ("applied", {"type": "apply", "on": d(40), "actor": CASEWORKER[0], "client": {
                "id": f"p-{case}", "target_group": "young_adults", "district": district}}),
            ("assessment", {"type": "start_assessment", "on": d(39)}),
            ("waiting", {"type": "decide", "on": d(38), "outcome": "granted",
                         "programme": "training_apartment"}),
            ("offered", {"type": "offer", "on": d(37), "apartment": apartment}),
            ("approved", {"type": "landlord_decision", "on": d(36), "approved": True}),
            ("training", {"type": "move_in", "on": d(35), "apartment": apartment}),
        ]
        for reached, fields in plan:
            self.step(case, **fields)
            if reached == stage:
                break
        if pilot:
            self.step(case, type="assign", role="housing_pilot", to=pilot, on=d(30))
        return case

    def history(self, case: str) -> list[dict[str, Any]]:
        response = self.get(f"/api/cases/{case}/history", ADMIN)
        assert response.status_code == 200, response.text
        return response.json()["rows"]

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """`housing-chain ARGS` with the stack's environment plus `env`."""
        return subprocess.run([*CLI, *args], env={**self.stack.env, **env}, capture_output=True,
                              text=True, timeout=300)


@pytest.fixture(scope="module", params=BACKENDS)
def api(request, tmp_path_factory) -> Iterator[Api]:
    """One stack per backend for the whole module: starting one costs seconds."""
    data = tmp_path_factory.mktemp(f"api-{request.param}")
    database = None
    extra: dict[str, str] = {}
    if request.param == "postgres":
        skip_or_fail_without_postgres()
        database = create_database()
        extra = store_env("postgres", data, database)
    stack = Stack.on_free_ports(data, extra)
    stack.backend = request.param
    stack.store = extra or store_env("sqlite", data)
    stack.start()
    base = f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}"
    try:
        with httpx.Client(base_url=base, timeout=120) as http:
            yield Api(stack, base, LocalIssuer(data), http)
    finally:
        stack.stop()
        if database:
            drop_database(database)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem: the status, its media type and the fields a client reads."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    # the path as sent, a personal identity number in it masked
    assert body["instance"] == mask_personal_numbers(response.request.url.path)
    return body


# --- sign-in: no valid token, no answer ------------------------------------------------------


def claims(api: Api, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": api.issuer.issuer, "aud": api.issuer.audience, "sub": CASEWORKER[0],
            "iat": now, "nbf": now, "exp": now + 600, "roles": ["admin"], "units": ["Farsta"]}
    return {**base, **changes}


def signed(api: Api, body: dict[str, Any], key: Any = None) -> str:
    kid = api.issuer.kid  # makes the key on first use, as the API would
    key = key or serialization.load_pem_private_key(api.issuer.key_path.read_bytes(), None)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def bad_token(api: Api, kind: str) -> str | None:
    now = int(time.time())
    if kind == "missing":
        return None
    if kind == "expired":
        return signed(api, claims(api, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    if kind == "wrong issuer":
        return signed(api, claims(api, iss="https://idp.example.org"))
    if kind == "wrong audience":
        return signed(api, claims(api, aud="another-service"))
    if kind == "forged signature":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return signed(api, claims(api), key=other)
    if kind == "alg none":
        return jwt.encode(claims(api), None, algorithm="none", headers={"kid": api.issuer.kid})
    if kind == "public key as HMAC secret":
        public = serialization.load_pem_private_key(
            api.issuer.key_path.read_bytes(), None).public_key()
        secret = public.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        header = {"alg": "HS256", "kid": api.issuer.kid, "typ": "JWT"}
        return _hs256(header, claims(api), secret)
    raise AssertionError(kind)


def _hs256(header: dict, body: dict, secret: bytes) -> str:
    """An HS256 token by hand: PyJWT refuses a PEM as an HMAC secret, an attacker does not."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


TOKEN_FAULTS = {
    "missing": "sign in",
    "expired": "expired",
    "wrong issuer": "issuer",
    "wrong audience": "audience",
    "forged signature": "signature",
    "alg none": "none",
    "public key as HMAC secret": "HS256",
}
ENDPOINTS = [("GET", "/api/cases/{case}"), ("POST", "/api/cases/{case}/steps"),
             ("GET", "/api/reports/queue"), ("POST", "/api/imports")]


@pytest.fixture(scope="module")
def waiting_case(api: Api) -> str:
    """A case of Farsta waiting for an apartment, that no test changes."""
    return api.open_case(new_id("waiting"), "waiting")


@pytest.mark.parametrize("method,path", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
@pytest.mark.parametrize("fault", list(TOKEN_FAULTS))
def test_a_request_without_a_valid_token_is_401_and_says_why(api, waiting_case, fault, method,
                                                             path):
    """Every token here claims the admin role: only the signature, issuer, audience, lifetime
    and algorithm checks stand between it and every case."""
    token = bad_token(api, fault)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"type": "course_session", "session": 1} if method == "POST" else None
    response = api.http.request(method, path.format(case=waiting_case), headers=headers,
                                json=body)
    problem = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert TOKEN_FAULTS[fault] in problem["detail"]
    assert "eyJ" not in problem["detail"]  # the token is never echoed back


def test_a_token_from_the_cli_issuer_signs_in_as_its_subject_roles_and_units(api):
    """`housing-chain token` and the API share the key file in the data directory."""
    minted = api.cli("token", "--as", "handlaggare.lind", "--role", "caseworker",
                     "--unit", "Farsta", "--unit", "Spånga")
    assert minted.returncode == 0, minted.stderr
    me = api.get("/api/me", minted.stdout.strip())
    assert me.status_code == 200, me.text
    assert me.json() == {"subject": "handlaggare.lind", "roles": ["caseworker"],
                         "units": ["Farsta", "Spånga"]}


# --- who may do what: roles × endpoints ------------------------------------------------------


def test_caseworker_of_the_unit_reads_status_and_history_and_takes_a_step(api):
    case = api.open_case(new_id("cw"), "waiting")
    status = api.get(f"/api/cases/{case}", CASEWORKER)
    assert status.status_code == 200, status.text
    assert status.json()["stage"] == "waiting"
    assert "course_session" in status.json()["allowed"]
    history = api.get(f"/api/cases/{case}/history", CASEWORKER)
    assert history.status_code == 200
    assert [r["event"] for r in history.json()["rows"]] == ["Applied", "AssessmentStarted",
                                                            "Granted"]
    step = api.post(f"/api/cases/{case}/steps", CASEWORKER,
                    json={"type": "course_session", "session": 1})
    assert step.status_code == 200, step.text
    assert step.json()["accepted"] and step.json()["events"] == ["CourseSessionAttended"]


def test_caseworker_of_another_unit_can_neither_read_nor_step_on_a_case(api, waiting_case):
    read = assert_problem(api.get(f"/api/cases/{waiting_case}", OTHER_UNIT_CASEWORKER), 403)
    assert "not in their units" in read["detail"]
    assert_problem(api.get(f"/api/cases/{waiting_case}/history", OTHER_UNIT_CASEWORKER), 403)
    assert_problem(api.post(f"/api/cases/{waiting_case}/steps", OTHER_UNIT_CASEWORKER,
                            json={"type": "course_session", "session": 2}), 403)
    assert "CourseSessionAttended" not in [r["event"] for r in api.history(waiting_case)]


def test_pilot_cannot_read_an_unassigned_case(api):
    case = api.open_case(new_id("pilot-no"), "training", pilot=PILOT[0])
    problem = assert_problem(api.get(f"/api/cases/{case}", OTHER_PILOT), 403)
    assert "not assigned to them" in problem["detail"]
    assert_problem(api.post(f"/api/cases/{case}/steps", OTHER_PILOT,
                            json={"type": "record_visit", "kind": "home_visit"}), 403)


def test_assigned_pilot_records_a_visit_with_the_checklist_after_move_in(api):
    case = api.open_case(new_id("pilot"), "training", pilot=PILOT[0])
    visit = api.post(f"/api/cases/{case}/steps", PILOT, json={
        "type": "record_visit", "kind": "home_visit",
        "checklist": {"rent_paid": True, "home_insurance": True, "in_housing_queue": True}})
    assert visit.status_code == 200, visit.text
    assert visit.json()["events"] == ["VisitRecorded"]
    assert api.get(f"/api/cases/{case}", PILOT).json()["housing_pilot"] == PILOT[0]


def test_pilot_takes_no_caseworker_step_even_on_an_assigned_case(api):
    case = api.open_case(new_id("pilot-exit"), "training", pilot=PILOT[0])
    problem = assert_problem(api.post(f"/api/cases/{case}/steps", PILOT,
                                      json={"type": "exit", "destination": "own_housing"}), 403)
    assert "exit" in problem["detail"]


def test_landlord_approves_the_candidate_on_its_own_apartment(api):
    case = api.open_case(new_id("ll"), "offered", landlord="Stockholmshem")
    approved = api.post(f"/api/cases/{case}/steps", LANDLORD,
                        json={"type": "landlord_decision", "approved": True})
    assert approved.status_code == 200, approved.text
    assert approved.json()["stage"] == "approved"
    assert api.history(case)[-1]["actor"] == LANDLORD[0]


def test_landlord_cannot_decide_on_another_landlords_apartment(api):
    case = api.open_case(new_id("ll-other"), "offered", landlord="Stockholmshem")
    assert_problem(api.post(f"/api/cases/{case}/steps", OTHER_LANDLORD,
                            json={"type": "landlord_decision", "approved": False}), 403)
    assert not [r["event"] for r in api.history(case) if r["event"].startswith("Landlord")]


def test_a_landlords_refusal_through_the_api_needs_a_coded_reason(api):
    case = api.open_case(new_id("ll-code"), "offered", landlord="Stockholmshem")
    problem = assert_problem(api.post(f"/api/cases/{case}/steps", LANDLORD,
                                      json={"type": "landlord_decision", "approved": False,
                                            "reason": "för liten"}), 422)
    assert problem["detail"].startswith("reason_code: a landlord's refusal needs one of")
    assert "rent_history" in problem["detail"]
    assert not [r["event"] for r in api.history(case) if r["event"].startswith("Landlord")]
    refused = api.post(f"/api/cases/{case}/steps", LANDLORD, json={
        "type": "landlord_decision", "approved": False, "reason_code": "household_size"})
    assert refused.status_code == 200, refused.text
    [event] = [r for r in api.history(case) if r["event"] == "LandlordRefused"]
    assert event["details"]["reason_code"] == "household_size"


def test_landlord_cannot_read_the_case_or_ask_for_personal_data(api):
    """A landlord decides on its candidate; the case file and the client's identity are the
    social services' own, even on the landlord's own apartment."""
    case = api.open_case(new_id("ll-read"), "offered", landlord="Stockholmshem")
    problem = assert_problem(api.get(f"/api/cases/{case}", LANDLORD), 403)
    assert "landlords" in problem["detail"]
    assert_problem(api.get(f"/api/cases/{case}/history", LANDLORD), 403)
    assert_problem(api.post(f"/api/cases/{case}/identity", LANDLORD), 403)


def test_a_landlord_sees_their_apartments_without_the_tenants_case_or_client(api):
    """Nothing personal: the landlord's own apartment is occupied, and by whom is the social
    services' own."""
    case = api.open_case(new_id("ll-flat"), "training", landlord="Stockholmshem")
    response = api.get("/api/apartments", LANDLORD)
    assert response.status_code == 200, response.text
    flats = {a["apartment"]: a for a in response.json()["apartments"]}
    assert {a["landlord"] for a in flats.values()} == {"Stockholmshem"}
    flat = flats[f"apt-{case}"]
    assert flat["status"] == "occupied"
    assert not {"case_id", "client"} & flat.keys(), flat
    assert f"p-{case}" not in response.text


def test_a_refused_offer_of_an_occupied_apartment_names_no_other_case(api):
    """Spånga's caseworker may not read the Farsta case living in the apartment."""
    farsta = api.open_case(new_id("occ-f"), "training")
    spanga = api.open_case(new_id("occ-s"), "waiting", district="Spånga")
    problem = assert_problem(api.post(f"/api/cases/{spanga}/steps", OTHER_UNIT_CASEWORKER,
                                      json={"type": "offer", "apartment": f"apt-{farsta}"}), 409)
    assert problem["detail"] == (
        f"apartment apt-{farsta} is occupied: offer needs a vacant apartment")


def test_caseworker_of_the_unit_reveals_the_identity_and_nobody_else_does(api):
    case = new_id("id")
    applied = api.post(f"/api/cases/{case}/steps", ADMIN, json={
        "type": "apply", "on": d(5), "actor": CASEWORKER[0],
        "client": {"id": f"p-{case}", "target_group": "elderly", "district": "Farsta",
                   "name": "Astrid Testsson", "personal_number": "19400101-9803"}})
    assert applied.status_code == 200, applied.text
    revealed = api.post(f"/api/cases/{case}/identity", CASEWORKER)
    assert revealed.status_code == 200, revealed.text
    assert revealed.json()["name"] == "Astrid Testsson"
    for who in (SUPERVISOR, ADMIN, OTHER_UNIT_CASEWORKER, PILOT):
        assert_problem(api.post(f"/api/cases/{case}/identity", who), 403)


def test_supervisor_reads_reports_and_access_logs_but_records_no_step(api, waiting_case):
    report = api.get("/api/reports/waiting-times", SUPERVISOR, params={"by": "year"})
    assert report.status_code == 200, report.text
    assert {"group", "count"} <= set(report.json()["rows"][0])
    log = api.get(f"/api/cases/{waiting_case}/access-log", SUPERVISOR)
    assert log.status_code == 200, log.text
    assert log.json()["case"] == waiting_case
    problem = assert_problem(api.post(f"/api/cases/{waiting_case}/steps", SUPERVISOR,
                                      json={"type": "course_session", "session": 3}), 403)
    assert "supervisor" in problem["detail"]


def test_only_supervisors_of_the_unit_and_the_admin_read_a_cases_access_log(api, waiting_case):
    for who in (CASEWORKER, PILOT, LANDLORD, ("enhetschef.spanga", ["supervisor"], ["Spånga"])):
        assert_problem(api.get(f"/api/cases/{waiting_case}/access-log", who), 403)


def test_admin_reads_and_steps_everywhere_but_never_sees_an_identity(api):
    case = api.open_case(new_id("admin"), "waiting")
    for path in (f"/api/cases/{case}", f"/api/cases/{case}/history",
                 f"/api/cases/{case}/access-log", "/api/reports/queue", "/api/reports/arrears",
                 "/api/worklist?everyone=true", "/api/projections", "/api/audit/verify",
                 "/api/apartments"):
        response = api.get(path, ADMIN)
        assert response.status_code == 200, (path, response.text)
    step = api.post(f"/api/cases/{case}/steps", ADMIN, json={"type": "course_session",
                                                             "session": 1})
    assert step.status_code == 200, step.text
    assert_problem(api.post(f"/api/cases/{case}/identity", ADMIN), 403)


# --- problem details ---------------------------------------------------------------------------


def test_a_refused_step_is_409_with_the_same_words_the_cli_prints(api):
    """The API and the CLI call the same use case: a client reading the API's detail reads
    what a caseworker at the terminal reads."""
    on_api = api.open_case(new_id("refuse-api"), "applied")
    on_cli = api.open_case(new_id("refuse-cli"), "applied")
    problem = assert_problem(api.post(f"/api/cases/{on_api}/steps", CASEWORKER, json={
        "type": "decide", "outcome": "granted", "programme": "housing_first"}), 409)
    assert "decide needs an assessment" in problem["detail"]
    cli = api.cli("decide", on_cli, "--outcome", "granted", "--programme", "housing_first")
    assert cli.returncode == 1, cli.stderr
    expected = "refused: " + problem["detail"].replace(on_api, on_cli)
    assert " ".join(cli.stderr.split()) == " ".join(expected.split())


@pytest.mark.parametrize("body,field", [
    ({"type": "course_session", "session": "first"}, "session"),
    ({"type": "course_session", "session": 9}, "session"),
    ({"type": "course_session", "session": True}, "session"),
    ({"type": "record_visit", "kind": "home_visit", "colour": "red"}, "colour"),
    ({"type": "record_visit", "kind": "coffee"}, "kind"),
    ({"type": "course_session", "session": 1, "on": "2026-13-40"}, "on"),
    ({"type": "course_session", "session": 1, "on": "0001-01-01"}, "on"),
    ({"type": "course_session", "session": 1, "on": "9999-12-31"}, "on"),
    ({"type": "course_session", "session": 1, "actor": "someone.else"}, "actor"),
    ({"type": "course_session", "session": 1, "case": "another"}, "case"),
], ids=["not an integer", "out of range", "true for 1", "unknown field", "unknown kind", "not a date",
        "a date in year 1", "a date at the end of the calendar", "actor is the token's subject",
        "case is in the path"])
def test_a_malformed_step_is_422_naming_the_field_and_records_nothing(api, waiting_case, body,
                                                                      field):
    before = len(api.history(waiting_case))
    problem = assert_problem(api.post(f"/api/cases/{waiting_case}/steps", CASEWORKER,
                                      json=body), 422)
    assert problem["detail"].startswith(f"{field}:"), problem["detail"]
    assert len(api.history(waiting_case)) == before


def test_a_grant_without_a_programme_is_a_422_naming_programme_not_a_refusal(api):
    """A missing field is a malformed body, whatever stage the case is in: the API and the
    CLI refuse it as bad input naming the field (the CLI's exit code 2), and nothing is
    recorded, not even a refusal."""
    case = api.open_case(new_id("no-programme"), "assessment")
    before = len(api.history(case))
    problem = assert_problem(api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "decide", "outcome": "granted"}), 422)
    assert problem["detail"].startswith("programme:"), problem["detail"]
    assert "housing_first" in problem["detail"]
    cli = api.cli("decide", case, "--outcome", "granted")
    assert cli.returncode == 2, cli.stderr
    assert "programme:" in cli.stderr
    assert len(api.history(case)) == before


def test_a_body_that_is_not_json_is_422(api, waiting_case):
    response = api.post(f"/api/cases/{waiting_case}/steps", CASEWORKER, content=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert_problem(response, 422)


def test_the_frameworks_own_refusals_under_api_are_problem_details_too(api, waiting_case):
    """No route, a wrong method, a body that is not even text: a client parses every error
    the same way."""
    assert_problem(api.get("/api/no-such-endpoint", CASEWORKER), 404)
    wrong_method = api.http.delete(f"/api/cases/{waiting_case}", headers=api.auth(CASEWORKER))
    assert_problem(wrong_method, 405)
    assert "GET" in wrong_method.headers["allow"]
    assert_problem(api.post(f"/api/cases/{waiting_case}/steps", CASEWORKER, content=b"\xdd\xe2{",
                            headers={"Content-Type": "application/json"}), 400)


def test_an_unknown_case_is_404_for_reads_and_steps(api):
    ghost = new_id("ghost")
    problem = assert_problem(api.get(f"/api/cases/{ghost}", CASEWORKER), 404)
    assert problem["detail"] == f"case {ghost} does not exist"
    assert_problem(api.get(f"/api/cases/{ghost}/history", CASEWORKER), 404)
    step = assert_problem(api.post(f"/api/cases/{ghost}/steps", CASEWORKER,
                                   json={"type": "start_assessment"}), 404)
    assert f"case {ghost} does not exist" in step["detail"]
    assert_problem(api.get(f"/api/cases/{ghost}/access-log", SUPERVISOR), 404)


def test_a_pilot_asking_for_an_unknown_case_learns_nothing_of_whether_it_exists(api):
    """A 404 to someone who may not read the case would tell them which case ids exist."""
    assert_problem(api.get(f"/api/cases/{new_id('ghost')}", OTHER_PILOT), 403)


def test_an_option_a_report_does_not_take_is_refused_with_422_naming_it(api):
    """A supervisor asking `stock --by landlord` of a report that has no such option must
    not get an answer to another question; the catalogue says which report takes what."""
    catalogue = api.get("/api/reports", SUPERVISOR).json()
    takes = {r["name"]: r["options"] for r in catalogue}
    assert "as_of" in takes["queue"] and "from" in takes["returns"]  # the query's names
    name = "stock" if "by" not in takes["stock"] else next(
        n for n, options in takes.items() if "by" not in options)
    problem = assert_problem(api.get(f"/api/reports/{name}", SUPERVISOR,
                                     params={"by": "landlord"}), 422)
    assert "`by`" in problem["detail"] and name in problem["detail"]


def test_a_query_parameter_no_report_takes_is_422_naming_it_not_ignored(api):
    problem = assert_problem(api.get("/api/reports/queue", SUPERVISOR,
                                     params={"as-of": "2026-11-30"}), 422)
    assert problem["detail"].startswith("as-of: not a query parameter") and "as_of" in problem[
        "detail"]


@pytest.mark.parametrize("path,query", [
    ("/api/reports/throughput", "by=year&by=quarter"),
    ("/api/worklist", "days=7&days=30"),
], ids=["a report", "the worklist"])
def test_a_query_parameter_given_twice_is_a_422_naming_it_not_the_last_one_taken(api, path,
                                                                                 query):
    problem = assert_problem(api.get(f"{path}?{query}", ADMIN), 422)
    assert problem["detail"].startswith(f"{query.split('=')[0]}: given more than once"), \
        problem["detail"]


def test_a_list_parameter_is_given_more_than_once(api):
    api.get("/api/audit/verify", ADMIN)  # on record: the chain has a head
    head = api.get("/api/audit/verify", ADMIN).json()
    anchor = f"{head['head_seq']}:{head['head_hash']}"
    both = api.get("/api/audit/verify", ADMIN, params=[("anchor", anchor), ("anchor", anchor)])
    assert both.status_code == 200 and both.json()["ok"] is True, both.text


def test_an_unknown_query_parameter_on_any_route_is_a_422_naming_it(api):
    """Ignored, a misspelt `as-of` or `distrct` answers another question than the one asked
    and nothing says so: the answer names it and what the route takes, and nothing is done."""
    case = api.open_case(new_id("qp"), "waiting")
    asked = [
        ("/api/worklist", "/api/worklist", {"as-of": d(0), "days": "7"}, "as-of",
         "actor, as_of, days, everyone, kind"),
        (f"/api/cases/{case}", "/api/cases/{case}", {"as_of": d(0)}, "as_of",
         "no query parameters"),
        (f"/api/cases/{case}/history", "/api/cases/{case}/history", {"distrct": "Farsta"},
         "distrct", "no query parameters"),
        (f"/api/cases/{case}/access-log", "/api/cases/{case}/access-log", {"lmit": "5"}, "lmit",
         "limit"),
        ("/api/apartments", "/api/apartments", {"asof": d(0), "by": "x"}, "asof, by", "as_of"),
        ("/api/notices/e-none", "/api/notices/{notice}", {"as_of": d(0)}, "as_of",
         "no query parameters"),
        ("/api/reports", "/api/reports", {"name": "queue"}, "name", "no query parameters"),
    ]
    for path, route, params, named, takes in asked:
        problem = assert_problem(api.get(path, ADMIN, params=params), 422)
        assert problem["detail"] == (f"{named}: not a query parameter of GET {route}; "
                                     f"it takes {takes}"), path
    before = api.history(case)
    step = {"type": "assign", "role": "housing_pilot", "to": "bolots.ahmed", "on": d(30)}
    problem = assert_problem(api.post(f"/api/cases/{case}/steps", ADMIN, json=step,
                                      params={"dry_run": "true"}), 422)
    assert problem["detail"].startswith("dry_run: not a query parameter of POST ")
    assert api.history(case) == before  # nothing recorded
    assert api.post(f"/api/cases/{case}/steps", ADMIN, json=step).status_code == 200


@pytest.mark.parametrize("path,params,field", [
    ("/api/worklist", {"as_of": "9999-12-31", "days": "366"}, "as_of"),
    ("/api/audit/review", {"month": "0000-01"}, "month"),
    ("/api/audit/review", {"month": "9999-12"}, "month"),
    ("/api/apartments", {"as_of": "0111-03-04"}, "as_of"),
    ("/api/reports/kpis", {"year": "9999"}, "year"),
    ("/api/reports/throughput", {"by": "quarter", "from": "9999-12-31"}, "from"),
], ids=["worklist past the end of the calendar", "month of year 0", "month of year 9999",
        "the stock in year 111", "the kpis of 9999", "the throughput from 9999-12-31"])
def test_dates_at_the_ends_of_the_calendar_are_422_not_a_server_error(api, path, params, field):
    """Found by the schema fuzzer (tests/test_api_schema.py): both answered 500."""
    problem = assert_problem(api.get(path, ADMIN, params=params), 422)
    assert problem["detail"].startswith(f"{field}:"), problem["detail"]


def test_an_unknown_worklist_kind_is_a_422_naming_kind(api):
    """An empty worklist for a misspelt kind reads as nothing due; the 422 lists the kinds
    (application.readmodels.WORKLIST_KINDS), and each kind a worklist shows is among them."""
    from application.readmodels import WORKLIST_KINDS

    api.open_case(new_id("kinds"), "training")
    problem = assert_problem(api.get("/api/worklist", ADMIN,
                                     params={"everyone": "true", "kind": "nonsense"}), 422)
    assert problem["detail"].startswith("kind:"), problem["detail"]
    assert all(f"'{kind}'" in problem["detail"] for kind in WORKLIST_KINDS), problem["detail"]
    every = api.get("/api/worklist", ADMIN, params={"everyone": "true", "days": 366})
    assert every.status_code == 200, every.text
    kinds = every.json()["kinds"]
    assert "support_visit" in kinds and set(kinds) <= set(WORKLIST_KINDS)
    visits = api.get("/api/worklist", ADMIN, params={"everyone": "true", "days": 366,
                                                     "kind": "support_visit"})
    assert visits.status_code == 200, visits.text
    assert visits.json()["rows"] and {r["kind"] for r in visits.json()["rows"]} == {
        "support_visit"}


def test_an_unknown_report_is_422_naming_the_reports(api):
    problem = assert_problem(api.get("/api/reports/popularity", SUPERVISOR), 422)
    assert "waiting-times" in problem["detail"]


def test_the_history_report_without_a_case_is_422_naming_the_query_parameter(api, waiting_case):
    problem = assert_problem(api.get("/api/reports/history", SUPERVISOR), 422)
    assert problem["detail"].startswith("case:") and "housing-chain" not in problem["detail"]
    answer = api.get("/api/reports/history", SUPERVISOR, params={"case": waiting_case})
    assert answer.status_code == 200 and answer.json()["case"] == waiting_case


# --- idempotency and the actor -----------------------------------------------------------------


def test_the_same_idempotency_key_twice_records_once_and_answers_duplicate(api):
    case = api.open_case(new_id("idem"), "waiting")
    key = unique_id("client-retry")
    body = {"type": "course_session", "session": 2}
    first = api.post(f"/api/cases/{case}/steps", CASEWORKER, json=body,
                     headers={"Idempotency-Key": key})
    again = api.post(f"/api/cases/{case}/steps", CASEWORKER, json=body,
                     headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json()["command_id"] == again.json()["command_id"] == key
    assert first.json()["duplicate"] is False
    assert again.json()["duplicate"] is True
    assert again.json()["stage"] == first.json()["stage"]
    sessions = [r for r in api.history(case) if r["event"] == "CourseSessionAttended"]
    assert [r["command_id"] for r in sessions] == [key]


def test_an_idempotency_key_used_again_for_another_step_is_refused_not_answered_as_done(api):
    case = api.open_case(new_id("idem"), "applied")
    key = unique_id("k-sa")
    first = api.post(f"/api/cases/{case}/steps", CASEWORKER, json={"type": "start_assessment"},
                     headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    reused = api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "decide", "outcome": "granted", "programme": "training_apartment"},
        headers={"Idempotency-Key": key})
    detail = assert_problem(reused, 409)["detail"]
    assert f"the command id {key} was used for a step start_assessment" in detail
    assert api.get(f"/api/cases/{case}", CASEWORKER).json()["stage"] == "assessment"


def test_an_idempotency_key_sent_again_with_other_fields_is_refused_not_answered_as_done(api):
    case = api.open_case(new_id("idem"), "waiting")
    key = unique_id("k-course")
    first = api.keyed(case, CASEWORKER, {
        "type": "course_session", "session": 2}, key)
    assert first.status_code == 200, first.text
    other = api.keyed(case, CASEWORKER, {
        "type": "course_session", "session": 3}, key)
    detail = assert_problem(other, 409)["detail"]
    assert f"the command id {key} was used for a step course_session with other fields" in detail
    # the same fields again (the field order as the client happens to send it) is a retry
    again = api.post(f"/api/cases/{case}/steps", CASEWORKER, content=json.dumps(
        {"session": 2, "type": "course_session"}),
        headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
    sessions = [r for r in api.history(case) if r["event"] == "CourseSessionAttended"]
    assert [r["command_id"] for r in sessions] == [key]


def test_an_idempotency_key_sent_again_with_another_typed_note_is_refused(api):
    """Typed text is sealed anew at every sending, so the request is compared by the note's
    own digest under the client's key, not by what reached the case."""
    case = api.open_case(new_id("idem"), "training")
    key = unique_id("k-complaint")
    note = {"type": "complaint", "kind": "warning", "note": "Musik sent på natten"}
    first = api.keyed(case, CASEWORKER, note, key)
    assert first.status_code == 200, first.text
    other = api.keyed(case, CASEWORKER, {
        **note, "note": "Hund skäller"}, key)
    assert "with other fields" in assert_problem(other, 409)["detail"]
    again = api.keyed(case, CASEWORKER, note, key)
    assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
    rows = api.get(f"/api/cases/{case}/access-log", SUPERVISOR).json()["rows"]
    digests = {r["params"].get("request") for r in rows if r["params"].get("command_id") == key}
    assert len(digests) == 2  # the first and its retry alike, the other note not


def test_two_requests_at_once_under_one_key_with_other_fields_get_one_step_and_one_409(api):
    """Both may reach Temporal before either is recorded, and Temporal answers the second
    with the first's answer: the step's marker, saved before any answer, tells them apart."""
    from concurrent.futures import ThreadPoolExecutor

    case = api.open_case(new_id("idem"), "waiting")
    key = unique_id("k-race")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda n: api.keyed(case, CASEWORKER, {
            "type": "course_session", "session": n}, key), (1, 3)))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    taken = next(a for a in answers if a.status_code == 200)
    assert taken.json()["duplicate"] is False
    sessions = [r for r in api.history(case) if r["event"] == "CourseSessionAttended"]
    assert [r["command_id"] for r in sessions] == [key]


def test_identical_requests_at_once_under_one_key_get_one_step_and_one_first_answer(api):
    """Temporal gives every one of them the first's answer; the marker holds the id of the
    request that was first, so the others are answered, and on record, as duplicates."""
    from concurrent.futures import ThreadPoolExecutor

    case = api.open_case(new_id("idem"), "waiting")
    key = unique_id("k-same")
    body = {"type": "course_session", "session": 1}
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: api.keyed(case, CASEWORKER, body, key), range(5)))
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 4
    sessions = [r for r in api.history(case) if r["event"] == "CourseSessionAttended"]
    assert [r["command_id"] for r in sessions] == [key]
    rows = [r for r in api.get(f"/api/cases/{case}/access-log", SUPERVISOR).json()["rows"]
            if r["params"].get("command_id") == key]
    assert sorted(r["params"]["duplicate"] for r in rows) == ["false"] + ["true"] * 4


def test_an_idempotency_key_of_another_persons_step_is_refused_not_answered_as_theirs(api):
    case = api.open_case(new_id("idem"), "waiting")
    key = unique_id("k-someone")
    body = {"type": "course_session", "session": 1}
    first = api.keyed(case, CASEWORKER, body, key)
    assert first.status_code == 200, first.text
    colleague = ("handlaggare.lind", ["caseworker"], ["Farsta"])
    taken = api.keyed(case, colleague, body, key)
    detail = assert_problem(taken, 409)["detail"]
    assert f"the command id {key} was used by another person's step" in detail
    rows = api.get(f"/api/cases/{case}/access-log", SUPERVISOR).json()["rows"]
    assert [(r["outcome"], r["params"]["type"]) for r in rows
            if r["subject"] == colleague[0]] == [("refused", "course_session")]


def test_an_idempotency_key_on_the_stock_sent_again_with_other_fields_is_refused(api):
    apartment = new_id("apt-key")
    key = unique_id("k-stock")
    body = {"type": "register_apartment", "apartment": apartment, "landlord": "Stockholmshem",
            "rooms": 2}

    def send(fields: dict[str, Any], who=ADMIN) -> httpx.Response:
        return api.post("/api/apartments/steps", who, json=fields,
                        headers={"Idempotency-Key": key})

    assert send(body).status_code == 200
    assert "with other fields" in assert_problem(send({**body, "rooms": 3}), 409)["detail"]
    again = send({**body, "rooms": 2.0})  # the same value as parsed
    assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
    rows = [a for a in api.get("/api/apartments", ADMIN).json()["apartments"]
            if a["apartment"] == apartment]
    assert [a["rooms"] for a in rows] == [2]


def test_a_landlord_takes_steps_on_its_own_apartments_only(api):
    """Putting another landlord's apartment under repair would take it out of the offers;
    the refusal tells nothing of the apartment (not even that it exists)."""
    ours, theirs = new_id("apt-own"), new_id("apt-theirs")
    for apartment, landlord in ((ours, "Stockholmshem"), (theirs, "Familjebostäder")):
        api.step(None, type="register_apartment", apartment=apartment, landlord=landlord,
                 rooms=2, on=d(3))
    taken = api.post("/api/apartments/steps", LANDLORD, json={
        "type": "apartment_to_repair", "apartment": ours, "on": d(1)})
    assert taken.status_code == 200, taken.text
    for apartment in (theirs, new_id("apt-none")):
        for step in ("apartment_to_repair", "apartment_repaired"):
            detail = assert_problem(api.post("/api/apartments/steps", LANDLORD, json={
                "type": step, "apartment": apartment, "on": d(1)}), 403)["detail"]
            assert detail == (f"{LANDLORD[0]} may not take the step {step} on apartment "
                              f"{apartment}: landlords take steps on their own apartments only")
    stock = {a["apartment"]: a["status"] for a in api.get("/api/apartments", ADMIN).json()[
        "apartments"]}
    assert (stock[ours], stock[theirs]) == ("under_repair", "vacant")
    # a caseworker keeps the municipality's stock, every landlord's
    back = api.post("/api/apartments/steps", CASEWORKER, json={
        "type": "apartment_to_repair", "apartment": theirs, "on": d(1)})
    assert back.status_code == 200, back.text


def test_identical_stock_steps_at_once_under_one_key_get_one_first_answer(api):
    from concurrent.futures import ThreadPoolExecutor

    apartment = new_id("apt-same")
    key = unique_id("k-stock-same")
    body = {"type": "register_apartment", "apartment": apartment, "landlord": "Stockholmshem",
            "rooms": 2}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: api.post(
            "/api/apartments/steps", ADMIN, json=body, headers={"Idempotency-Key": key}),
            range(4)))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 3


def test_a_step_the_case_refused_under_a_key_can_be_corrected_under_the_same_key(api):
    """A refusal inside the step (an unknown reason code: the case's own check) is Temporal's
    answer to that update for good; a corrected step is another request, asked anew."""
    case = api.open_case(new_id("fix"), "assessment")
    key = unique_id("k-fix")
    wrong = api.keyed(case, CASEWORKER, {"type": "decide", "outcome": "denied",
                                         "reason_code": "nonsense", "reason": "Egen bostad"},
                      key)
    assert "nonsense" in assert_problem(wrong, 409)["detail"]
    fixed = api.keyed(case, CASEWORKER, {"type": "decide", "outcome": "denied",
                                         "reason_code": "other", "reason": "Egen bostad"},
                      key)
    assert fixed.status_code == 200 and fixed.json()["duplicate"] is False, fixed.text
    assert [r["event"] for r in api.history(case)][-1] == "Denied"


def test_an_empty_idempotency_key_is_a_422_not_a_step_without_a_key(api):
    case = api.open_case(new_id("idem"), "waiting")
    empty = api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "course_session", "session": 1}, headers={"Idempotency-Key": ""})
    assert assert_problem(empty, 422)["detail"].startswith("Idempotency-Key: empty")
    assert not [r for r in api.history(case) if r["event"] == "CourseSessionAttended"]


def test_a_denial_without_its_reason_code_is_a_422_on_record(api):
    case = api.open_case(new_id("code"), "assessment")
    detail = assert_problem(api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "decide", "outcome": "denied"}), 422)["detail"]
    assert detail.startswith("reason_code:")
    rows = api.get(f"/api/cases/{case}/access-log", SUPERVISOR).json()["rows"]
    assert [(r["outcome"], r["params"]["type"]) for r in rows
            if r["subject"] == CASEWORKER[0] and r["action"] == "case.step"] == [
        ("refused", "decide")]


def test_an_apply_on_another_units_case_id_says_it_is_taken_without_its_stage(api):
    case = api.open_case(new_id("taken"), "waiting")
    apply = {"type": "apply", "client": {"id": new_id("kl"), "target_group": "elderly",
                                         "district": "Spånga"}}
    detail = assert_problem(api.post(f"/api/cases/{case}/steps", OTHER_UNIT_CASEWORKER,
                                     json=apply), 409)["detail"]
    assert detail == f"case {case} already exists; a new application needs a new case id"
    own = assert_problem(api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        **apply, "client": {**apply["client"], "district": "Farsta"}}), 409)["detail"]
    assert own.startswith(f"case {case} already exists (") and "waiting" in own.lower()


def test_the_recorded_actor_of_a_step_through_the_api_is_the_tokens_subject(api):
    case = api.open_case(new_id("actor"), "assessment")
    step = api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "decide", "outcome": "granted", "programme": "housing_first"})
    assert step.status_code == 200, step.text
    last = api.history(case)[-1]
    assert (last["event"], last["actor"]) == ("Granted", CASEWORKER[0])
    assert last["command_id"] == step.json()["command_id"]


# --- the access log -----------------------------------------------------------------------------


def test_a_caseworker_of_another_unit_cannot_attach_a_case_to_a_registered_client_to_reveal_them(
        api):
    case, client = new_id("reg"), new_id("kl")
    number = "19850312-2395"
    applied = api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "apply", "on": d(5), "client": {
            "id": client, "target_group": "elderly", "district": "Farsta",
            "name": "Anna Andersson", "personal_number": number}})
    assert applied.status_code == 200, applied.text
    # the number under a new client id: refused without naming the other client
    probe = new_id("probe")
    detail = assert_problem(api.post(f"/api/cases/{probe}/steps", OTHER_UNIT_CASEWORKER, json={
        "type": "apply", "on": d(1), "client": {
            "id": new_id("kl"), "target_group": "elderly", "district": "Spånga",
            "personal_number": number}}), 409)["detail"]
    assert "already registered under another client id" in detail and client not in detail
    # the registered client's id, without the number: refused, on record
    other = new_id("sk")
    detail = assert_problem(api.post(f"/api/cases/{other}/steps", OTHER_UNIT_CASEWORKER, json={
        "type": "apply", "on": d(1), "client": {
            "id": client, "target_group": "elderly", "district": "Spånga"}}), 403)["detail"]
    assert "registered with another unit" in detail
    assert_problem(api.post(f"/api/cases/{other}/identity", OTHER_UNIT_CASEWORKER), 404)
    # with the client's own number (the person is there) a case can be opened for them
    moved = new_id("sk")
    answer = api.post(f"/api/cases/{moved}/steps", OTHER_UNIT_CASEWORKER, json={
        "type": "apply", "on": d(1), "client": {
            "id": client, "target_group": "elderly", "district": "Spånga",
            "personal_number": "198503122395"}})
    assert answer.status_code == 200, answer.text
    # a caseworker of the client's unit opens a new case without the number, as before
    again = api.post(f"/api/cases/{new_id('reg')}/steps", CASEWORKER, json={
        "type": "apply", "on": d(1), "client": {
            "id": client, "target_group": "elderly", "district": "Farsta"}})
    assert again.status_code == 200, again.text
    conn = raw_audit(api)
    try:
        mark = "%s" if api.stack.backend == "postgres" else "?"
        outcomes = {row[0]: row[1] for row in conn.execute(
            f"SELECT case_id, outcome FROM access_log WHERE case_id IN ({mark}, {mark}) "
            "ORDER BY seq", (probe, other)).fetchall()}
    finally:
        conn.close()
    assert outcomes == {probe: "refused", other: "denied"}


def test_a_caseworker_of_another_unit_cannot_register_a_notice_for_a_registered_client_to_reveal_them(
        api):
    case, client = new_id("reg"), new_id("kl")
    assert api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "apply", "on": d(5), "client": {
            "id": client, "target_group": "elderly", "district": "Farsta",
            "name": "Anna Andersson", "personal_number": "19700101-1233"}}).status_code == 200
    notice = new_id("n")
    detail = assert_problem(api.post(f"/api/notices/{notice}/steps", OTHER_UNIT_CASEWORKER, json={
        "type": "register", "client": client, "district": "Spånga", "on": d(1)}), 403)["detail"]
    assert "registered with another unit" in detail and "Anna" not in detail
    assert_problem(api.get(f"/api/notices/{notice}", OTHER_UNIT_CASEWORKER), 404)
    # the client's own unit registers a notice for them as before
    ours = api.post(f"/api/notices/{new_id('n')}/steps", CASEWORKER, json={
        "type": "register", "client": client, "district": "Farsta", "on": d(1)})
    assert ours.status_code == 200, ours.text


def test_a_notice_step_under_a_key_is_answered_as_done_only_for_the_same_step_sent_again(api):
    """As a case step's: a retry is a duplicate, other fields or another person under the key
    a 409 that changes nothing, and of identical requests at once one is first."""
    from concurrent.futures import ThreadPoolExecutor

    notice = new_id("n-key")
    assert api.post(f"/api/notices/{notice}/steps", CASEWORKER, json={
        "type": "register", "client": new_id("kl"), "district": "Farsta",
        "on": d(2)}).status_code == 200
    key = unique_id("k-notice")

    def send(body: dict[str, Any], who=CASEWORKER, on_key: str = key) -> httpx.Response:
        return api.post(f"/api/notices/{notice}/steps", who, json=body,
                        headers={"Idempotency-Key": on_key})

    body = {"type": "contact_attempt", "reached": False, "channel": "phone", "on": d(1)}
    assert send(body).json()["duplicate"] is False
    assert send(body).json()["duplicate"] is True
    detail = assert_problem(send({**body, "reached": True}), 409)["detail"]
    assert f"notice {notice}: the command id {key} was used for a step contact_attempt with " \
        "other fields" in detail, detail
    colleague = ("handlaggare.lind", ["caseworker"], ["Farsta"])
    assert "another person's step" in assert_problem(send(body, colleague), 409)["detail"]
    assert api.get(f"/api/notices/{notice}", CASEWORKER).json()["reached_on"] is None
    again = unique_id("k-notice-same")
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: send(body, on_key=again), range(4)))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 3
    conn = raw_audit(api)
    try:
        mark = "%s" if api.stack.backend == "postgres" else "?"
        outcomes = [row[0] for row in conn.execute(
            "SELECT outcome FROM access_log WHERE action = 'notice.step' "
            f"AND CAST(params AS TEXT) LIKE {mark} ORDER BY seq", (f"%{key}%",)).fetchall()]
    finally:
        conn.close()
    assert outcomes == ["allowed", "allowed", "refused", "refused"]


def test_every_read_and_step_of_a_notice_is_on_record_with_the_notice_and_its_unit(api):
    """As a case's: a refused read names the notice's unit, a denied step the notice, and an
    unknown notice is on record too (a 404 for those who may know, a 403 for others)."""
    notice, ghost = new_id("n-log"), new_id("n-ghost")
    assert api.post(f"/api/notices/{notice}/steps", CASEWORKER, json={
        "type": "register", "client": new_id("kl"), "district": "Farsta",
        "on": d(2)}).status_code == 200
    assert_problem(api.get(f"/api/notices/{notice}", OTHER_UNIT_CASEWORKER), 403)
    assert_problem(api.post(f"/api/notices/{notice}/steps", OTHER_UNIT_CASEWORKER, json={
        "type": "contact_attempt", "reached": False, "channel": "phone", "on": d(1)}), 403)
    assert_problem(api.get(f"/api/notices/{ghost}", CASEWORKER), 404)
    assert_problem(api.get(f"/api/notices/{ghost}", PILOT), 403)
    detail = assert_problem(api.post(f"/api/notices/{ghost}/steps", CASEWORKER, json={
        "type": "contact_attempt", "reached": False, "channel": "phone", "on": d(1)}),
        404)["detail"]
    assert detail == f"notice {ghost} does not exist: register it first"
    assert_problem(api.post(f"/api/notices/{ghost}/steps", PILOT, json={
        "type": "outreach_visit", "reached": False, "on": d(1)}), 403)
    conn = raw_audit(api)
    try:
        rows = conn.execute(
            "SELECT subject, action, outcome, case_unit, params FROM access_log "
            "WHERE action IN ('notice.step', 'notice.read') ORDER BY seq").fetchall()
    finally:
        conn.close()
    mine = [(subject, action, outcome, unit) for subject, action, outcome, unit, params in rows
            if (json.loads(params) if isinstance(params, str) else params).get("notice")
            in (notice, ghost)]
    assert mine == [
        (CASEWORKER[0], "notice.step", "allowed", "Farsta"),
        (OTHER_UNIT_CASEWORKER[0], "notice.read", "denied", "Farsta"),
        (OTHER_UNIT_CASEWORKER[0], "notice.step", "denied", "Farsta"),
        (CASEWORKER[0], "notice.read", "denied", None),
        (PILOT[0], "notice.read", "denied", None),
        (CASEWORKER[0], "notice.step", "denied", None),
        (PILOT[0], "notice.step", "denied", None),
    ]


def test_a_new_case_for_a_registered_client_cannot_rename_them_or_change_their_number(api):
    case, client = new_id("reg"), new_id("kl")
    assert api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "apply", "on": d(5), "client": {
            "id": client, "target_group": "elderly", "district": "Farsta",
            "name": "Anna Andersson", "personal_number": "19650505-2347"}}).status_code == 200
    for identity, words in (({"name": "Totally Different"}, "registered under another name"),
                            ({"personal_number": "195512123455"},
                             "another personal identity number is registered")):
        second = new_id("reg")
        detail = assert_problem(api.post(f"/api/cases/{second}/steps", CASEWORKER, json={
            "type": "apply", "on": d(1), "client": {
                "id": client, "target_group": "elderly", "district": "Farsta", **identity}}),
            409)["detail"]
        assert words in detail, detail
        assert_problem(api.get(f"/api/cases/{second}", CASEWORKER), 404)
    # the same name typed another way opens a second case and keeps the registered name
    again = api.post(f"/api/cases/{new_id('reg')}/steps", CASEWORKER, json={
        "type": "apply", "on": d(1), "client": {
            "id": client, "target_group": "elderly", "district": "Farsta",
            "name": "anna  ANDERSSON"}})
    assert again.status_code == 200, again.text
    revealed = api.post(f"/api/cases/{case}/identity", CASEWORKER).json()
    assert (revealed["name"], revealed["personal_number"]) == ("Anna Andersson", "196505052347")
    # a new name with the client's own number (the person is there) corrects it
    renamed = api.post(f"/api/cases/{new_id('reg')}/steps", CASEWORKER, json={
        "type": "apply", "on": d(1), "client": {
            "id": client, "target_group": "elderly", "district": "Farsta",
            "name": "Anna Berg", "personal_number": "196505052347"}})
    assert renamed.status_code == 200, renamed.text
    assert api.post(f"/api/cases/{case}/identity", CASEWORKER).json()["name"] == "Anna Berg"


def test_a_step_the_case_refuses_is_on_record_once_as_refused(api):
    case = api.open_case(new_id("ref"), "assessment")
    assert_problem(api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "move_in", "apartment": "apt-none"}), 409)
    key = unique_id("k-refused")
    assert_problem(api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
        "type": "move_in", "apartment": "apt-other"}, headers={"Idempotency-Key": key}), 409)
    rows = api.get(f"/api/cases/{case}/access-log", SUPERVISOR).json()["rows"]
    steps = [(r["outcome"], r["params"].get("type")) for r in rows
             if r["action"] == "case.step" and r["subject"] == CASEWORKER[0]
             and r["params"].get("type") == "move_in"]
    assert steps == [("refused", "move_in"), ("refused", "move_in")]  # one each, not two


def test_every_read_and_every_refusal_is_in_the_cases_access_log(api):
    case = api.open_case(new_id("log"), "waiting")
    assert api.get(f"/api/cases/{case}", CASEWORKER).status_code == 200
    assert api.get(f"/api/cases/{case}/history", CASEWORKER).status_code == 200
    assert_problem(api.get(f"/api/cases/{case}", OTHER_PILOT), 403)
    log = api.get(f"/api/cases/{case}/access-log", SUPERVISOR)
    assert log.status_code == 200, log.text
    rows = log.json()["rows"]
    seen = [(r["subject"], r["action"], r["outcome"]) for r in reversed(rows)
            if r["action"] != "case.step"]
    assert seen[-3:] == [(CASEWORKER[0], "case.read", "allowed"),
                         (CASEWORKER[0], "case.history", "allowed"),
                         (OTHER_PILOT[0], "case.read", "denied")]
    read = next(r for r in rows if r["action"] == "case.read" and r["outcome"] == "allowed")
    # handlaggare.ek opened the case, so is its caseworker: assigned, beyond being of the unit
    assert (read["relation"], read["case_unit"], read["units"]) == ("assigned", "Farsta",
                                                                    ["Farsta"])
    assert read["address"] == "127.0.0.1"
    again = api.get(f"/api/cases/{case}/access-log", SUPERVISOR).json()["rows"]
    assert (again[0]["subject"], again[0]["action"]) == (SUPERVISOR[0], "access_log.read")


@pytest.mark.parametrize("method,path,params,who,field", [
    ("get", "/api/cases/19121212-1212", {}, CASEWORKER, "case"),
    ("get", "/api/cases/bo-121212-1212/history", {}, SUPERVISOR, "case"),
    ("get", "/api/cases/19121212-1212/access-log", {}, SUPERVISOR, "case"),
    ("post", "/api/cases/19121212-1212/identity", {}, CASEWORKER, "case"),
    ("get", "/api/worklist", {"actor": "19121212-1212"}, SUPERVISOR, "actor"),
    ("post", "/api/identities/121212-1212/erase", {}, ADMIN, "client"),
    ("get", "/api/notices/19121212-1212", {}, CASEWORKER, "notice"),
    ("get", "/api/reports/queue", {"district": "19121212-1212"}, LANDLORD, "district"),
], ids=["a case", "a case's history", "a case's access log", "a reveal", "a worklist's actor",
        "an erasure", "a notice", "a report's option, also when the report is refused"])
def test_a_personal_identity_number_typed_into_a_path_or_query_is_422_and_never_on_record(
        api, method, path, params, who, field):
    """The access log is append-only and kept for years: a number typed where an id belongs
    would stay in it in the clear, out of reach of erasure."""
    assert api.get("/api/worklist", who).status_code == 200  # the log has a record
    problem = assert_problem(getattr(api, method)(path, who, params=params), 422)
    assert problem["detail"].startswith(f"{field}: must not contain a personal identity "
                                        "number ("), problem["detail"]
    assert "1212-1212" not in problem["detail"] + problem["instance"]
    conn = raw_audit(api)
    try:
        rows = conn.execute("SELECT case_id, params FROM access_log").fetchall()
    finally:
        conn.close()
    assert rows and not [row for row in rows if "1212-1212" in str(row) or "19121212" in str(row)]


def test_a_step_on_a_closed_case_is_refused_as_closed_not_as_missing(api):
    """A closed case's run completes; a step sent after that used to be told to apply first,
    as if the case had never been opened."""
    case = api.open_case(new_id("closed"), "waiting")
    api.step(case, type="exit", destination="own_housing", on=d(2))
    detail = ""
    for _ in range(60):
        detail = assert_problem(api.post(f"/api/cases/{case}/steps", CASEWORKER, json={
            "type": "course_session", "session": 1, "on": d(1)}), 409)["detail"]
        assert "apply first" not in detail
        if "no further steps are allowed" in detail:  # its run has completed
            break
        assert "the case is closed" in detail, detail
        time.sleep(0.5)
    assert detail == f"case {case} is closed (own_housing): no further steps are allowed"
    status = api.get(f"/api/cases/{case}", CASEWORKER).json()
    assert (status["stage"], status["workflow"], status["due"]) == ("closed", "closed", [])


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)  # Temporal's part: one store will do
def test_a_closed_notice_gone_from_temporal_is_read_and_refused_from_the_event_store(api):
    """Temporal keeps an ended run for its namespace's retention only (a day on the dev
    server): then the notice's status comes from the store, and a step is refused as on a
    closed notice, not as on one never registered. (Temporal deletes a run in about 30 s.)"""
    from runtime.binaries import temporal_cli

    notice = new_id("n-gone")
    assert api.post(f"/api/notices/{notice}/steps", CASEWORKER, json={
        "type": "register", "client": new_id("kl"), "district": "Farsta",
        "on": d(3)}).status_code == 200
    assert api.post(f"/api/notices/{notice}/steps", CASEWORKER, json={
        "type": "outcome", "outcome": "eviction_averted", "on": d(2)}).status_code == 200
    gone = subprocess.run([temporal_cli(), "workflow", "delete", "--workflow-id",
                           f"notice-{notice}", "--yes", "--address",
                           api.stack.env["TEMPORAL_ADDRESS"]],
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 0, gone.stderr
    for _ in range(120):  # Temporal deletes in the background
        described = subprocess.run([temporal_cli(), "workflow", "describe", "--workflow-id",
                                    f"notice-{notice}", "--address",
                                    api.stack.env["TEMPORAL_ADDRESS"]],
                                   capture_output=True, text=True, timeout=60)
        if described.returncode != 0:
            break
        time.sleep(0.5)
    assert described.returncode != 0 and "not found" in described.stderr.lower(), \
        described.stdout + described.stderr
    detail = assert_problem(api.post(f"/api/notices/{notice}/steps", CASEWORKER, json={
        "type": "contact_attempt", "reached": True, "channel": "phone", "on": d(1)}),
        409)["detail"]
    assert detail == f"notice {notice} is closed (eviction_averted): no further steps are allowed"
    status = api.get(f"/api/notices/{notice}", CASEWORKER)
    assert status.status_code == 200, status.text
    assert (status.json()["stage"], status.json()["outcome"], status.json()["due"]) == (
        "closed", "eviction_averted", [])


@pytest.mark.parametrize("method,path,kw", [
    ("post", "/api/cases/{case}/steps", {"json": {"type": "complaint", "note": "x",
                                                   "19121212-1212": 1}}),
    ("post", "/api/cases/{case}/steps", {"json": {"type": "19121212-1212"}}),
    ("get", "/api/reports/19121212-1212", {}),
    ("get", "/api/worklist", {"params": {"19121212-1212": "1"}}),
    ("get", "/api/audit/verify", {"params": {"anchor": "19121212-1212"}}),
], ids=["a field's name", "a step's type", "a report's name", "a parameter's name",
        "an anchor"])
def test_a_refusal_echoing_what_was_typed_masks_a_personal_identity_number_in_it(
        api, waiting_case, method, path, kw):
    answer = getattr(api, method)(path.format(case=waiting_case), ADMIN, **kw)
    assert answer.status_code == 422, answer.text
    assert "19121212-****" in answer.text and "1212-1212" not in answer.text, answer.text


@pytest.mark.parametrize("body,headers,field", [
    ({"id": ""}, {}, "id"),
    ({"id": "   "}, {}, "id"),
    ({"id": "k-body"}, {"Idempotency-Key": "k-header"}, "id"),
], ids=["an empty id", "a blank id", "an id and another key"])
def test_a_step_whose_command_id_is_empty_or_contradicted_is_422_and_takes_nothing(
        api, waiting_case, body, headers, field):
    """An empty id used to be taken as none: every retry then took the step anew."""
    before = len(api.history(waiting_case))
    for path in (f"/api/cases/{waiting_case}/steps", "/api/notices/n-none/steps"):
        step = {"type": "complaint", "note": "buller"} if "cases" in path else {
            "type": "contact_attempt", "reached": False, "channel": "phone"}
        problem = assert_problem(api.post(path, CASEWORKER, json={**step, **body},
                                          headers=headers), 422)
        assert problem["detail"].startswith(f"{field}: "), problem["detail"]
    assert len(api.history(waiting_case)) == before


def test_a_refusal_reads_the_same_for_a_case_or_notice_that_is_not_yours_and_one_that_does_not_exist(
        api):
    """For those who may not know which cases exist (pilots, landlords), a 403's words used to
    tell: a reason for an existing case, none for an unknown one."""
    case, notice = api.open_case(new_id("theirs")), new_id("n-theirs")
    assert api.post(f"/api/notices/{notice}/steps", CASEWORKER, json={
        "type": "register", "client": new_id("kl"), "district": "Farsta",
        "on": d(2)}).status_code == 200
    unknown_case, unknown_notice = new_id("ghost"), new_id("n-ghost")

    def detail(method: str, path: str, who, **kw: Any) -> str:
        return assert_problem(getattr(api, method)(path, who, **kw), 403)["detail"]

    for who in (PILOT, LANDLORD):
        for method, path, kw in (
                ("get", "/api/cases/{}", {}),
                ("get", "/api/cases/{}/history", {}),
                ("post", "/api/cases/{}/steps", {"json": {"type": "course_session",
                                                          "session": 1}}),
                ("post", "/api/cases/{}/steps", {"json": {"type": "complaint", "note": "x"}}),
                ("get", "/api/notices/{}", {}),
                ("post", "/api/notices/{}/steps", {"json": {
                    "type": "outreach_visit", "reached": False}})):
            known, ghost = (case, unknown_case) if "cases" in path else (notice, unknown_notice)
            assert detail(method, path.format(known), who, **kw).replace(known, "X") == \
                detail(method, path.format(ghost), who, **kw).replace(ghost, "X"), (who, path)


def raw_audit(api: Api):
    """The attacker's own connection to the access log, outside the application's code."""
    if api.stack.backend == "postgres":
        import psycopg

        return psycopg.connect(host=PG["POSTGRES_HOST"], port=int(PG["POSTGRES_PORT"]),
                               user=PG["POSTGRES_USER"], password=PG["POSTGRES_PASSWORD"],
                               dbname=api.stack.store["POSTGRES_DBNAME"], autocommit=True)
    return sqlite3.connect(api.stack.data / "audit.sqlite", isolation_level=None, timeout=30)


def drop_append_only_triggers(conn, postgres: bool) -> list[str]:
    if postgres:
        names = [r[0] for r in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'access_log'::regclass "
            "AND NOT tgisinternal")]
        for name in names:
            conn.execute(f"DROP TRIGGER {name} ON access_log")
    else:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'access_log'")]
        for name in names:
            conn.execute(f"DROP TRIGGER {name}")
    return names


def test_audit_verify_finds_the_newest_records_deleted_by_the_anchor_an_earlier_verify_left(api):
    """The attacker deletes the newest records (the chain alone still looks whole). The
    anchor the earlier verify left outside the table names them; the rows are put back after."""
    case = api.open_case(new_id("tail"), "waiting")
    assert api.get(f"/api/cases/{case}", CASEWORKER).status_code == 200
    intact = api.cli("audit", "verify", "--json")
    assert intact.returncode == 0, intact.stderr
    head = json.loads(intact.stdout)
    shown = api.cli("audit", "verify")
    assert f"anchor: {head['head_seq'] + 1}:" in shown.stdout  # the first verify's own record
    # an anchor kept elsewhere: in place, it is checked and counted; with another hash, broken
    mine = f"{head['head_seq']}:{head['head_hash']}"
    kept = api.get("/api/audit/verify", ADMIN, params={"anchor": mine}).json()
    assert kept["ok"] and kept["anchors_checked"] >= 2, kept  # the file's and the one given
    forged = api.get("/api/audit/verify", ADMIN, params={
        "anchor": f"{head['head_seq']}:{'0' * 64}"}).json()
    assert (forged["ok"], forged["first_broken"]) == (False, head["head_seq"])
    assert "is not the record anchored" in forged["reason"]
    postgres = api.stack.backend == "postgres"
    mark = "%s" if postgres else "?"
    conn = raw_audit(api)
    try:
        kept = conn.execute(f"SELECT * FROM access_log WHERE seq >= {mark} ORDER BY seq",
                            (head["head_seq"] - 2,)).fetchall()
        drop_append_only_triggers(conn, postgres)
        conn.execute(f"DELETE FROM access_log WHERE seq >= {mark}", (head["head_seq"] - 2,))
        broken = api.cli("audit", "verify")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"record {head['head_seq'] - 2}" in broken.stderr
        assert "deleted from the end" in broken.stderr
        # an anchor kept elsewhere is checked the same way; a malformed one names the option
        elsewhere = api.get("/api/audit/verify", ADMIN,
                            params={"anchor": f"{head['head_seq']}:{head['head_hash']}"})
        assert elsewhere.status_code == 200 and elsewhere.json()["ok"] is False
        bad = api.cli("audit", "verify", "--anchor", "12")
        assert bad.returncode == 2 and "--anchor: '12' is not SEQ:HASH" in bad.stderr
    finally:
        drop_append_only_triggers(conn, postgres)
        conn.execute(f"DELETE FROM access_log WHERE seq >= {mark}", (head["head_seq"] - 2,))
        marks = ", ".join([mark] * len(kept[0]))
        for row in kept:
            if postgres:  # jsonb columns come back as dicts and lists
                from psycopg.types.json import Jsonb

                row = [Jsonb(v) if isinstance(v, dict | list) else v for v in row]
            conn.execute(f"INSERT INTO access_log VALUES ({marks})", row)
        conn.close()
    restored = api.cli("audit", "verify")
    assert restored.returncode == 0, restored.stderr


def test_audit_verify_finds_a_record_altered_behind_the_applications_back(api):
    """The attacker has database rights: drops the append-only triggers and rewrites who read
    a case. The hash chain still names the record. The row is put back afterwards, and opening
    the log (as `audit verify` does) puts the triggers back, so the other tests see an intact log."""
    case = api.open_case(new_id("tamper"), "waiting")
    assert api.get(f"/api/cases/{case}", CASEWORKER).status_code == 200
    intact = api.cli("audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "unbroken" in intact.stdout
    rows = api.get(f"/api/cases/{case}/access-log", ADMIN).json()["rows"]
    target = next(r for r in rows if r["subject"] == CASEWORKER[0] and r["action"] == "case.read")
    seq, postgres = target["seq"], api.stack.backend == "postgres"
    mark = "%s" if postgres else "?"
    conn = raw_audit(api)
    try:
        assert drop_append_only_triggers(conn, postgres)
        conn.execute(f"UPDATE access_log SET subject = {mark} WHERE seq = {mark}",
                     ("somebody.else", seq))
        broken = api.cli("audit", "verify")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"record {seq}" in broken.stderr and "altered" in broken.stderr
        as_json = json.loads(api.cli("audit", "verify", "--json").stdout)
        assert (as_json["ok"], as_json["first_broken"]) == (False, seq)
    finally:  # `audit verify` opened the log and so put the triggers back: drop them again
        drop_append_only_triggers(conn, postgres)
        conn.execute(f"UPDATE access_log SET subject = {mark} WHERE seq = {mark}",
                     (target["subject"], seq))
        conn.close()
    restored = api.cli("audit", "verify")
    assert restored.returncode == 0, restored.stderr
    conn = raw_audit(api)
    try:
        with pytest.raises(Exception, match="append-only"):
            conn.execute(f"UPDATE access_log SET subject = 'x' WHERE seq = {seq}")
    finally:
        conn.close()


def test_the_monthly_review_lists_reads_without_a_reason_and_denied_attempts(api):
    """The admin may read any case, but a read with no assignment to the case or its unit is
    what the monthly review is for; so is every refused attempt."""
    case = api.open_case(new_id("review"), "waiting")
    assert api.get(f"/api/cases/{case}", ADMIN).status_code == 200
    assert_problem(api.get(f"/api/cases/{case}", OTHER_PILOT), 403)
    assert api.get(f"/api/cases/{case}", CASEWORKER).status_code == 200
    month = datetime.now(UTC).strftime("%Y-%m")
    review = api.cli("audit", "review", "--month", month, "--json")
    assert review.returncode == 0, review.stderr
    on_case = [(r["subject"], r["action"], r["outcome"], r["relation"])
               for r in json.loads(review.stdout) if r["case"] == case]
    assert (ADMIN[0], "case.read", "allowed", "none") in on_case
    assert (OTHER_PILOT[0], "case.read", "denied", "none") in on_case
    assert all(subject != CASEWORKER[0] for subject, *_ in on_case)  # the unit's own reads


def test_a_supervisor_reviews_the_access_records_of_their_units_cases_only(api):
    """The monthly review of a supervisor of Farsta holds the reads of Farsta's cases; a
    Spånga case read by someone without reason is in Spånga's supervisor's review and the
    admin's, never in Farsta's."""
    farsta = api.open_case(new_id("rev-f"), "waiting")
    spanga = api.open_case(new_id("rev-s"), "waiting", district="Spånga")
    for case in (farsta, spanga):
        assert api.get(f"/api/cases/{case}", ADMIN).status_code == 200  # no relation: reviewed
    month = datetime.now(UTC).strftime("%Y-%m")
    spanga_boss = ("enhetschef.spanga", ["supervisor"], ["Spånga"])

    def reviewed(who) -> set[str]:
        answer = api.get("/api/audit/review", who, params={"month": month})
        assert answer.status_code == 200, answer.text
        return {r["case"] for r in answer.json()["rows"] if r["case"]}
    assert farsta in reviewed(SUPERVISOR) and spanga not in reviewed(SUPERVISOR)
    assert spanga in reviewed(spanga_boss) and farsta not in reviewed(spanga_boss)
    assert {farsta, spanga} <= reviewed(ADMIN)


# --- reports, import --------------------------------------------------------------------------


def test_a_report_asked_for_as_csv_answers_csv_with_a_header_row(api, waiting_case):
    response = api.get("/api/reports/queue", CASEWORKER, headers={"Accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    header, *rows = response.text.splitlines()
    assert header.split(",")[:2] == ["case", "client"]
    assert any(row.startswith(f"{waiting_case},") for row in rows)


def test_a_report_of_one_set_of_figures_as_csv_is_one_row_not_an_empty_answer(api):
    api.step(None, type="register_apartment", apartment=new_id("apt"), landlord="Stockholmshem",
             rooms=2, on=d(3))
    as_json = api.get("/api/reports/stock", SUPERVISOR).json()
    response = api.get("/api/reports/stock", SUPERVISOR, headers={"Accept": "text/csv"})
    assert response.status_code == 200, response.text
    header, *rows = response.text.splitlines()
    assert "as_of" in header.split(",") and len(rows) == 1
    assert rows[0].split(",")[header.split(",").index("as_of")] == as_json["as_of"]


def import_body(case: str) -> bytes:
    lines = [
        {"type": "register_apartment", "apartment": f"apt-{case}", "landlord": "Stockholmshem",
         "rooms": 2, "on": d(20)},
        {"type": "apply", "case": case, "on": d(20), "actor": "handlaggare.lind",
         "client": {"id": f"p-{case}", "target_group": "elderly", "district": "Farsta"}},
        {"type": "start_assessment", "case": case, "on": d(19)},
    ]
    return ("\n".join(json.dumps(x) for x in lines) + "\n{not json\n").encode()


def test_an_import_streams_json_lines_and_ends_with_its_summary(api):
    case = new_id("imp")
    with api.http.stream("POST", "/api/imports", content=import_body(case),
                         headers={**api.auth(ADMIN), "Content-Type": "application/x-ndjson"},
                         params={"source": "test_api"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        items = [json.loads(line) for line in response.iter_lines() if line.strip()]
    summary = items[-1]["summary"]
    assert summary["accepted"] == 3
    assert [r["line"] for r in summary["refused"]] == [4]
    assert {"line": 4, "case": None, "accepted": False}.items() <= items[-2].items()
    progress = [i for i in items if "done" in i]
    assert progress and [p["done"] for p in progress] == sorted({p["done"] for p in progress})
    assert progress[-1] == {"done": 3, "lines": 3}  # so far, not per batch; line 4 unreadable
    assert [r["event"] for r in api.history(case)] == ["Applied", "AssessmentStarted"]


@pytest.mark.parametrize("params,field", [
    ({"actor": "a\nb"}, "actor"), ({"actor": ""}, "actor"), ({"actor": " x"}, "actor"),
    ({"source": "s" * 500}, "source"), ({"source": "a\nb"}, "source"), ({"source": ""}, "source"),
], ids=["an actor with a newline", "an empty actor", "an actor with a leading space",
        "a long source", "a source with a newline", "an empty source"])
def test_an_import_under_an_actor_or_source_no_line_could_take_is_422_before_anything(
        api, params, field):
    """Each line used to be refused on its own, in the decoder's or Temporal's words."""
    case = new_id("imp-bad")
    problem = assert_problem(api.post("/api/imports", ADMIN, content=import_body(case),
                                      headers={"Content-Type": "application/x-ndjson"},
                                      params=params), 422)
    assert problem["detail"].startswith(f"{field}: "), problem["detail"]
    assert_problem(api.get(f"/api/cases/{case}", ADMIN), 404)


def test_an_import_is_in_the_access_log_of_each_case_it_writes_to_and_not_on_the_review(api):
    case = new_id("imp-log")
    with api.http.stream("POST", "/api/imports", content=import_body(case),
                         headers={**api.auth(ADMIN), "Content-Type": "application/x-ndjson"},
                         params={"source": "migration-2019"}) as response:
        assert response.status_code == 200
        assert [json.loads(x) for x in response.iter_lines() if x.strip()][-1]["summary"][
            "accepted"] == 3
    rows = api.get(f"/api/cases/{case}/access-log", SUPERVISOR).json()["rows"]
    imported = [r for r in rows if r["action"] == "case.import"]
    assert [(r["subject"], r["outcome"], r["case_unit"], r["params"]) for r in imported] == [
        (ADMIN[0], "allowed", "Farsta", {"source": "migration-2019", "lines": "2"})]
    month = datetime.now(UTC).strftime("%Y-%m")
    review = api.cli("audit", "review", "--month", month, "--json")
    assert review.returncode == 0, review.stderr
    assert case not in {r["case"] for r in json.loads(review.stdout)}


def test_an_imported_grant_without_a_programme_is_refused_naming_its_line_and_the_field(api):
    case = new_id("imp-grant")
    body = import_body(case).replace(b"{not json\n", json.dumps(
        {"type": "decide", "case": case, "on": d(18), "outcome": "granted"}).encode() + b"\n")
    with api.http.stream("POST", "/api/imports", content=body,
                         headers={**api.auth(ADMIN), "Content-Type": "application/x-ndjson"},
                         params={"source": "test_api"}) as response:
        assert response.status_code == 200
        items = [json.loads(line) for line in response.iter_lines() if line.strip()]
    refused = [i for i in items if i.get("accepted") is False]
    assert [(r["line"], r["case"]) for r in refused] == [(4, case)]
    assert refused[0]["reason"].startswith("programme: Field required when granted")
    assert items[-1]["summary"]["accepted"] == 3
    assert [r["event"] for r in api.history(case)] == ["Applied", "AssessmentStarted"]


def test_an_imported_line_that_is_not_utf8_is_refused_naming_its_line_not_stored_misspelt(api):
    case = new_id("imp-latin")
    apply = json.dumps({"type": "apply", "case": case, "on": d(18), "client": {
        "id": f"p-{case}", "target_group": "elderly", "district": "Farsta",
        "name": "Björn Säll"}}, ensure_ascii=False).encode("latin-1")
    body = import_body(new_id("imp")).replace(b"{not json\n", apply + b"\n")
    with api.http.stream("POST", "/api/imports", content=body,
                         headers={**api.auth(ADMIN), "Content-Type": "application/x-ndjson"},
                         params={"source": "test_api"}) as response:
        assert response.status_code == 200
        items = [json.loads(line) for line in response.iter_lines() if line.strip()]
    refused = items[-1]["summary"]["refused"]
    assert [r["line"] for r in refused] == [4] and "not UTF-8" in refused[0]["reason"]
    assert items[-1]["summary"]["accepted"] == 3
    assert_problem(api.get(f"/api/cases/{case}", CASEWORKER), 404)


def test_a_file_imported_again_is_all_already_recorded_and_records_nothing(api):
    case = new_id("imp")

    def summary() -> dict[str, Any]:
        with api.http.stream("POST", "/api/imports", content=import_body(case),
                             headers={**api.auth(ADMIN), "Content-Type": "application/x-ndjson"},
                             params={"source": "test_api"}) as response:
            assert response.status_code == 200
            items = [json.loads(line) for line in response.iter_lines() if line.strip()]
        return items[-1]["summary"]

    first, again = summary(), summary()
    assert (first["accepted"], first["duplicates"]) == (3, 0)
    assert (again["accepted"], again["duplicates"]) == (3, 3)
    assert [r["event"] for r in api.history(case)] == ["Applied", "AssessmentStarted"]


def test_only_the_admin_imports(api):
    case = new_id("imp-denied")
    for who in (CASEWORKER, SUPERVISOR):
        response = api.post("/api/imports", who, content=import_body(case),
                            headers={"Content-Type": "application/x-ndjson"})
        assert "import" in assert_problem(response, 403)["detail"]
    assert_problem(api.get(f"/api/cases/{case}", ADMIN), 404)


# --- the CLI through the API -------------------------------------------------------------------


def test_the_cli_pointed_at_the_api_reads_and_steps_as_the_tokens_subject(api):
    case = api.open_case(new_id("remote"), "waiting")
    remote = {"HOUSING_CHAIN_API_URL": api.base,
              "HOUSING_CHAIN_API_TOKEN": api.token(CASEWORKER)}
    status = api.cli("status", case, "--json", **remote)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["stage"] == "waiting"
    step = api.cli("course-session", case, "--session", "1", **remote)
    assert step.returncode == 0, step.stderr
    last = api.history(case)[-1]
    assert (last["event"], last["actor"]) == ("CourseSessionAttended", CASEWORKER[0])


def test_a_report_through_the_cli_pointed_at_the_api_keeps_its_period(api):
    remote = {"HOUSING_CHAIN_API_URL": api.base,
              "HOUSING_CHAIN_API_TOKEN": api.token(SUPERVISOR)}
    api.open_case(new_id("period"), "waiting")  # applied 40 days ago: outside the period
    period = api.get("/api/reports/throughput", SUPERVISOR,
                     params={"by": "month", "from": d(3), "to": d(1)}).json()
    every = api.get("/api/reports/throughput", SUPERVISOR, params={"by": "month"}).json()
    assert period["rows"] != every["rows"]
    answer = api.cli("report", "throughput", "--by", "month", "--from", d(3), "--to", d(1),
                     "--json", **remote)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["rows"] == period["rows"]


def test_the_cli_pointed_at_the_api_with_a_pilots_token_is_refused_cleanly(api):
    case = api.open_case(new_id("remote-pilot"), "waiting")
    result = api.cli("status", case, HOUSING_CHAIN_API_URL=api.base,
                     HOUSING_CHAIN_API_TOKEN=api.token(OTHER_PILOT))
    assert result.returncode == 1
    assert f"{OTHER_PILOT[0]} may not read case {case}" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr + result.stdout


def test_a_supervisor_reads_the_case_lists_of_reports_for_their_unit_only(api):
    """The queue, IVO and arrears lists name the cases of the reader's units (and those
    assigned to them), their figures counted from those cases; the admin reads every unit's.
    A supervisor of Farsta must not learn which cases Spånga has."""
    farsta = api.open_case(new_id("q-farsta"), "waiting")
    spanga = api.open_case(new_id("q-spanga"), "waiting", district="Spånga")
    spanga_boss = ("enhetschef.spanga", ["supervisor"], ["Spånga"])
    for who, sees, hidden in ((SUPERVISOR, farsta, spanga), (spanga_boss, spanga, farsta),
                              (OTHER_UNIT_CASEWORKER, spanga, farsta)):
        body = api.get("/api/reports/queue", who, params={"by": "district"}).json()
        cases = {r["case"] for r in body["rows"]}
        assert sees in cases and hidden not in cases, (who, body)
        assert body["cases_of"]["units"] == who[2]
        assert sum(g["count"] for g in body["groups"]) == len(body["rows"])
        assert {g["group"] for g in body["groups"]} == set(who[2])
        csv = api.get("/api/reports/queue", who, headers={"Accept": "text/csv"}).text
        assert sees in csv and hidden not in csv
    everyone = {r["case"] for r in api.get("/api/reports/queue", ADMIN).json()["rows"]}
    assert {farsta, spanga} <= everyone
    assert "cases_of" not in api.get("/api/reports/queue", ADMIN).json()


def test_a_supervisor_reads_everyones_worklist_and_the_apartments_for_their_unit_only(api):
    """Everyone's worklist, read by a supervisor, holds the items of their units' cases, its
    counts from those; the apartment list says a flat is lived in by another unit's case
    without naming it. The admin's lists name every case."""
    farsta = api.open_case(new_id("w-farsta"), "training")
    spanga = api.open_case(new_id("w-spanga"), "training", district="Spånga")
    body = api.get("/api/worklist", SUPERVISOR, params={"everyone": "true", "days": 60}).json()
    cases = {r["case"] for r in body["rows"]}
    assert farsta in cases and spanga not in cases, body
    assert body["overdue"] + body["due"] == len(body["rows"])
    assert body["cases_of"]["units"] == ["Farsta"]
    one = api.get("/api/worklist", SUPERVISOR, params={"everyone": "true", "days": 60,
                                                       "kind": "support_visit"}).json()
    assert {r["case"] for r in one["rows"]} <= cases and (one["overdue"], one["due"]) == (
        body["overdue"], body["due"])
    everyone = api.get("/api/worklist", ADMIN, params={"everyone": "true", "days": 60}).json()
    assert {farsta, spanga} <= {r["case"] for r in everyone["rows"]}
    flats = {a["apartment"]: a for a in api.get("/api/apartments", SUPERVISOR).json()["apartments"]}
    assert flats[f"apt-{farsta}"]["case_id"] == farsta
    other = flats[f"apt-{spanga}"]
    assert other["case_id"] is None and other["client"] is None and other["case_of_another_unit"]
    admin = {a["apartment"]: a for a in api.get("/api/apartments", ADMIN).json()["apartments"]}
    assert admin[f"apt-{spanga}"]["case_id"] == spanga


def test_an_import_through_the_cli_pointed_at_the_api_counts_its_progress_in_lines(api, tmp_path):
    """The bar of `housing-chain import` through the API runs to the lines read well, as on
    the embedded stack (it counted one a streamed message before)."""
    case = new_id("imp-cli")
    path = tmp_path / "remote.jsonl"
    path.write_bytes(import_body(case))
    remote = {"HOUSING_CHAIN_API_URL": api.base, "HOUSING_CHAIN_API_TOKEN": api.token(ADMIN),
              "COLUMNS": "200"}
    run = api.cli("import", str(path), **remote)
    assert run.returncode == 1, run.stderr  # line 4 is refused
    bar = [line for line in run.stderr.splitlines() if line.startswith("importing")]
    assert bar and "3/3" in bar[-1], run.stderr
    assert [r["event"] for r in api.history(case)] == ["Applied", "AssessmentStarted"]
