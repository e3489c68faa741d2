"""The web pages: sign-in (authorization code + PKCE against the local issuer), CSRF, the
languages' catalogues, security headers; and, with Debian's Chromium, a caseworker and a
housing pilot through a real embedded stack, with axe-core on every page."""

from __future__ import annotations

import ast
import html
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, need_chromium

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "interfaces" / "web"
ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "ett-långt-lösenord"


# --- without a browser ----------------------------------------------------------------------

def test_web_imports_only_application_domain_and_config():
    allowed = ("application", "domain", "config", "interfaces.web")
    for path in WEB.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                first = name.split(".")[0]
                if first in ("domain", "application", "config", "interfaces", "projections",
                             "activities", "runtime", "workflows", "eventsourcing"):
                    assert name.startswith(allowed), f"{path.name} imports {name}"


def test_every_message_is_translated_in_sv_and_nb_and_the_committed_catalogues_are_current(
        tmp_path):
    """Built into a scratch directory (the committed files are not touched): no message id
    lacks a translation, and the committed .mo files hold exactly what a build gives."""
    from babel.messages.mofile import read_mo

    from interfaces.web.catalogues import LOCALE, build, table

    def messages(root, lang):
        with (root / lang / "LC_MESSAGES" / "messages.mo").open("rb") as f:
            return {m.id: m.string for m in read_mo(f) if m.id}

    assert build(tmp_path) == []
    for lang in ("sv", "nb", "en"):
        assert messages(LOCALE, lang) == messages(tmp_path, lang), \
            f"{lang}: run python -m interfaces.web.catalogues"
    # and a message without its translation is found
    rows = table()
    rows.pop("Queue")
    assert build(tmp_path / "less", rows) == ["sv: Queue", "nb: Queue"]


@pytest.fixture()
def client(tmp_path):
    from fastapi.testclient import TestClient

    from config.settings import Settings
    from interfaces.api.app import create_app
    from interfaces.web.users import add_user

    settings = Settings(data=tmp_path)
    add_user(tmp_path, "handlaggare.lind", PASSWORD, ["caseworker"], ["Farsta"])
    return TestClient(create_app(settings), base_url="http://testserver")


def sign_in(c, user="handlaggare.lind", password=PASSWORD):
    r = c.get("/signin?next=/apply", follow_redirects=False)
    assert r.status_code == 303
    page = c.get(r.headers["location"].replace("http://testserver", ""))
    hidden = {k: html.unescape(v) for k, v in
              re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)}
    assert hidden["code_challenge_method"] == "S256" and hidden["state"] and hidden["nonce"]
    return hidden, c.post("/oidc/authorize", data={**hidden, "username": user,
                                                    "password": password},
                          follow_redirects=False)


def test_code_flow_with_pkce_csrf_and_single_use_codes(client):
    c = client
    assert c.get("/", follow_redirects=False).headers["location"].startswith("/signin")
    hidden, bad = sign_in(c, password="wrong-password")
    assert bad.status_code == 401 and "Fel användar-id eller lösenord" in bad.text
    no_csrf = c.post("/oidc/authorize", data={**{k: v for k, v in hidden.items() if k != "csrf"},
                                               "username": "handlaggare.lind", "password": PASSWORD})
    assert no_csrf.status_code == 403
    hidden, ok = sign_in(c)
    assert ok.status_code == 303
    callback = ok.headers["location"].replace("http://testserver", "")
    done = c.get(callback)
    assert done.status_code == 200
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert c.get(callback).status_code == 400  # the code is single-use
    page = c.get("/apply")
    assert page.status_code == 200 and "handlaggare.lind" in page.text
    for header in ("content-security-policy", "x-content-type-options"):
        assert header in page.headers
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    # no inline script and no inline event handler (the CSP would block them)
    assert "<script>" not in page.text and re.search(r"<[^>]+\son[a-z]+=", page.text) is None
    # a step form posted without its CSRF token: refused, nothing done
    refused = c.post("/cases/c-1/steps", data={"type": "start_assessment"})
    assert refused.status_code == 403 and "säkerhetstoken" in refused.text
    # the token endpoint: a wrong verifier is refused
    token = c.post("/oidc/token", data={"grant_type": "authorization_code", "code": "nope",
                                        "code_verifier": "x" * 50, "client_id": "housing-chain-web",
                                        "redirect_uri": "http://testserver/callback"})
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant"
    out = c.post("/signout", data={"csrf": re.search(r'name="csrf" value="([^"]+)"',
                                                     page.text).group(1)})
    assert out.status_code == 200
    assert c.get("/apply", follow_redirects=False).status_code == 303


