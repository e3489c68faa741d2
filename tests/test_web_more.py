"""The web's sign-in beyond one process: the local issuer's codes shared through the data
directory, its discovery document, the idle time-out and Secure cookies; and sign-in through
an external OIDC provider (tests/oidc_provider.py) on a real stack."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_web import PASSWORD, client, sign_in  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[1]


def test_a_code_issued_in_one_process_is_redeemed_once_in_another(tmp_path):
    from application.tokens import LocalIssuer
    from interfaces.web.issuer import LocalAuthorization, OAuthError, s256
    from interfaces.web.users import User

    verifier = "v" * 64
    params = {"client_id": "web", "redirect_uri": "http://x/callback",
              "code_challenge": s256(verifier), "nonce": "n1"}
    code = LocalAuthorization(LocalIssuer(tmp_path), "web").grant(
        User("a", ("caseworker",), ("Farsta",)), params)
    assert code not in (tmp_path / "web-codes.sqlite").read_bytes().decode("latin-1")
    form = {"grant_type": "authorization_code", "code": code, "client_id": "web",
            "redirect_uri": "http://x/callback", "code_verifier": verifier}
    script = ("import json, sys; from pathlib import Path; from application.tokens import LocalIssuer; "
              "from interfaces.web.issuer import LocalAuthorization; "
              "a = LocalAuthorization(LocalIssuer(Path(sys.argv[1])), 'web'); "
              "t = a.token(json.loads(sys.argv[2])); "
              "print(a.issuer.verifier().verify(t['access_token']).subject)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), json.dumps(form)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "a"
    with pytest.raises(OAuthError):  # single use, across processes
        LocalAuthorization(LocalIssuer(tmp_path), "web").token(form)


def test_local_discovery_lists_the_authorize_and_token_endpoints(client):  # noqa: F811
    doc = client.get("/.well-known/openid-configuration").json()
    assert doc["authorization_endpoint"] == "http://testserver/oidc/authorize"
    assert doc["token_endpoint"] == "http://testserver/oidc/token"
    assert "S256" in doc["code_challenge_methods_supported"]
    assert "code" in doc["response_types_supported"]


def signed_in(c):
    _, ok = sign_in(c)
    assert ok.status_code == 303
    done = c.get(ok.headers["location"].replace(str(c.base_url), ""))
    assert done.status_code == 200
    return done


def test_idle_time_out_signs_out(client):  # noqa: F811
    web = client.app.state.web
    signed_in(client)
    page = client.get("/apply")
    assert page.status_code == 200
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    now = time.time()
    web.clock = lambda: now + (web.web.idle_minutes - 1) * 60  # within the idle time: still in
    assert client.get("/apply", follow_redirects=False).status_code == 200
    web.clock = lambda: now + (2 * web.web.idle_minutes) * 60 + 5  # idle too long since then
    gone = client.get("/apply", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")
    refused = client.post("/cases/c-1/steps", data={"csrf": csrf, "type": "start_assessment"})
    assert refused.status_code == 403 and "Logga in igen" in refused.text


def test_cookies_are_secure_over_tls(tmp_path):
    from fastapi.testclient import TestClient

    from config.settings import Settings
    from interfaces.api.app import create_app
    from interfaces.web.users import add_user

    add_user(tmp_path, "handlaggare.lind", PASSWORD, ["caseworker"], ["Farsta"])
    app = create_app(Settings(data=tmp_path))
    plain = TestClient(app, base_url="http://testserver").get("/signin", follow_redirects=False)
    assert "secure" not in plain.headers["set-cookie"].lower()
    tls = TestClient(app, base_url="https://testserver")
    done = signed_in(tls)
    cookie = done.headers["set-cookie"]
    assert "hc_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    proxied = TestClient(app, base_url="http://testserver",
                         headers={"X-Forwarded-Proto": "https"})
    flow = proxied.get("/signin", follow_redirects=False).headers["set-cookie"]
    assert "hc_flow=" in flow and "Secure" in flow


@pytest.mark.slow
def test_a_caseworker_signs_in_through_an_external_provider(tmp_path):
    from tests.oidc_provider import OidcProvider
    from tests.stack import Stack

    users = {"handlaggare.lind": {"roles": ["caseworker"], "units": ["Farsta"]}}
    with OidcProvider(tmp_path / "idp", users=users, auto_approve="handlaggare.lind") as idp:
        doc = httpx.get(idp.issuer + "/.well-known/openid-configuration").json()
        assert doc["authorization_endpoint"] == idp.issuer + "/authorize"
        stack = Stack.on_free_ports(tmp_path / "data", {"HOUSING_CHAIN_OIDC_ISSUER": idp.issuer})
        stack.start()
        try:
            base = f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}"
            with httpx.Client(follow_redirects=True, timeout=30) as web:
                page = web.get(base + "/", headers={"Accept-Language": "en"})
                hops = [str(r.url) for r in page.history] + [str(page.url)]
                assert any(h.startswith(idp.issuer + "/authorize") for h in hops), hops
                assert page.status_code == 200, page.text[:2000]
                # signed_in.html hands over to the page asked for
                page = web.get(base + "/", headers={"Accept-Language": "en"})
                assert page.status_code == 200 and str(page.url) == base + "/", page.url
                assert "handlaggare.lind" in page.text and "My worklist" in page.text
                # no local sign-in form on a stack with an external issuer
                assert web.get(base + "/oidc/authorize").status_code == 404
                # the provider redeems a code once: replaying the callback fails
                callback = next(h for h in hops if "/callback?" in h)
                assert web.get(callback).status_code == 400
        finally:
            stack.stop()


def test_the_dashboard_chooses_its_waiting_times_without_javascript(tmp_path):
    from fastapi.testclient import TestClient

    from config.settings import Settings
    from interfaces.api.app import create_app
    from interfaces.web.users import add_user

    add_user(tmp_path, "enhetschef.berg", PASSWORD, ["supervisor"], ["Farsta"])
    c = TestClient(create_app(Settings(data=tmp_path)), base_url="http://testserver")
    _, ok = sign_in(c, user="enhetschef.berg")
    assert ok.status_code == 303
    c.get(ok.headers["location"].replace(str(c.base_url), ""))
    page = c.get("/dashboard")
    assert page.status_code == 200, page.text[:2000]
    assert page.text.count('<svg xmlns="http://www.w3.org/2000/svg"') == 8
    for field in ("w-interval", "w-period", "w-group"):
        assert f'<label for="{field}">' in page.text and f'id="{field}"' in page.text
    assert "<script>" not in page.text
    chosen = c.get("/dashboard?interval=application-to-decision&period=quarter&group=district")
    assert chosen.status_code == 200
    assert ('/reports/waiting-times.csv?interval=application-to-decision&amp;by=district'
            in chosen.text)
    assert c.get("/dashboard?group=landlord").status_code == 422
    link = chosen.text.split('href="/reports/waiting-times.csv?')[1].split('"')[0]
    csv = c.get("/reports/waiting-times.csv?" + link.replace("&amp;", "&"))
    assert csv.status_code == 200
    for path in ("/dashboard/ivo-counts.csv", "/dashboard/course-completion.csv",
                 "/reports/stock.csv?by=landlord", "/reports/throughput.csv?by=quarter"):
        assert c.get(path).status_code == 200, path
    assert c.get("/dashboard/ivo-counts.csv").text.startswith(
        "quarter,unexecuted,change_from_previous_quarter,trend")


def test_the_temporal_ui_decodes_with_the_web_session_of_a_signed_in_supervisor(tmp_path):
    """The embedded Temporal UI cannot send a token: with its "include cross-origin
    credentials" setting it sends this site's cookies, and the codec takes the web session
    from the UI's origin alone, for the roles that may read histories."""
    from fastapi.testclient import TestClient

    from config.settings import Settings
    from interfaces.api.app import create_app, temporal_ui_origins
    from interfaces.web.users import add_user

    settings = Settings(data=tmp_path)
    add_user(tmp_path, "enhetschef.berg", PASSWORD, ["supervisor"], ["Farsta"])
    add_user(tmp_path, "handlaggare.lind", PASSWORD, ["caseworker"], ["Farsta"])
    ui = sorted(temporal_ui_origins(settings))[0]
    plain = {"metadata": {"encoding": "anNvbi9wbGFpbg=="},  # names no case: any supervisor's
             "data": "eyJzdGFnZSI6IndhaXRpbmcifQ=="}

    def session(user: str) -> TestClient:
        c = TestClient(create_app(settings), base_url="http://testserver")
        _, ok = sign_in(c, user=user)
        assert ok.status_code == 303
        assert c.get(ok.headers["location"].replace(str(c.base_url), "")).status_code == 200
        return c

    supervisor = session("enhetschef.berg")
    encoded = supervisor.post("/codec/encode", json={"payloads": [plain]},
                              headers={"Origin": ui, "X-Namespace": "default"})
    assert encoded.status_code == 200, encoded.text
    assert encoded.headers["access-control-allow-origin"] == ui
    assert encoded.headers["access-control-allow-credentials"] == "true"
    [sealed] = encoded.json()["payloads"]
    assert sealed != plain
    decoded = supervisor.post("/codec/decode", json={"payloads": [sealed]},
                              headers={"Origin": ui})
    assert decoded.status_code == 200 and decoded.json()["payloads"] == [plain]

    elsewhere = supervisor.post("/codec/decode", json={"payloads": [sealed]},
                                headers={"Origin": "http://localhost:9999"})
    assert elsewhere.status_code == 403 and "only from the Temporal UI" in elsewhere.text
    no_origin = supervisor.post("/codec/decode", json={"payloads": [sealed]})
    assert no_origin.status_code == 403
    caseworker = session("handlaggare.lind")
    assert caseworker.post("/codec/decode", json={"payloads": [sealed]},
                           headers={"Origin": ui}).status_code == 403
    supervisor.cookies.clear()
    anonymous = supervisor.post("/codec/decode", json={"payloads": [sealed]},
                                headers={"Origin": ui})
    assert anonymous.status_code == 401
    supervisor.cookies.set("hc_session", "forged")
    assert supervisor.post("/codec/decode", json={"payloads": [sealed]},
                           headers={"Origin": ui}).status_code == 401


