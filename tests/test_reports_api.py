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
    assert answer.status_code == 422
    assert answer.json()["detail"] == "report kpis needs `year`, e.g. `year=2026`"


def test_an_option_the_report_does_not_take_is_refused_by_name(api):
    answer = api.get("/api/reports/stock", params={"year": 2026, "from": "2026-01-01"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == ("report stock does not take `from`, `year` (it takes "
                                       "`as_of`, `by`)")


def test_a_report_error_through_the_api_names_the_query_parameter_not_the_cli_option(api):
    """The report layer's messages name the CLI's options (`--by`); an API client sent `by`
    and reads `by` (interfaces/api/options.py), while the CLI goes on saying `--by`."""
    answer = api.get("/api/reports/queue", params={"by": "nonsense"})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith("`by` must be target-group or district"), detail
    assert "--" not in detail
    as_of = api.get("/api/reports/ivo", params={"as_of": "2026-06-30"}).json()["detail"]
    assert "does not take `as_of` (it takes `quarter`)" in as_of


async def test_the_cli_through_the_api_still_names_its_options(api):
    """`HOUSING_CHAIN_API_URL` set: the CLI turns the API's parameter names back into its
    options, so the same mistake reads the same at the terminal either way."""
    import httpx

    from application.errors import BadInput
    from application.reporting import ReportOptions
    from interfaces.cli.backend import Remote

    remote = Remote(Settings(api_url="http://api", api_token="unused"))
    remote.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app),
                                    base_url="http://api", headers=dict(api.headers))
    with pytest.raises(BadInput) as refused:
        await remote.report("queue", ReportOptions(by="nonsense"), None, 30.0)
    assert str(refused.value).startswith("--by must be target-group or district")
    with pytest.raises(BadInput) as refused:
        await remote.report("kpis", ReportOptions(), None, 30.0)
    assert str(refused.value) == "report kpis needs --year, e.g. --year 2026"
    await remote.http.aclose()


def test_the_homelessness_count_through_the_api(api):
    answer = api.get("/api/reports/homelessness", params={"as_of": "2026-06-30", "by": "sex"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["totals"] == {"acute": 1, "institution": 1, "long_term": 2,
                                       "at_risk": 1, "persons": 5}


def test_a_report_asked_for_a_year_or_day_past_the_calendar_is_a_422_naming_it_not_a_500():
    """kpis for the year 9999, the throughput from 9999-12-31: the periods' arithmetic would
    run past Python's last date; the option is refused naming it, by the CLI and the API."""
    from application.errors import BadInput
    from application.reporting import report_options
    from interfaces.api.options import query_wording

    for fields, named in (({"year": 9999}, "--year"), ({"year": -1}, "--year"),
                          ({"date_from": "9999-12-31"}, "--from"),
                          ({"date_to": "0001-02-01"}, "--to"), ({"as_of": "2026-13-01"}, "--as-of")):
        with pytest.raises(BadInput) as refused:
            report_options(**fields)
        assert str(refused.value).startswith(f"{named}: "), refused.value
        query = {"--from": "from", "--to": "to", "--as-of": "as_of"}.get(named, named[2:])
        assert query_wording(str(refused.value)).startswith(f"{query}: ")  # the API's name
    assert report_options(year=2026, date_from="2026-01-01").year == 2026


def test_a_district_programme_or_target_group_nobody_knows_is_a_422_naming_the_parameter(api):
    """Not an empty report: the parameter by its name, and the values it can have."""
    refused = {query: api.get("/api/reports/waiting-times", params={query: "Nowhere"})
               for query in ("district", "programme", "target_group")}
    assert {r.status_code for r in refused.values()} == {422}
    assert refused["district"].json()["detail"] == ("district: 'Nowhere' is not a district; "
                                                    "known: Farsta, Spånga")
    assert refused["programme"].json()["detail"] == (
        "programme: 'Nowhere' is not a programme; known: training_apartment, housing_first, "
        "municipal_contract")
    assert refused["target_group"].json()["detail"].startswith(
        "target_group: 'Nowhere' is not a target group; known: substance_abuse, ")
    assert api.get("/api/reports/waiting-times", params={"district": "Farsta"}).status_code == 200


def test_a_district_of_the_readers_units_with_no_case_yet_is_asked_about_without_error(api):
    token = LocalIssuer(api.app.state.use_cases.settings.data).mint(
        "sup.skarholmen", ["supervisor"], ["Skärholmen"])
    answer = api.get("/api/reports/waiting-times", params={"district": "Skärholmen"},
                     headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == []


def test_a_period_that_ends_before_it_starts_or_a_day_to_come_is_a_422_naming_the_parameter(api):
    """Answered, `from` after `to` reads as "nothing happened" and an `as_of` to come counts
    days waited that nobody has waited yet."""
    backwards = api.get("/api/reports/throughput", params={"from": "2026-12-01",
                                                            "to": "2026-01-01"})
    assert backwards.status_code == 422
    assert backwards.json()["detail"].startswith("from: 2026-12-01 is after `to` (2026-01-01)")
    ahead = api.get("/api/reports/queue", params={"as_of": "2099-01-01"})
    assert ahead.status_code == 422
    assert ahead.json()["detail"].startswith("as_of: 2099-01-01 is after today")
    assert api.get("/api/reports/throughput", params={"from": "2026-01-01",
                                                       "to": "2026-01-01"}).status_code == 200