def test_token_endpoint_checks_the_pkce_verifier(tmp_path):
    from application.tokens import LocalIssuer
    from interfaces.web.issuer import LocalAuthorization, OAuthError, s256
    from interfaces.web.users import User

    auth = LocalAuthorization(LocalIssuer(tmp_path), "web")
    verifier = "v" * 64
    params = {"client_id": "web", "redirect_uri": "http://x/callback",
              "code_challenge": s256(verifier), "nonce": "n1"}
    code = auth.grant(User("a", ("caseworker",), ("Farsta",)), params)
    form = {"grant_type": "authorization_code", "code": code, "client_id": "web",
            "redirect_uri": "http://x/callback", "code_verifier": "w" * 64}
    with pytest.raises(OAuthError):
        auth.token(form)
    with pytest.raises(OAuthError):  # used up by the failed attempt
        auth.token({**form, "code_verifier": verifier})
    code = auth.grant(User("a", ("caseworker",), ("Farsta",)), params)
    answer = auth.token({**form, "code": code, "code_verifier": verifier})
    claims = auth.issuer.verifier().verify(answer["id_token"]).claims
    assert claims["nonce"] == "n1" and claims["roles"] == ["caseworker"]


def test_languages_and_locale_formats():
    from interfaces.web.i18n import fmt_date, fmt_datetime, fmt_number, negotiate

    assert negotiate(None, None) == "sv"
    assert negotiate(None, "nb-NO,nb;q=0.9,en;q=0.5") == "nb"
    assert negotiate(None, "no") == "nb"
    assert negotiate("en", "sv") == "en"
    assert fmt_date("2026-12-01", "sv") == "2026-12-01"
    assert fmt_number(1234.5, "sv").replace("\u00a0", " ") == "1 234,5"
    # a recorded time (stored in UTC) in the municipality's time zone: 10:30 in Stockholm
    assert fmt_datetime("2026-12-01T09:30:00+00:00", "sv", "Europe/Stockholm") == "2026-12-01 10:30"
    assert fmt_datetime("2026-07-01T09:30:00+00:00", "sv", "Europe/Stockholm") == "2026-07-01 11:30"


def signed_in_client(settings, user="handlaggare.lind", headers=None):
    """A new browser (no cookies), signed in as `user`."""
    from fastapi.testclient import TestClient

    from interfaces.api.app import create_app

    c = TestClient(create_app(settings), base_url="http://testserver", headers=headers or {})
    _, ok = sign_in(c, user)
    assert c.get(ok.headers["location"].replace("http://testserver", "")).status_code == 200
    return c


def test_a_language_chosen_when_signed_in_follows_the_person_to_another_browser(tmp_path):
    from config.settings import Settings
    from interfaces.web.users import add_user

    settings = Settings(data=tmp_path)
    add_user(tmp_path, "handlaggare.lind", PASSWORD, ["caseworker"], ["Farsta"])
    add_user(tmp_path, "bolots.ahmed", PASSWORD, ["housing_pilot"], ["Farsta"])
    first = signed_in_client(settings)
    page = first.get("/apply")
    assert page.headers["content-language"] == "sv"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert first.post("/language", data={"csrf": csrf, "lang": "nb", "next": "/apply"},
                      follow_redirects=False).status_code == 303
    assert first.get("/apply").headers["content-language"] == "nb"
    # another browser that asks for English: the person's own choice wins once signed in
    other = signed_in_client(settings, headers={"accept-language": "en"})
    page = other.get("/apply")
    assert page.headers["content-language"] == "nb" and "Ny søknad" in page.text
    # a colleague in that browser who chose nothing gets what the browser asks for
    colleague = signed_in_client(settings, "bolots.ahmed", headers={"accept-language": "en"})
    assert colleague.get("/").headers["content-language"] == "en"


# --- with Chromium and a real stack ---------------------------------------------------------

def wait_js(page, expression: str, timeout: float = 20.0) -> None:
    """Poll an expression (wait_for_function would need 'unsafe-eval', which the CSP refuses)."""
    import time

    end = time.monotonic() + timeout
    while not page.evaluate(f"() => !!({expression})"):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.1)