def test_the_server_computes_todays_worklist_items_as_it_starts(tmp_path):
    """The first worklist of the day does not wait for every case's items (about a second
    at 50,000 cases): the app's lifespan computes them when it starts."""
    from fastapi.testclient import TestClient

    from config.settings import Settings
    from interfaces.api.app import create_app

    app = create_app(Settings(data=tmp_path))
    kept = app.state.use_cases._worklists
    assert kept.day is None
    with TestClient(app):
        deadline = time.monotonic() + 30
        while kept.day is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kept.day == app.state.use_cases.today()


def test_a_report_for_a_district_or_programme_nobody_knows_names_the_pages_field(tmp_path):
    """The report layer names the CLI's `--district`; the page names its own field."""
    from fastapi.testclient import TestClient

    from config.settings import Settings
    from interfaces.api.app import create_app
    from interfaces.web.users import add_user

    add_user(tmp_path, "enhetschef.berg", PASSWORD, ["supervisor"], ["Farsta"])
    c = TestClient(create_app(Settings(data=tmp_path)), base_url="http://testserver")
    _, ok = sign_in(c, user="enhetschef.berg")
    c.get(ok.headers["location"].replace(str(c.base_url), ""))
    for query, detail in (("district=Nowhere", "district: &#39;Nowhere&#39; is not a district; "
                                               "known: Farsta"),
                          ("programme=hf", "programme: &#39;hf&#39; is not a programme; known: "),
                          ("target_group=kids", "target_group: &#39;kids&#39; is not a target "
                                                "group; known: ")):
        page = c.get(f"/reports/waiting-times.csv?{query}")
        assert page.status_code == 422 and detail in page.text, (query, page.text[-2000:])
        assert "--" + query.split("=")[0].replace("_", "-") not in page.text  # the CLI's name
    assert c.get("/reports/waiting-times.csv?district=Farsta").status_code == 200  # no case yet
