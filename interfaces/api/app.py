"""The HTTP API: each endpoint parses its request, calls one use case with the signed-in
person, and renders the answer (JSON, or CSV for reports when asked). Errors are RFC 9457
problem details carrying the domain's own message.

Stateless: everything lives in the stores and Temporal, so several API processes can run
behind a proxy (`housing-chain serve`).
"""


import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any, Literal, get_origin

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from application.errors import BadInput, Unauthenticated, UseCaseError
from application.importer import decode_lines
from application.readmodels import WORKLIST_KINDS
from application.reporting import (
    CATALOGUE,
    QUERY_NAMES,
    REPORT_NAMES,
    csv_rows,
    csv_text,
    report_options,
)
from application.use_cases import UseCases, check_import_names
from config.settings import Settings
from domain.access import Forbidden, Principal
from domain.personal_number import mask_personal_numbers
from domain.steps import STOCK_STEP_TYPES
from domain.views import LineResult
from interfaces.api.auth import Authenticator
from interfaces.api.models import (
    AccessLogAnswer,
    CaseView,
    ErasureAnswer,
    HistoryAnswer,
    Problem,
    ProjectionsAnswer,
    ReportAnswer,
    RevealAnswer,
    VerifyAnswer,
    WorklistAnswer,
)
from interfaces.api.options import query_wording

PROBLEM = "application/problem+json"
# the query parameters of GET /api/reports/{name} (the CLI's options, and history's case)
REPORT_QUERY = frozenset({*QUERY_NAMES.values(), "case"})
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM: {}}, "description": title}
    for code, title in ((401, "Not signed in"), (403, "Not allowed for this role or unit"),
                        (404, "No such case"), (409, "The case refuses the step"),
                        (422, "Invalid input (the field is named)"), (503, "Stack unavailable"))
}


def problem(status: int, title: str, detail: str, instance: str) -> JSONResponse:
    """A problem details answer. What it echoes of the request (a field's name, a value, the
    path) has any personal identity number in it masked, as the messages that name one do."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"type": "about:blank", "title": title, "status": status,
                         "detail": mask_personal_numbers(detail),
                         "instance": mask_personal_numbers(instance)},
                        status_code=status, media_type=PROBLEM, headers=headers)


def describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


# the routes that refuse an unknown query parameter themselves, in their own words
OWN_QUERY_CHECK = frozenset({"/api/reports/{name}"})


def query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route declares, its dependencies' too, by the names sent."""
    return frozenset({f.alias for f in dependant.query_params}).union(
        *(query_names(d) for d in dependant.dependencies))


def repeatable_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters that take a list (`anchor`, repeated), its dependencies' too."""
    return frozenset({f.alias for f in dependant.query_params
                      if get_origin(f.field_info.annotation) in (list, tuple, set)}).union(
        *(repeatable_names(d) for d in dependant.dependencies))


def given_key(header: str | None) -> str | None:
    """The Idempotency-Key as sent: an empty one is a mistake to say, not "no key" (every
    retry would take the step anew)."""
    if header is not None and not header.strip():
        raise BadInput("Idempotency-Key: empty; send the step's command id, or no header")
    return header


async def known_query_only(request: Request) -> None:
    """A query parameter the route does not take is a 422 naming it, before anything is read
    or done: ignored, a misspelt `distrct` or `as-of` answers another question than the one
    asked, and nothing in the answer says so."""
    route = request.scope.get("route")
    if not request.url.path.startswith("/api/") or not isinstance(route, APIRoute):
        return
    # a parameter takes one value unless it is a list: of `?by=year&by=quarter` the framework
    # would keep the last
    repeated = sorted({k for k in request.query_params if len(request.query_params.getlist(k)) > 1}
                      - repeatable_names(route.dependant))
    if repeated:
        raise BadInput(f"{', '.join(repeated)}: given more than once; a query parameter takes "
                       "one value")
    if route.path in OWN_QUERY_CHECK:
        return
    takes = query_names(route.dependant)
    unknown = sorted(set(request.query_params) - takes)
    if unknown:
        raise BadInput(f"{', '.join(unknown)}: not a query parameter of {request.method} "
                       f"{route.path}; it takes {', '.join(sorted(takes)) or 'no query parameters'}")