def untranslated(text: str, lang: str) -> list[str]:
    """English message ids that appear untranslated on a page in sv or nb."""
    from babel.messages.pofile import read_po

    with (ROOT / "application" / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    found = []
    for m in catalog:
        if not m.id or m.string == m.id or "%(" in m.id or len(m.id) < 12 or " " not in m.id:
            continue
        if m.id in text:
            found.append(m.id)
    return found


@pytest.mark.slow
def test_caseworker_and_pilot_in_the_browser(tmp_path):
    need_chromium()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    from tests.stack import Stack

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stack = Stack.on_free_ports(tmp_path / "data")
    for name, roles, unit in (("handlaggare.lind", ["caseworker"], "Farsta"),
                              ("bolots.ahmed", ["housing_pilot"], None),
                              ("enhetschef.berg", ["supervisor"], "Farsta")):
        args = ["user", "add", name, *[a for r in roles for a in ("--role", r)],
                *(["--unit", unit] if unit else []), "--password-stdin"]
        from subprocess import run

        from tests.stack import CLI
        done = run([*CLI, *args], env=stack.env, input=PASSWORD + "\n", text=True,
                   capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
    stack.start()
    base = f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}"
    axe = Axe()
    problems: list[str] = []
    today = date.today()
    try:
        assert stack.run("register-apartment", "SH-1042", "--landlord", "Stockholmshem",
                         "--rooms", "2").returncode == 0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)

            def check(page, name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                result = axe.run(page, options={"runOnly": {"type": "tag", "values": [
                    "wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
                if result.violations_count:
                    problems.append(f"{name}: {result.generate_report()}")
                lang = page.evaluate("document.documentElement.lang")
                if lang in ("sv", "nb"):
                    text = page.inner_text("body")
                    missing = untranslated(text, lang)
                    if missing:
                        problems.append(f"{name} ({lang}) untranslated: {missing}")

            def choose_language(page, lang: str) -> None:
                page.select_option("#lang-select", lang)
                page.click("header form.inline button[type=submit] >> nth=0")
                page.wait_for_load_state()

            def caseload_rows(page) -> dict[str, list[str]]:
                rows = page.locator("table:has(caption:text-is('Ärenden per boendestödjare'))"
                                    " tbody tr").all_inner_texts()
                return {r.split("\t")[0]: r.split("\t")[1:] for r in rows}

            def login(user: str):
                ctx = browser.new_context(locale="sv-SE", extra_http_headers={
                    "Accept-Language": "sv-SE,sv;q=0.9"})
                page = ctx.new_page()
                page.goto(base + "/")
                page.fill("#username", user)
                page.fill("#password", PASSWORD)
                check(page, f"login-{user}")
                page.click("button[type=submit].primary")
                page.wait_for_url(base + "/")
                return ctx, page

            ctx, page = login("handlaggare.lind")
            check(page, "worklist-empty")
            page.goto(base + "/apply")
            check(page, "apply")
            page.fill("#case", "c-17")
            page.fill("#client", "kl-7f3a")
            page.select_option("#target_group", "substance_abuse")
            page.fill("#name", "Anna Andersson")
            page.fill("#personal_number", "19811218-9876")
            page.fill("#on", (today - timedelta(days=120)).isoformat())
            page.click("text=Registrera ansökan >> nth=-1")
            page.wait_for_url("**/cases/c-17?done=apply")
            assert "Registrerad ansökan" in page.inner_text("#case-main")
            assert "Anna" not in page.content()
            check(page, "case-applied")

            def step(kind: str, fill: dict[str, str] | None = None, on: str | None = None):
                form = page.locator(f"#step-{kind}")
                for field, value in (fill or {}).items():
                    el = form.locator(f"[name={field}]")
                    if el.evaluate("e => e.tagName") == "SELECT":
                        el.select_option(value)
                    else:
                        el.fill(value)
                if on:
                    form.locator("[name=on]").fill(on)
                page.evaluate("document.getElementById('case-main').dataset.old = '1'")
                form.locator("button[type=submit]").click()
                wait_js(page, "document.getElementById('case-main') && "
                              "!document.getElementById('case-main').dataset.old && "
                              "document.activeElement.hasAttribute('data-announce')")

            step("start_assessment", on=(today - timedelta(days=115)).isoformat())
            assert "Under utredning" in page.inner_text(".stage")
            step("decide", {"outcome": "granted", "programme": "training_apartment"},
                 on=(today - timedelta(days=110)).isoformat())
            assert "Väntar på lägenhet" in page.inner_text(".stage")
            # focus moved to the announced result, and the live region says it
            assert page.evaluate("document.activeElement.hasAttribute('data-announce')")
            wait_js(page, "document.getElementById('announcer').textContent.length > 0")
            # a refused step: the domain's message next to the form
            step("offer", {"apartment": "NO-SUCH-1"})
            refusal = page.inner_text("#refusal-offer")
            assert "lägenhet NO-SUCH-1 finns inte i lägenhetsbanken" in refusal, refusal
            assert page.get_attribute("#refusal-offer span", "lang") == "sv"
            check(page, "case-refused")
            page.goto(base + "/")
            assert "Tremånadersgräns" in page.inner_text("main")
            check(page, "worklist-deadline")
            page.goto(base + "/cases/c-17")
            step("offer", {"apartment": "SH-1042"})
            step("landlord_decision", {"approved": "true"})
            step("move_in", {"apartment": "SH-1042",
                              "lease_end": (today + timedelta(days=300)).isoformat()})
            assert "Träningsfas" in page.inner_text(".stage")
            # the case file's facts next to the stage: here the time-limited lease
            assert "Tidsbegränsat kontrakt till" in page.inner_text(".facts")
            page.click("text=Visa namn och personnummer (loggas)")
            assert "Anna Andersson" in page.inner_text(".identity")
            check(page, "case-identity")
            for path, name in (("/queue", "queue"), ("/apartments", "apartments"),
                               ("/notices", "notices"), ("/accessibility", "accessibility")):
                page.goto(base + path)
                check(page, name)
            # the apartments page lists each apartment and who lives there
            page.goto(base + "/apartments")
            row = page.inner_text("#apt-SH-1042")
            assert "c-17" in row and "Stockholmshem" in row and "bebodd" in row, row
            # the notices page: register a notice, its clock is listed, a step by its form
            page.goto(base + "/notices")
            page.fill("#n-notice", "n-1")
            page.fill("#n-client", "kl-9b2c")
            page.click("#reg-notice-h + form button[type=submit]")
            page.wait_for_url("**/notices?done=register")
            row = page.inner_text("#notice-n-1")
            assert "Farsta" in row and "nå hyresgästen" in row, row
            hours = float(page.inner_text("#notice-n-1 td.num").replace(",", ".")
                          .replace("\u00a0", "").replace(" ", ""))
            assert 0 < hours <= 24 * 5, hours
            check(page, "notices-open")
            page.click("#steps-n-1 summary")
            form = page.locator("#notice-n-1-contact_attempt")
            form.locator("[name=reached]").select_option("false")
            form.locator("button[type=submit]").click()
            page.wait_for_url("**/notices?done=contact_attempt*")
            assert "Steget är registrerat" in page.inner_text("main")
            form = page.locator("#notice-n-1-outcome")
            page.click("#steps-n-1 summary")
            form.locator("[name=outcome]").select_option("eviction_averted")
            form.locator("button[type=submit]").click()
            page.wait_for_url("**/notices?done=outcome*")
            assert page.locator("#notice-n-1").count() == 0  # closed: no longer open
            # JavaScript off: a form still works
            nojs = browser.new_context(java_script_enabled=False, storage_state=ctx.storage_state())
            p2 = nojs.new_page()
            p2.goto(base + "/cases/c-17")
            p2.locator("#step-course_session [name=session]").fill("1")
            p2.locator("#step-course_session button[type=submit]").click()
            p2.wait_for_url("**done=course_session")
            nojs.close()
            # the same pages in English and bokmål
            for lang in ("en", "nb"):
                choose_language(page, lang)
                for path in ("/", "/cases/c-17", "/apply", "/queue", "/apartments", "/notices",
                             "/accessibility"):
                    page.goto(base + path)
                    check(page, f"{lang}{path.replace('/', '-') or '-start'}")
            choose_language(page, "sv")
            ctx.close()

            # the supervisor's dashboard before the pilot's visit: no row of theirs yet
            sup_ctx, sup = login("enhetschef.berg")
            sup.goto(base + "/dashboard")
            assert "bolots.ahmed" not in caseload_rows(sup)

            # a pilot: the unassigned case is forbidden, then assigned and visited
            ctx, page = login("bolots.ahmed")
            page.goto(base + "/cases/c-17")
            assert "Åtkomst nekad" in page.inner_text("h1")
            check(page, "forbidden")
            assert stack.run("assign", "c-17", "--role", "housing_pilot", "--to",
                             "bolots.ahmed").returncode == 0
            page.goto(base + "/cases/c-17")
            before = page.locator(".timeline tbody tr").count()
            # the visit form by keyboard only: Tab, Shift+Tab, Enter, Space; no mouse
            def focused() -> dict:
                return page.evaluate("""() => { const e = document.activeElement;
                    const s = getComputedStyle(e);
                    return {id: e.id, tag: e.tagName, form: e.form ? e.form.id : null,
                            visible: e.matches(':focus-within') && s.outlineStyle !== 'none'
                                     && parseFloat(s.outlineWidth) >= 2}; }""")

            def tab_to(test, key="Tab", limit=200) -> dict:
                for _ in range(limit):
                    page.keyboard.press(key)
                    f = focused()
                    if f["tag"] != "BODY":
                        assert f["visible"], f"focus not visible on {f}"
                    if test(f):
                        return f
                raise AssertionError("never reached by the keyboard")

            tab_to(lambda f: f["id"] == "record_visit-kind")
            tab_to(lambda f: f["id"] != "record_visit-kind", "Shift+Tab")
            tab_to(lambda f: f["id"] == "record_visit-kind")
            tab_to(lambda f: f["id"] == "record_visit-rent_paid")
            page.keyboard.press("Shift+Tab")
            assert focused()["id"] == "record_visit-kind"
            tab_to(lambda f: f["tag"] == "BUTTON" and f["form"] == "step-record_visit")
            page.evaluate("document.getElementById('case-main').dataset.old = '1'")
            page.keyboard.press("Enter")
            wait_js(page, "document.getElementById('case-main') && "
                          "!document.getElementById('case-main').dataset.old && "
                          "document.activeElement.hasAttribute('data-announce')")
            assert page.locator(".timeline tbody tr").count() == before + 1
            assert "Besök registrerat" in page.inner_text(".timeline")
            check(page, "case-visit")
            # ... and after it: the pilot's caseload, their tenancy visited, none overdue
            sup.reload()
            assert caseload_rows(sup)["bolots.ahmed"] == ["1", "0"], caseload_rows(sup)
            sup_ctx.close()
            # a stale CSRF token on a partial update: the refusal page's message replaces
            # the form, focused (htmx leaves a 4xx answer unswapped by itself)
            page.evaluate("document.querySelector('#step-record_visit [name=csrf]').value = 'stale'")
            page.locator("#step-record_visit button[type=submit]").click()
            wait_js(page, "document.querySelector('#main h1') && document.querySelector('#main h1')"
                          ".textContent.includes('Åtkomst nekad') && "
                          "document.activeElement === document.querySelector('#main h1')")
            assert page.locator("#step-record_visit").count() == 0
            check(page, "csrf-refused-partial")
            page.goto(page.url)
            # a form without its CSRF token is refused
            page.evaluate("document.querySelector('#step-record_visit [name=csrf]').remove()")
            page.locator("#step-record_visit").evaluate("f => f.removeAttribute('hx-post')")
            page.evaluate("htmx.remove && document.querySelector('#step-record_visit')"
                          ".setAttribute('hx-disable', '')")
            with page.expect_navigation():  # the refusal page, not the case page still shown
                page.locator("#step-record_visit").evaluate("f => f.submit()")
            page.wait_for_load_state()
            assert "Åtkomst nekad" in page.inner_text("h1")
            ctx.close()

            ctx, page = login("enhetschef.berg")
            page.goto(base + "/dashboard")
            assert page.locator("svg.chart").count() == 8
            check(page, "dashboard")
            for path, name in (("/ivo", "ivo"), ("/cases/c-17/access-log", "access-log"),
                               ("/audit-review", "audit-review"), ("/cases/c-17", "case-supervisor")):
                page.goto(base + path)
                check(page, name)
            csv = ctx.request.get(base + "/reports/waiting-times.csv?interval=decision-to-move-in&by=year")
            assert csv.ok and csv.text().startswith("group,")
            for lang in ("en", "nb"):
                choose_language(page, lang)
                for path in ("/dashboard", "/ivo", "/cases/c-17/access-log", "/audit-review"):
                    page.goto(base + path)
                    check(page, f"{lang}{path.replace('/', '-')}")
            choose_language(page, "sv")
            page.click("text=Logga ut")
            page.wait_for_load_state()
            check(page, "signed-out")
            ctx.close()
            browser.close()
    finally:
        stack.stop()
    assert not problems, "\n".join(problems)
