"""`GET /api/reports/{name}` passes every option of the report table (application/reporting.py)
as a query parameter: kpis' `year`, homelessness' `as_of` and `by`. In process (FastAPI's
TestClient), on a data directory with a small municipality written through the service."""

from __future__ import annotations

import pytest

from application.reporting import OPTION_NAMES, REPORTS
from application.store import HousingChain
from application.tokens import LocalIssuer
from config.settings import Settings
from tests.test_homelessness import notices, town
from tests.test_reports import POLICY, TODAY


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from fastapi.testclient import TestClient

    from interfaces.api.app import create_app

    data = tmp_path_factory.mktemp("api-data")
    settings = Settings(data=data)
    app = HousingChain(env=settings.event_store_env("events"))
    s = town()
    ordered = [line for _, _, line in sorted(s.steps, key=lambda x: (x[0], x[1]))]
    assert all(r.accepted for r in app.run(ordered, today=TODAY, policy=POLICY))
    notices(app)
    app.close()
    token = LocalIssuer(data).mint("sup", ["supervisor"])
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_every_option_of_the_report_table_is_a_query_parameter_of_the_api(tmp_path):
    """A new option in the table must reach the API, or the API cannot ask for it."""
    from interfaces.api.app import create_app

    spec = create_app(Settings(data=tmp_path)).openapi()["paths"]["/api/reports/{name}"]["get"]
    parameters = {p["name"] for p in spec["parameters"]}
    wanted = {{"date_from": "from", "date_to": "to"}.get(o, o)
              for _, options, _ in REPORTS.values() for o in options}
    assert wanted <= parameters, sorted(wanted - parameters)
    assert set(OPTION_NAMES) >= {o for _, options, _ in REPORTS.values() for o in options}


def test_kpis_takes_the_year_as_a_query_parameter(api):
    answer = api.get("/api/reports/kpis", params={"year": 2026})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["year"] == 2026 and body["definition_version"] == 2
    assert [r["definition"] for r in body["rows"]][0] == "docs/metrics.md, throughput"


def test_kpis_without_a_year_says_it_needs_one(api):
    answer = api.get("/api/reports/kpis")
    assert answer.status_code == 422 and "needs --year" in answer.json()["detail"]


def test_an_option_the_report_does_not_take_is_refused_by_name(api):
    answer = api.get("/api/reports/stock", params={"year": 2026})
    assert answer.status_code == 422
    assert "report stock does not take --year" in answer.json()["detail"]


def test_the_homelessness_count_through_the_api(api):
    answer = api.get("/api/reports/homelessness", params={"as_of": "2026-06-30", "by": "sex"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["totals"] == {"acute": 1, "institution": 1, "long_term": 2,
                                       "at_risk": 1, "persons": 5}
