"""The HTTP API against its own OpenAPI document, fuzzed by schemathesis on a real embedded
stack: whatever a client sends, the API answers without a server error, and every answer is
the shape its document promises, and every refusal is problem details.

The document is built from the app at import time, because schemathesis makes one test per
operation while collecting, before any stack runs (and its fixture-based loader does not work
with pytest 9); a test checks that it is byte for byte what the running stack serves at
/openapi.json, so what is fuzzed is the running API's document. The requests go to the stack.

Bounded so that it finishes in a few minutes on two cores: a few examples per operation,
Hypothesis' explicit and generate phases only, no deadline (a step goes through Temporal).
Path parameters are often real case ids, so that operations are fuzzed past the 404.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from application.tokens import LocalIssuer
from config.settings import Settings
from interfaces.api.app import create_app
from tests.backends import store_env
from tests.stack import Stack

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 10
TODAY = date.today()
SUFFIX = uuid.uuid4().hex[:6]
KNOWN_CASES = [f"fz-wait-{SUFFIX}", f"fz-train-{SUFFIX}"]


def d(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def openapi_document() -> dict:
    """The app's OpenAPI document; the app opens nothing until a request comes."""
    with tempfile.TemporaryDirectory(prefix="housing-chain-openapi-") as data:
        return create_app(Settings(data=Path(data))).openapi()


DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(max_examples=MAX_EXAMPLES)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Mostly a real case, so the operation is fuzzed past its 404; sometimes the fuzzer's."""
    if "case" not in (path_parameters or {}):
        return st.just(path_parameters)
    return st.sampled_from([*KNOWN_CASES, path_parameters["case"]]).map(
        lambda case: {**path_parameters, "case": case})


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("api-schema")
    s = Stack.on_free_ports(data)
    s.store = store_env("sqlite", data)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def base_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}"


@pytest.fixture(scope="module")
def admin_token(stack: Stack) -> str:
    """The admin reaches every operation, so the fuzzer gets past the access rules."""
    return LocalIssuer(stack.data).mint("admin.fuzz", ["admin"], [], ttl_seconds=3 * 3600)


@pytest.fixture(scope="module")
def known_cases(base_url: str, admin_token: str) -> list[str]:
    """A case waiting for an apartment and one in its training apartment."""
    waiting, training = KNOWN_CASES
    apartment = f"fz-apt-{SUFFIX}"
    steps = [(None, {"type": "register_apartment", "apartment": apartment,
                     "landlord": "Stockholmshem", "rooms": 1, "on": d(60)})]
    for case in (waiting, training):
        steps += [(case, {"type": "apply", "on": d(40), "actor": "handlaggare.ek", "client": {
                      "id": f"p-{case}", "target_group": "young_adults", "district": "Farsta"}}),
                  (case, {"type": "start_assessment", "on": d(39)}),
                  (case, {"type": "decide", "on": d(38), "outcome": "granted",
                          "programme": "training_apartment"})]
    steps += [(training, {"type": "offer", "on": d(37), "apartment": apartment}),
              (training, {"type": "landlord_decision", "on": d(36), "approved": True}),
              (training, {"type": "move_in", "on": d(35), "apartment": apartment})]
    with httpx.Client(base_url=base_url, timeout=120,
                      headers={"Authorization": f"Bearer {admin_token}"}) as http:
        for case, body in steps:
            path = f"/api/cases/{case}/steps" if case else "/api/apartments/steps"
            response = http.post(path, json=body)
            assert response.status_code == 200, response.text
    return KNOWN_CASES


def test_the_fuzzed_document_is_the_one_the_running_api_serves(base_url):
    served = httpx.get(f"{base_url}/openapi.json", timeout=60)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def test_the_api_docs_load_no_asset_from_outside_the_app(tmp_path):
    """/docs is Swagger UI with its script, styles and icon from a package, served by the
    app itself (FastAPI's own page loads them from a CDN): no asset downloaded at run time."""
    import re

    from fastapi.testclient import TestClient

    client = TestClient(create_app(Settings(data=tmp_path)))
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle(" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
    assert len(assets) == 3 and all(a.startswith("/docs/static/") for a in assets), assets
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200 and answer.content, asset
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs/static/index.html").status_code == 404  # the bundle's demo page
    assert client.get("/redoc").status_code == 404


def errors_are_problem_details(ctx, response, case) -> bool | None:
    """Every refusal under /api is RFC 9457 problem details, whatever its status."""
    if response.status_code >= 400:
        media_type = response.headers.get("content-type", [""])[0]
        assert media_type.startswith("application/problem+json"), (
            f"{response.status_code} answered as {media_type!r}: {response.text[:200]}")
        assert response.json()["status"] == response.status_code
    return True


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, phases=[Phase.explicit, Phase.generate], deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_every_request_without_a_server_error_and_as_documented(
        case, base_url, admin_token, known_cases):
    case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"},
                           checks=[not_a_server_error, response_schema_conformance,
                                   errors_are_problem_details])


def test_the_api_docs_show_the_api_in_a_browser_under_their_content_security_policy(tmp_path):
    """Swagger UI runs from the app's own files under a policy that allows no other origin:
    the page lists the API's operations and the browser reports no refused script or style."""
    import threading

    import uvicorn
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, need_chromium
    from tests.stack import free_port

    need_chromium()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(data=tmp_path)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page()
            refused: list[str] = []
            page.on("console", lambda m: refused.append(m.text)
                    if "Content Security Policy" in m.text else None)
            outside: list[str] = []
            page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith(f"http://127.0.0.1:{port}/") else None)
            response = page.goto(f"http://127.0.0.1:{port}/docs")
            assert response is not None
            policy = response.headers["content-security-policy"]
            assert "http" not in policy and "default-src 'self'" in policy
            page.get_by_text("/api/cases/{case}/steps", exact=True).first.wait_for(timeout=30000)
            browser.close()
        assert not refused, refused
        assert not outside, outside
    finally:
        server.should_exit = True
        thread.join(timeout=10)