def create_app(settings: Settings | None = None, use_cases: UseCases | None = None) -> FastAPI:
    settings = settings or Settings()
    cases = use_cases or UseCases(settings)
    auth = Authenticator(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warming = asyncio.create_task(cases.keep_worklists_warm())
        try:
            yield
        finally:
            warming.cancel()

    app = FastAPI(
        lifespan=lifespan,
        title="housing-chain",
        version="1",
        description="The housing chain's case engine: steps, case status and history, "
                    "worklists, reports. Sign in with a bearer token (OIDC).",
        docs_url=None, redoc_url=None,  # FastAPI's pages load their scripts from a CDN: `mount_docs`
        dependencies=[Depends(known_query_only)],
    )
    app.state.use_cases = cases
    app.state.authenticator = auth
    Who = Annotated[Principal, Depends(auth)]

    @app.exception_handler(UseCaseError)
    async def _use_case_error(request: Request, exc: UseCaseError) -> JSONResponse:
        return problem(exc.status, exc.title, str(exc), request.url.path)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return problem(403, "Forbidden", str(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "Invalid input", describe_validation(exc), request.url.path)

    from http import HTTPStatus

    from fastapi.exception_handlers import http_exception_handler
    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        """The framework's own refusals under /api (no such route or method, a body that is
        not even text) are problem details too; the web pages keep theirs."""
        if not request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        answer = problem(exc.status_code, HTTPStatus(exc.status_code).phrase, str(exc.detail),
                         request.url.path)
        answer.headers.update(exc.headers or {})
        return answer

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        import structlog

        structlog.get_logger("api").error("request failed",
                                          path=mask_personal_numbers(request.url.path),
                                          error=type(exc).__name__)
        return problem(500, "Internal error", "the request failed; it is logged",
                       request.url.path)

    # --- sign-in: the local issuer's keys (embedded stack) ----------------------------------

    @app.get("/.well-known/openid-configuration", include_in_schema=False)
    def openid_configuration(request: Request) -> dict[str, Any]:
        if auth.local is None:
            raise BadInput("this installation signs in with " + (settings.oidc_issuer or ""))
        return auth.local.openid_configuration(str(request.base_url).rstrip("/"))

    @app.get("/.well-known/jwks.json", include_in_schema=False)
    def jwks() -> dict[str, Any]:
        if auth.local is None:
            raise BadInput("this installation signs in with " + (settings.oidc_issuer or ""))
        return auth.local.jwks()

    # --- Temporal's remote codec: the Temporal UI decodes payloads here --------------------

    ui_origins = temporal_ui_origins(settings)

    async def _codec_cors(request: Request, call_next: Any) -> Response:
        """The Temporal UI calls the codec from the browser, from its own origin: answer the
        preflight, and let it read every answer (a 401 too, so it can say why)."""
        if not request.url.path.startswith("/codec"):
            return await call_next(request)
        origin = request.headers.get("origin")
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Allow-Credentials": "true"} if origin in ui_origins else {}
        if request.method == "OPTIONS":
            if not cors:
                return Response(status_code=403)
            return Response(status_code=204, headers={
                **cors, "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Namespace",
                "Access-Control-Max-Age": "600"})
        response = await call_next(request)
        response.headers.update(cors)
        return response

    class _CodecOnly:
        """Pure ASGI: only /codec requests go through `_codec_cors` (a BaseHTTPMiddleware,
        which costs each request it wraps a task group and memory streams); the rest pass."""

        def __init__(self, inner: Any) -> None:
            from starlette.middleware.base import BaseHTTPMiddleware

            self.inner = inner
            self.cors = BaseHTTPMiddleware(inner, dispatch=_codec_cors)

        async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/codec"):
                return await self.cors(scope, receive, send)
            return await self.inner(scope, receive, send)

    app.add_middleware(_CodecOnly)

    async def codec_caller(request: Request) -> Principal:
        """A bearer token, or the web session of this browser when the Temporal UI calls from
        its own origin with its "include cross-origin credentials" setting (the embedded UI
        cannot send a token). The session cookie is SameSite=Strict, so only a page of this
        site sends it; the Origin check keeps every other page of the site out as well."""
        if request.headers.get("authorization") or not request.cookies:
            return await auth(request)
        session_caller = getattr(request.app.state, "session_caller", None)
        # the session's token is verified as a bearer token is (keys may have to be fetched)
        who = await run_in_threadpool(session_caller, request) if session_caller else None
        if who is None:
            raise Unauthenticated("sign in: send `Authorization: Bearer <token>`, or sign in "
                                  "to the web pages in this browser")
        if request.headers.get("origin") not in ui_origins:
            raise Forbidden("the codec takes a web session only from the Temporal UI")
        return who

    @app.post("/codec/encode", include_in_schema=False)
    @app.post("/codec/decode", include_in_schema=False)
    async def codec(request: Request,
                    who: Annotated[Principal, Depends(codec_caller)]) -> Response:
        """Temporal's remote codec protocol, for signed-in supervisors and admins."""
        from application.codec import CodecRequestError

        try:
            answer = await cases.codec(who, request.url.path, await request.body())
        except CodecRequestError as exc:
            return problem(exc.status, "Codec request refused", str(exc), request.url.path)
        return Response(answer, media_type="application/json")

    mount_docs(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/me", responses=ERRORS)
    def me(who: Who) -> dict[str, Any]:
        """Who the token says you are: subject, roles, units."""
        return {"subject": who.subject, "roles": sorted(who.roles), "units": sorted(who.units)}

    # --- cases --------------------------------------------------------------------------------

    @app.post("/api/cases/{case}/steps", response_model=LineResult, responses=ERRORS)
    async def take_step(case: str, who: Who,
                        step: Annotated[dict[str, Any], Body(examples=[{
                            "type": "record_visit", "kind": "home_visit", "on": "2026-11-30"}])],
                        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                        ) -> LineResult:
        """One step on the case, in the import-line shape without `case` (see
        docs/import-line.schema.json). `Idempotency-Key` is the command id: the same step sent
        again under it by the same person records nothing new and answers as the first time;
        under the same key another step, other fields or another person's request is a 409."""
        if "case" in step:
            raise BadInput("case: the case is in the path, not the body")
        return await cases.submit_step(who, {**step, "case": case},
                                       command_id=given_key(idempotency_key))

    @app.get("/api/cases/{case}", response_model=CaseView, responses=ERRORS)
    async def case_status(case: str, who: Who) -> dict[str, Any]:
        """Where the case stands, the steps allowed now, what is due."""
        return await cases.status(who, case)

    @app.get("/api/cases/{case}/history", response_model=HistoryAnswer, responses=ERRORS)
    def case_history(case: str, who: Who) -> dict[str, Any]:
        """Every event of the case: effective date, recorded time, actor, what happened."""
        return cases.history(who, case)

    @app.get("/api/cases/{case}/access-log", response_model=AccessLogAnswer, responses=ERRORS)
    def case_access_log(case: str, who: Who,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
        """Who read or changed the case, newest first (supervisors of its unit)."""
        return cases.access_log(who, case, limit)

    @app.post("/api/cases/{case}/identity", response_model=RevealAnswer, responses=ERRORS)
    def reveal_identity(case: str, who: Who) -> dict[str, Any]:
        """Reveal the client's name and personal identity number (caseworkers of the unit);
        the reveal itself is logged."""
        return cases.reveal_identity(who, case)

    # --- the stock and notices -----------------------------------------------------------------

    @app.post("/api/apartments/steps", response_model=LineResult, responses=ERRORS)
    async def stock_step(who: Who, step: Annotated[dict[str, Any], Body(examples=[{
            "type": "register_apartment", "apartment": "SH-1042", "landlord": "Stockholmshem",
            "rooms": 2}])],
            idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> LineResult:
        """Register an apartment in the stock or return one to its landlord."""
        if step.get("type") not in STOCK_STEP_TYPES:
            raise BadInput(f"type: must be one of {', '.join(STOCK_STEP_TYPES)}")
        return await cases.submit_step(who, step, command_id=given_key(idempotency_key))

    @app.get("/api/apartments", response_model=ReportAnswer, responses=ERRORS)
    def apartments(who: Who, as_of: date | None = None) -> dict[str, Any]:
        """The stock: status, vacant days, who lives where (a landlord: its own)."""
        try:
            return cases.apartments(who, as_of)
        except BadInput as exc:  # the report layer names the CLI's options
            raise BadInput(query_wording(str(exc))) from None

    @app.post("/api/notices/{notice}/steps", response_model=LineResult, responses=ERRORS)
    async def notice_step(notice: str, who: Who, step: Annotated[dict[str, Any], Body()],
                          idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                          ) -> LineResult:
        """A step on an eviction-prevention notice (register, contact_attempt, ...)."""
        if "notice" in step:
            raise BadInput("notice: the notice is in the path, not the body")
        return await cases.submit_notice_step(who, {**step, "notice": notice},
                                              command_id=given_key(idempotency_key))

    @app.get("/api/notices/{notice}", responses=ERRORS)
    async def notice_status(notice: str, who: Who) -> dict[str, Any]:
        """Where a notice stands, its 48-hour clock and deadlines."""
        return await cases.notice_status(who, notice)

    # --- worklists and reports ---------------------------------------------------------------

    @app.get("/api/worklist", response_model=WorklistAnswer, responses=ERRORS)
    def worklist(who: Who, actor: str | None = None,
                 days: Annotated[int, Query(ge=0, le=366)] = 14, as_of: date | None = None,
                 everyone: bool = False,
                 kind: Literal[WORKLIST_KINDS] | None = None,  # type: ignore[valid-type]
                 ) -> dict[str, Any]:
        """Your worklist: what is due and overdue, per case (supervisors: anyone's); `kind`
        (e.g. `support_visit`, `sub_goal`) keeps the rows of that kind. A kind the worklist
        never gives is a 422 listing the kinds, not an empty list that looks like nothing due."""
        return cases.worklist(who, actor, days, as_of, everyone=everyone, kind=kind)

    @app.get("/api/reports", responses={422: ERRORS[422]})
    def report_catalogue() -> list[dict[str, Any]]:
        """The reports and the query parameters each takes (the CLI's options, by the API's
        names: `from`, `to`, `as_of`, `by`, ...)."""
        return [{**r.model_dump(), "options": [query_wording(o).strip("`") for o in r.options]}
                for r in CATALOGUE]

    @app.get("/api/reports/{name}", response_model=ReportAnswer, responses={
        **ERRORS, 200: {"content": {"application/json": {}, "text/csv": {}}}})
    def report(name: str, who: Who, request: Request,
               date_from: Annotated[date | None, Query(alias="from")] = None,
               date_to: Annotated[date | None, Query(alias="to")] = None,
               as_of: date | None = None, by: str | None = None, interval: str | None = None,
               quarter: str | None = None, programme: str | None = None,
               target_group: str | None = None, district: str | None = None,
               year: int | None = None, case: str | None = None) -> Any:
        """A report with the CLI's options as query parameters; CSV with `Accept: text/csv`."""
        if name not in REPORT_NAMES:
            raise BadInput(f"name: no report {name!r}; reports: {', '.join(REPORT_NAMES)}")
        unknown = sorted(set(request.query_params) - REPORT_QUERY)
        if unknown:  # `as-of` for `as_of`, say: an answer to another question otherwise
            raise BadInput(f"{', '.join(unknown)}: not a query parameter of the reports; they "
                           f"take {', '.join(sorted(REPORT_QUERY))}")
        if name == "history" and not case:  # the use case's message cites the CLI's usage
            raise BadInput("case: report history needs the case, e.g. `case=BO-2026-0001` "
                           "(or GET /api/cases/{case}/history)")
        try:
            options = report_options(date_from=date_from, date_to=date_to, as_of=as_of, by=by,
                                     interval=interval, quarter=quarter, programme=programme,
                                     target_group=target_group, district=district, year=year)
            result = cases.report(who, name, options, case=case)
        except BadInput as exc:  # the report layer names the CLI's options
            raise BadInput(query_wording(str(exc))) from None
        if "text/csv" in request.headers.get("accept", ""):
            return Response(csv_text(csv_rows(result)), media_type="text/csv")
        return result

    # --- administration ---------------------------------------------------------------------

    @app.post("/api/imports", responses=ERRORS)
    async def import_file(request: Request, who: Who, source: str = "api",
                          actor: str = "import", strict: bool = False) -> StreamingResponse:
        """A JSONL upload (admin): progress and refused lines streamed as JSON lines, then a
        summary line `{"summary": {...}}`."""
        check_import_names(source, actor)  # a 422 before the answer starts streaming
        raw = decode_lines(await request.body())
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        done, sent = 0, len(raw)

        def to_send(n: int) -> None:  # the lines read well: the others are refused at once
            nonlocal sent
            sent = n

        def progress(n: int) -> None:  # told a batch at a time; streamed as lines done so far
            nonlocal done
            done += n
            queue.put_nowait({"done": done, "lines": sent})

        async def run() -> None:
            try:
                report = await cases.import_lines(
                    who, raw, source, default_actor=actor, strict=strict, progress=progress,
                    total=to_send)
                for r in report.refused:
                    queue.put_nowait({"line": r.line, "case": r.case, "accepted": False,
                                      "reason": r.reason})
                queue.put_nowait({"summary": {**report.as_json(), "duplicates": report.duplicates,
                                              "stopped_early": report.stopped_early,
                                              "stages": report.stages}})
            except (UseCaseError, Forbidden) as exc:
                queue.put_nowait({"error": str(exc)})
            finally:
                queue.put_nowait(None)

        cases.allow(who, "import", lambda: _admin(who))  # refuse before the stream starts
        task = asyncio.create_task(run())

        async def stream() -> AsyncIterator[bytes]:
            while (item := await queue.get()) is not None:
                yield (json.dumps(item, ensure_ascii=False) + "\n").encode()
            await task

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @app.get("/api/projections", response_model=ProjectionsAnswer, responses=ERRORS)
    def projections(who: Who) -> dict[str, Any]:
        """Where the read models stand against the event store's head."""
        return cases.projection_status(who)

    @app.post("/api/identities/{client}/erase", response_model=ErasureAnswer, responses=ERRORS)
    def erase_identity(client: str, who: Who) -> dict[str, Any]:
        """Erase a client's identity for good (admin)."""
        return cases.erase_identity(who, client)

    @app.get("/api/audit/verify", response_model=VerifyAnswer, responses=ERRORS)
    def audit_verify(who: Who, anchor: Annotated[list[str], Query(
            description="SEQ:HASH of an earlier verify, kept elsewhere")] = []) -> dict[str, Any]:  # noqa: B006
        """Recompute the access log's hash chain; names the first broken record, or a record
        anchored by an earlier verify (or given as `anchor`) that is no longer in the chain."""
        return cases.audit_verify(who, anchor).model_dump()

    @app.get("/api/audit/review", response_model=AccessLogAnswer, responses=ERRORS)
    def audit_review(who: Who, month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")],
                     ) -> dict[str, Any]:
        """The monthly log review: reads by people with no assignment to the case's unit or
        the case at that moment, and every refused access."""
        rows = cases.audit_review(who, month)
        return {"case": None, "rows": [r.model_dump(mode="json") for r in rows]}

    from interfaces.web.app import mount_web

    mount_web(app, settings, cases)
    return app


DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def mount_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its script and styles from the swagger-ui-bundle-v2 package,
    served at /docs/static: no asset is downloaded at run time (FastAPI's own page takes
    them from a CDN, which an installation without internet access cannot reach, and which
    would learn of every staff member who opens the page). No ReDoc page."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse
    from starlette.exceptions import HTTPException
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy's prefix
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}/docs/static/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/static/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/static/favicon-32x32.png",
            # no badge fetched from the public validator with this document's address
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/docs/static/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        if name not in DOCS_ASSETS:  # not the bundle's demo page, which loads a remote API
            raise HTTPException(404)
        # the files change only with the package's version
        return FileResponse(swagger_ui_path / name, headers={"Cache-Control": "max-age=86400"})


def temporal_ui_origins(settings: Settings) -> set[str]:
    """Where the Temporal UI of this installation is opened: its host, both loopback names."""
    host = settings.temporal_address.rpartition(":")[0] or "localhost"
    hosts = {host}
    if host in ("localhost", "127.0.0.1"):
        hosts |= {"localhost", "127.0.0.1"}
    return {f"http://{h}:{settings.ui_port}" for h in hosts}


def _admin(who: Principal) -> None:
    from domain import access

    access.check_role(who, "import records")
