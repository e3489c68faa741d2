"""Pages read from the read models, through the real app in process (no Temporal needed):
the queue with its three-month limits and groups, and a housing pilot kept out of a case
that is not theirs (a 403 page, and the refusal in the access log)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from application.store import HousingChain
from config.settings import Settings
from tests.test_web import PASSWORD, sign_in
from tests.test_worklist import granted, housed, recorder


@pytest.fixture()
def site(tmp_path):
    from fastapi.testclient import TestClient

    from interfaces.api.app import create_app
    from interfaces.web.users import add_user

    settings = Settings(data=tmp_path)
    app = HousingChain(env=settings.event_store_env("events"))
    lines = [*granted("q-1", "2026-06-01", "2026-06-10"), *granted("q-2", "2026-10-01", "2026-10-20"),
             *granted("q-3", "2026-05-01", "2026-05-05")]
    lines[6] = {**lines[6], "client": {**lines[6]["client"], "district": "Norrmalm"}}
    lines.append({"type": "register_apartment", "apartment": "SH-7", "landlord": "Stockholmshem",
                  "rooms": 2, "on": "2026-06-01"})
    recorder(app, "p")(*lines)
    app.close()
    add_user(tmp_path, "enhetschef.berg", PASSWORD, ["supervisor"], ["Farsta", "Norrmalm"])
    add_user(tmp_path, "bolots.ahmed", PASSWORD, ["housing_pilot"], ["Farsta"])
    add_user(tmp_path, "enhetschef.norrmalm", PASSWORD, ["supervisor"], ["Norrmalm"])

    def signed_in(user: str) -> TestClient:
        c = TestClient(create_app(settings), base_url="http://testserver")
        _, ok = sign_in(c, user)
        assert c.get(ok.headers["location"].replace("http://testserver", "")).status_code == 200
        return c
    return signed_in


def cells(page: str, caption: str) -> list[list[str]]:
    table = re.search(rf"<caption>{re.escape(caption)}</caption>(.*?)</table>", page, re.S)
    assert table, caption
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S)][1:]


def test_the_queue_shows_each_decisions_three_month_limit_and_groups_by_district(site):
    c = site("enhetschef.berg")
    page = c.get("/queue", params={"as_of": "2026-11-01", "by": "district"})
    assert page.status_code == 200, page.text
    rows = cells(page.text, "Kö")
    # longest wait first: q-3 (05-05, limit 08-05), q-1 (06-10, limit 09-10), q-2 (10-20)
    assert [(r[0], r[6], r[7]) for r in rows] == [
        ("q-3", "2026-08-05", "180"), ("q-1", "2026-09-10", "144"), ("q-2", "2027-01-20", "12")]
    assert "Tremånadersgräns" in page.text
    assert "2 av dem har väntat längre än tre månader" in page.text
    groups = cells(page.text, "Väntedagar per stadsdel")
    assert [g[:2] for g in groups] == [["Farsta", "2"], ["Norrmalm", "1"]]
    assert c.get("/queue", params={"by": "month"}).status_code == 422


def test_a_supervisor_of_one_unit_sees_the_queue_of_that_unit_and_is_told_so(site):
    c = site("enhetschef.norrmalm")
    page = c.get("/queue", params={"as_of": "2026-11-01", "by": "district"})
    assert page.status_code == 200, page.text
    assert [r[0] for r in cells(page.text, "Kö")] == ["q-3"]
    assert "Beviljade som väntar på lägenhet den 2026-11-01: 1." in page.text
    assert "1 av dem har väntat längre än tre månader" in page.text
    assert "Ärendena i dina enheter (Norrmalm) och de som är tilldelade dig." in page.text
    assert [g[:2] for g in cells(page.text, "Väntedagar per stadsdel")] == [["Norrmalm", "1"]]
    csv = c.get("/reports/queue.csv", params={"as_of": "2026-11-01"}).text
    assert "q-3" in csv and "q-1" not in csv and "q-2" not in csv


def test_a_pilot_cannot_open_a_case_that_is_not_theirs_and_the_refusal_is_logged(site):
    pilot = site("bolots.ahmed")
    page = pilot.get("/cases/q-1")
    assert page.status_code == 403 and "Åtkomst nekad" in page.text
    assert "kl-q-1" not in page.text  # nothing of the case is shown
    supervisor = site("enhetschef.berg")
    log = supervisor.get("/cases/q-1/access-log")
    assert log.status_code == 200
    denied = [r for r in cells(log.text, re.search(r"<caption>([^<]*)</caption>", log.text)
                               .group(1)) if "bolots.ahmed" in r]
    assert denied and all(r[2:] == ["läste ärendet", "q-1", "ingen", "nekad"] for r in denied), denied


def test_the_application_form_is_for_those_who_may_register_one(site):
    assert site("bolots.ahmed").get("/apply").status_code == 403
    assert site("enhetschef.berg").get("/apply").status_code == 403


def test_the_accessibility_statement_says_how_compliant_the_service_is_and_whom_to_tell(
        tmp_path, monkeypatch):
    """What the DOS Act's statement holds (Digg's model): the compliance status, the known
    shortcomings, the contact for reporting a problem, the supervising agency, the review
    date; readable without signing in."""
    from fastapi.testclient import TestClient

    from interfaces.api.app import create_app

    monkeypatch.setenv("HOUSING_CHAIN_WEB_ACCESSIBILITY_CONTACT", "tillganglighet@kommunen.se")
    monkeypatch.setenv("HOUSING_CHAIN_WEB_ACCESSIBILITY_REVIEWED", "2026-11-30")
    page = TestClient(create_app(Settings(data=tmp_path))).get("/accessibility")
    assert page.status_code == 200
    text = re.sub(r"<[^>]+>", " ", page.text)
    for part in ("delvis förenlig med lagen", "Kända brister", "tillganglighet@kommunen.se",
                 "Myndigheten för digital förvaltning (Digg)", "granskades senast 2026-11-30"):
        assert part in text, part


def test_no_page_asks_the_browser_for_anything_from_another_server(site):
    """htmx, the styles and the charts come from the app itself (the charts are SVG drawn on
    the server): every src and href is a path of this site, and the CSP says so too."""
    c = site("enhetschef.berg")
    assets = set()
    for path in ("/", "/queue", "/dashboard", "/ivo", "/apartments", "/notices",
                 "/audit-review", "/accessibility"):
        page = c.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'self'" in csp, csp
        for url in re.findall(r'(?:src|href|action)="([^"]*)"', page.text):
            assert url.startswith(("/", "#", "?")) or url == "", (path, url)
            if url.startswith("/static/"):
                assets.add(url.split("?")[0])
    assert {"/static/htmx.min.js", "/static/app.js", "/static/app.css"} <= assets
    for asset in assets:
        served = c.get(asset)
        assert served.status_code == 200 and len(served.content) > 100, asset
    assert b"htmx" in c.get("/static/htmx.min.js").content


def test_the_apartments_page_shows_how_long_each_apartment_has_stood_empty(site):
    from application.use_cases import UseCases

    today = UseCases(Settings()).today()
    c = site("enhetschef.berg")
    page = c.get("/apartments")
    assert page.status_code == 200, page.text
    [row] = cells(page.text, "Lägenheter och vem som bor där")
    days = f"{(today - date(2026, 6, 1)).days:,}".replace(",", "\N{NO-BREAK SPACE}")
    assert row[:7] == ["SH-7", "Stockholmshem", "2", "ledig", "2026-06-01", days, days], row


def test_a_landlord_sees_their_apartments_on_the_page_without_the_tenants_case_or_client(
        tmp_path):
    """h-1 (client kl-h-1) lives in Stockholmshem's SH-9: its landlord's page shows the
    apartment occupied and nobody's case."""
    from fastapi.testclient import TestClient

    from interfaces.api.app import create_app
    from interfaces.web.users import add_user

    settings = Settings(data=tmp_path)
    app = HousingChain(env=settings.event_store_env("events"))
    lines = [*granted("h-1", "2026-06-01", "2026-06-10"), *housed("h-1", "SH-9", "2026-07-01")]
    lines[3] = {**lines[3], "landlord": "Stockholmshem"}
    recorder(app, "h")(*lines)
    app.close()
    add_user(tmp_path, "uthyrning.sh", PASSWORD, ["landlord"], ["Stockholmshem"])
    c = TestClient(create_app(settings), base_url="http://testserver")
    _, ok = sign_in(c, "uthyrning.sh")
    c.get(ok.headers["location"].replace("http://testserver", ""))
    page = c.get("/apartments")
    assert page.status_code == 200, page.text
    [row] = cells(page.text, "Lägenheter och vem som bor där")
    assert row[:4] == ["SH-9", "Stockholmshem", "1", "bebodd"] and row[-1] == "–", row
    assert "h-1" not in page.text, "the case or its client is on the page"
