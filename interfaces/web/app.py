"""The web pages, mounted on the API's FastAPI app (`mount_web`): each route parses its form
or query, calls one use case with the signed-in person, and renders a template. Sign-in is
the OIDC authorization code flow with PKCE against the configured issuer, or the embedded
stack's local issuer (interfaces/web/issuer.py)."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from application.errors import BadInput, NotFound, Refused, Unauthenticated, Unavailable
from application.labels import due_key
from application.reporting import (
    OPTION_NAMES,
    QUERY_NAMES,
    ReportOptions,
    csv_rows,
    csv_text,
    report_options,
)
from application.tokens import TokenError, TokenVerifier
from application.use_cases import UseCases
from config.settings import Settings
from domain import access
from domain.access import Forbidden, Principal, Role
from domain.calendar import quarter_bounds
from domain.personal_number import mask_personal_numbers
from domain.steps import BY_TYPE
from interfaces.web import charts, labels, refusals
from interfaces.web.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    fmt_date,
    fmt_datetime,
    fmt_number,
    negotiate,
    translations,
)
from interfaces.web.issuer import LocalAuthorization, OAuthError, s256
from interfaces.web.session import CSRF, FLOW, LANG, SESSION, Sealer, idle, new_session
from interfaces.web.settings import WebSettings
from interfaces.web.users import authenticate

HERE = Path(__file__).parent
CASELOAD_NORM = (35, 45)  # cases per housing pilot, the municipality's norm
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
# the API's Swagger UI (interfaces/api `mount_docs`): its files are ours, but the page starts
# it with an inline script and it sets inline styles
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'")
DOCS_HEADERS = [(b"content-security-policy", DOCS_CSP.encode()), *HEADERS[1:]]


class SecurityHeaders:
    """Pure ASGI: the security headers on every response; pages are never cached."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = DOCS_HEADERS if scope["path"].startswith("/docs") else HEADERS
                headers += [h for h in extra if h[0] not in present]
                if not scope["path"].startswith(("/static/", "/api/")) and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class CsrfRefused(Exception):
    pass


class NeedSignIn(Exception):
    pass


class Web:
    def __init__(self, settings: Settings, cases: UseCases, authenticator: Any) -> None:
        self.settings = settings
        self.web = WebSettings()
        self.cases = cases
        self.auth = authenticator
        self.sealer = Sealer(settings.data)
        self.local: LocalAuthorization | None = None
        if authenticator.local is not None:
            self.local = LocalAuthorization(authenticator.local, self.web.client_id)
        self._discovery: dict[str, Any] | None = None
        self._id_verifier: TokenVerifier | None = None
        self.clock = time.time  # the idle time-out's clock; tests move it
        self.envs = {lang: self._env(lang) for lang in LANGUAGES}

    # --- rendering ---------------------------------------------------------------------------

    def _env(self, lang: str) -> Environment:
        env = Environment(loader=FileSystemLoader(HERE / "templates"),
                          autoescape=select_autoescape(["html"]),
                          extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
        trans = translations(lang)
        env.install_gettext_translations(trans, newstyle=True)  # type: ignore[attr-defined]
        g = trans.gettext

        def label(table: str, value: Any) -> str:
            if value is None:
                return "–"
            key = str(value).lower() if isinstance(value, bool) else str(value)
            if table == "DUE":
                key = due_key(key)
            found = getattr(labels, table).get(key)
            return g(found) if found else str(value)

        def refusal(text: Any) -> Markup:
            """A refusal from the domain in the page's language (English where no template
            of the catalogues made it), marked with the language it is in."""
            words, translated = refusals.translate(str(text), lang)
            return Markup('<span lang="{}">{}</span>').format(lang if translated else "en", words)

        env.globals.update(lang=lang, d=lambda v: fmt_date(v, lang), refusal=refusal,
                           dt=lambda v: fmt_datetime(v, lang, self.cases.policy.time_zone),
                           num=lambda v: fmt_number(v, lang),
                           label=label, languages=LANGUAGE_NAMES, STEP_FORMS=labels.STEP_FORMS,
                           NOTICE_FORMS=labels.NOTICE_FORMS, SUB_GOAL_ROWS=labels.SUB_GOAL_ROWS,
                           SUB_GOAL_FIELDS=labels.SUB_GOAL_FIELDS)
        return env

    def lang(self, request: Request) -> str:
        """The signed-in person's own choice (kept in their session from sign-in), else this
        browser's last choice, else its Accept-Language, else Swedish."""
        chosen = (getattr(request.state, "session", None) or {}).get("lang")
        return negotiate(chosen or request.cookies.get(LANG), request.headers.get("accept-language"))

    def secure(self, request: Request) -> bool:
        if self.web.secure_cookies is not None:
            return self.web.secure_cookies
        # behind a TLS-terminating proxy the request arrives over http; the proxy says so
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return request.url.scheme == "https" or forwarded == "https"

    def csrf(self, request: Request) -> str:
        session = getattr(request.state, "session", None)
        if session:
            return session["csrf"]
        token = getattr(request.state, "csrf", None) or request.cookies.get(CSRF)
        if not token:
            token = secrets.token_urlsafe(24)
        request.state.csrf = token
        return token

    def render(self, request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = self.lang(request)
        who: Principal | None = getattr(request.state, "who", None)
        ctx.setdefault("who", who)
        ctx.update(csrf=self.csrf(request), path=request.url.path, nav=self.nav(who),
                   htmx=request.headers.get("hx-request") == "true")
        html = self.envs[lang].get_template(template).render(**ctx)
        response = HTMLResponse(html, status_code=status)
        response.headers["content-language"] = lang
        self.keep_cookies(request, response)
        return response

    def keep_cookies(self, request: Request, response: Response) -> None:
        session = getattr(request.state, "session", None)
        secure = self.secure(request)
        if session:
            session["seen"] = int(self.clock())
            response.set_cookie(SESSION, self.sealer.seal(session), httponly=True,
                                samesite="strict", secure=secure, path="/")
        elif getattr(request.state, "csrf", None) and request.cookies.get(CSRF) != request.state.csrf:
            response.set_cookie(CSRF, request.state.csrf, httponly=True, samesite="strict",
                                secure=secure, path="/")

    def remember_language(self, request: Request, response: Response, lang: str) -> None:
        """This browser's choice, for the pages before sign-in and after sign-out."""
        response.set_cookie(LANG, lang, max_age=365 * 86400, httponly=True, samesite="strict",
                            secure=self.secure(request), path="/")

    def nav(self, who: Principal | None) -> list[tuple[str, str]]:
        if who is None:
            return []
        items = [("/", N_("My worklist"))]
        if who.is_admin or who.has(Role.CASEWORKER):
            items += [("/apply", N_("New application")), ("/queue", N_("Queue")),
                      ("/apartments", N_("Apartments")), ("/notices", N_("Eviction notices"))]
        if who.is_admin or who.has(Role.SUPERVISOR):
            items += [("/queue", N_("Queue")), ("/dashboard", N_("Dashboard")), ("/ivo", N_("IVO report")),
                      ("/audit-review", N_("Log review"))]
        return list(dict.fromkeys(items))

    # --- who is signed in --------------------------------------------------------------------

    def signed_in(self, request: Request) -> Principal:
        session = self.sealer.open(request.cookies.get(SESSION))
        if session is None or idle(session, self.web.idle_minutes * 60, self.clock()):
            raise NeedSignIn()
        address = request.client.host if request.client else None
        try:
            who = self.auth.principal(session["token"], address)
        except (Unauthenticated, KeyError):
            raise NeedSignIn() from None
        request.state.session = session
        request.state.who = who
        return who

    def session_caller(self, request: Request) -> Principal | None:
        """Who this browser's session signs in, or None (no session, or idle too long)."""
        try:
            return self.signed_in(request)
        except NeedSignIn:
            return None

    async def form(self, request: Request) -> dict[str, str]:
        data = await request.form()
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        expected = (getattr(request.state, "session", None) or {}).get("csrf") \
            or request.cookies.get(CSRF)
        if not expected or not secrets.compare_digest(form.get("csrf", ""), expected):
            raise CsrfRefused()
        return form

    async def page(self, request: Request, work: Any) -> Response:
        """Sign-in, then the work; the use case's refusals as pages."""
        try:
            who = self.signed_in(request)
            return await work(who)
        except NeedSignIn:
            if request.method == "POST":
                return self.render(request, "error.html", 403, title=N_("Forbidden"),
                                   message=N_("Your session has ended. Sign in again."))
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/signin?" + urlencode({"next": target}), 303)
        except CsrfRefused:
            return self.render(request, "error.html", 403, title=N_("Forbidden"),
                               message=N_("The form was not accepted (its security token is "
                                       "missing or stale). Reload the page and try again."))
        except Forbidden as exc:
            return self.render(request, "error.html", 403, title=N_("Forbidden"),
                               message=N_("You do not have access to this with your role "
                                       "and units. The attempt is logged."),
                               detail=mask_personal_numbers(str(exc)))
        except NotFound as exc:
            return self.render(request, "error.html", 404, title=N_("Not found"),
                               message=N_("There is nothing here."), detail=mask_personal_numbers(str(exc)))
        except BadInput as exc:
            return self.render(request, "error.html", 422, title=N_("Invalid input"),
                               message=N_("Check what you entered."), detail=mask_personal_numbers(str(exc)))
        except Unavailable as exc:
            return self.render(request, "error.html", 503, title=N_("Service unavailable"),
                               message=N_("The system cannot answer right now. Try again shortly."),
                               detail=mask_personal_numbers(str(exc)))

    # --- the OIDC client ---------------------------------------------------------------------

    async def provider(self, request: Request) -> dict[str, Any]:
        if self.local is not None:
            base = str(request.base_url).rstrip("/")
            return {"authorization_endpoint": base + "/oidc/authorize",
                    "token_endpoint": base + "/oidc/token"}
        if self._discovery is None:
            url = (self.settings.oidc_issuer or "").rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=5) as client:
                answer = await client.get(url)
                answer.raise_for_status()
                self._discovery = answer.json()
        return self._discovery

    def redirect_uri(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/callback"

    async def exchange(self, request: Request, code: str, verifier: str) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "client_id": self.web.client_id, "redirect_uri": self.redirect_uri(request)}
        if self.local is not None:
            return self.local.token(form)
        if self.web.client_secret:
            form["client_secret"] = self.web.client_secret
        endpoint = (await self.provider(request))["token_endpoint"]
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(endpoint, data=form)
        if answer.status_code != 200:
            raise OAuthError("invalid_grant", "the identity provider refused the code")
        return answer.json()

    def check_nonce(self, id_token: str | None, nonce: str) -> None:
        if id_token is None:
            raise OAuthError("invalid_token", "no id_token")
        if self.local is not None:
            verifier = self.auth.local.verifier()
        else:  # one verifier: its keys are fetched once and cached, not at every sign-in
            if self._id_verifier is None:
                self._id_verifier = TokenVerifier.from_issuer(self.settings.oidc_issuer or "",
                                                              self.web.client_id)
            verifier = self._id_verifier
        try:
            claims = verifier.verify(id_token).claims
        except TokenError as exc:
            raise OAuthError("invalid_token", str(exc)) from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OAuthError("invalid_token", "the id_token's nonce does not match")


def _options(q: dict[str, str], *names: str) -> ReportOptions:
    fields = {n: q[QUERY_NAMES[n]] for n in names if q.get(QUERY_NAMES[n])}
    try:
        return report_options(**fields)
    except BadInput as exc:
        raise _field_named(exc) from None


def _field_named(exc: BadInput) -> BadInput:
    """The report layer's message about one option (`--from: ...`) naming the page's field
    by its key in the query (`from: ...`) instead; any other message as it is."""
    option, _, why = str(exc).partition(": ")
    field = next((f for f, o in OPTION_NAMES.items() if o == option), None)
    return BadInput(f"{QUERY_NAMES[field]}: {why}") if field else exc


def quarter_of(day: date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def previous_quarters(day: date, n: int) -> list[str]:
    out, current = [], day
    for _ in range(n):
        out.append(quarter_of(current))
        first = quarter_bounds(quarter_of(current))[0]
        current = first - timedelta(days=1)
    return out[::-1]


def mount_web(app: FastAPI, settings: Settings, cases: UseCases) -> None:
    web = Web(settings, cases, app.state.authenticator)
    app.state.web = web
    app.state.session_caller = web.session_caller  # the codec, called by the Temporal UI
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="web-static")
    r = APIRouter(include_in_schema=False)
    T = run_in_threadpool

    # --- sign-in ---------------------------------------------------------------------------

    @r.get("/signin")
    async def signin(request: Request, next: str = "/") -> Response:
        if not next.startswith("/") or next.startswith("//"):
            next = "/"
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(64)
        provider = await web.provider(request)
        query = {"response_type": "code", "client_id": web.web.client_id,
                 "redirect_uri": web.redirect_uri(request), "scope": web.web.scope,
                 "state": state, "nonce": nonce, "code_challenge": s256(verifier),
                 "code_challenge_method": "S256", "ui_locales": web.lang(request)}
        response = RedirectResponse(provider["authorization_endpoint"] + "?" + urlencode(query), 303)
        response.set_cookie(FLOW, web.sealer.seal({"state": state, "nonce": nonce,
                                                   "verifier": verifier, "next": next}),
                            max_age=600, httponly=True, samesite="lax", secure=web.secure(request),
                            path="/callback")
        return response

    @r.get("/callback")
    async def callback(request: Request, code: str = "", state: str = "",
                       error: str = "") -> Response:
        flow = web.sealer.open(request.cookies.get(FLOW), max_age=600)
        if error or flow is None or not code or not secrets.compare_digest(state, flow["state"]):
            return web.render(request, "error.html", 400, title=N_("Sign-in failed"),
                              message=N_("The sign-in could not be completed. Try again."),
                              detail=error or None)
        try:
            tokens = await web.exchange(request, code, flow["verifier"])
            web.check_nonce(tokens.get("id_token"), flow["nonce"])
            who = await T(web.auth.principal, tokens["access_token"], request.client.host
                          if request.client else None)
        except (OAuthError, Unauthenticated, KeyError) as exc:
            return web.render(request, "error.html", 400, title=N_("Sign-in failed"),
                              message=N_("The sign-in could not be completed. Try again."),
                              detail=str(exc))
        request.state.session = new_session(tokens["access_token"], web.clock())
        request.state.who = who
        chosen = await T(web.cases.language_of, who)
        if chosen:
            request.state.session["lang"] = chosen
        response = web.render(request, "signed_in.html", next=flow["next"])
        response.delete_cookie(FLOW, path="/callback")
        if chosen:
            web.remember_language(request, response, chosen)
        return response

    @r.post("/signout")
    async def signout(request: Request) -> Response:
        async def work(who: Principal) -> Response:
            await web.form(request)
            request.state.session = None
            request.state.who = None
            response = web.render(request, "signed_out.html", who=None)
            response.delete_cookie(SESSION, path="/")
            return response
        return await web.page(request, work)

    @r.post("/language")
    async def language(request: Request) -> Response:
        """Signed in, the choice is the person's (kept for every browser they sign in from);
        signed out, this browser's."""
        try:
            who: Principal | None = web.signed_in(request)
        except NeedSignIn:
            who = None
        try:
            form = await web.form(request)
        except CsrfRefused:
            return web.render(request, "error.html", 403, title=N_("Forbidden"),
                              message=N_("The form was not accepted (its security token is "
                                      "missing or stale). Reload the page and try again."))
        lang = form.get("lang") if form.get("lang") in LANGUAGES else "sv"
        back = form.get("next") or "/"
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        if who is not None:
            await T(web.cases.choose_language, who, lang)
            request.state.session["lang"] = lang
        response = RedirectResponse(back, 303)
        web.remember_language(request, response, lang)
        web.keep_cookies(request, response)
        return response

    # --- the local issuer --------------------------------------------------------------------

    @r.get("/oidc/.well-known/openid-configuration")
    def local_discovery(request: Request) -> Response:
        if web.local is None:
            return JSONResponse({"error": "not_found"}, 404)
        base = str(request.base_url).rstrip("/")
        doc = web.auth.local.openid_configuration(base)
        doc.update(authorization_endpoint=base + "/oidc/authorize", token_endpoint=base + "/oidc/token",
                   response_types_supported=["code"], grant_types_supported=["authorization_code"],
                   code_challenge_methods_supported=["S256"])
        return JSONResponse(doc)

    def authorize_params(q: Any) -> dict[str, str]:
        keys = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                "code_challenge", "code_challenge_method", "ui_locales")
        return {k: q.get(k, "") for k in keys}

    @r.get("/oidc/authorize")
    def authorize(request: Request) -> Response:
        if web.local is None:
            return web.render(request, "error.html", 404, title=N_("Not found"),
                              message=N_("There is nothing here."))
        params = authorize_params(request.query_params)
        try:
            web.local.check_request(params, str(request.base_url))
        except OAuthError as exc:
            return web.render(request, "error.html", 400, title=N_("Sign-in failed"),
                              message=N_("The sign-in could not be completed. Try again."),
                              detail=exc.description)
        return web.render(request, "login.html", params=params)

    @r.post("/oidc/authorize")
    async def authorize_post(request: Request) -> Response:
        if web.local is None:
            return web.render(request, "error.html", 404, title=N_("Not found"),
                              message=N_("There is nothing here."))
        try:
            form = await web.form(request)
        except CsrfRefused:
            return web.render(request, "error.html", 403, title=N_("Forbidden"),
                              message=N_("The form was not accepted (its security token is "
                                      "missing or stale). Reload the page and try again."))
        params = authorize_params(form)
        try:
            web.local.check_request(params, str(request.base_url))
        except OAuthError as exc:
            return web.render(request, "error.html", 400, title=N_("Sign-in failed"),
                              message=N_("The sign-in could not be completed. Try again."),
                              detail=exc.description)
        user = await T(authenticate, settings.data, form.get("username", ""), form.get("password", ""))
        if user is None:
            return web.render(request, "login.html", 401, params=params,
                              failed=True, username=form.get("username", ""))
        code = web.local.grant(user, params)
        return RedirectResponse(params["redirect_uri"] + "?" + urlencode(
            {"code": code, "state": params["state"]}), 303)

    @r.post("/oidc/token")
    async def token(request: Request) -> Response:
        if web.local is None:
            return JSONResponse({"error": "not_found"}, 404)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            answer = web.local.token(form)
        except OAuthError as exc:
            return JSONResponse({"error": exc.error, "error_description": exc.description}, 400,
                                headers={"cache-control": "no-store"})
        return JSONResponse(answer, headers={"cache-control": "no-store"})

    # --- pages -------------------------------------------------------------------------------

    WORKLIST_PAGE = 100

    @r.get("/")
    async def worklist(request: Request) -> Response:
        q = request.query_params

        async def work(who: Principal) -> Response:
            everyone = q.get("everyone") == "1" and (who.is_admin or who.has(Role.SUPERVISOR))
            kind = q.get("kind") or ""
            result = await T(cases.worklist, who, None, 14, None, everyone, kind or None)
            kinds, rows = result["kinds"], result["rows"]
            whole = rows
            if kind not in ("", "unexecuted_decision"):  # the deadlines, whatever the filter
                whole = (await T(cases.worklist, who, None, 14, None, everyone,
                                 "unexecuted_decision"))["rows"]
            deadlines = [r for r in whole if r["kind"] == "unexecuted_decision"]
            # a page of rows at a time: everyone's list at 50,000 cases is thousands of rows
            pages = max(1, -(-len(rows) // WORKLIST_PAGE))
            page = min(max(1, int(q.get("page", "1")) if q.get("page", "1").isdigit() else 1), pages)
            shown = rows[(page - 1) * WORKLIST_PAGE:page * WORKLIST_PAGE]
            return web.render(request, "worklist.html", result=result, rows=shown, kinds=kinds,
                              kind=kind, deadlines=deadlines[:WORKLIST_PAGE], everyone=everyone,
                              page=page, pages=pages, total=len(rows))
        return await web.page(request, work)

    async def case_page(request: Request, who: Principal, case: str, status: int = 200,
                        error: tuple[str, str] | None = None, identity: dict | None = None,
                        done: str | None = None, values: dict | None = None) -> Response:
        view = await cases.status(who, case)
        history = await T(cases.history, who, case)
        steps = [s for s in view["allowed"]
                 if who.is_admin or set(BY_TYPE[s].roles) & set(who.roles)]
        return web.render(request, "case.html", status, c=view, history=history["rows"][::-1],
                          steps=steps, error=error, identity=identity, done=done,
                          values=values or {}, today=cases.today().isoformat(),
                          can_reveal=who.has(Role.CASEWORKER),
                          can_log=who.is_admin or who.has(Role.SUPERVISOR))

    @r.get("/cases/{case}")
    async def case(request: Request, case: str, done: str | None = None) -> Response:
        async def work(who: Principal) -> Response:
            return await case_page(request, who, case, done=done if done in BY_TYPE else None)
        return await web.page(request, work)

    @r.post("/cases/{case}/steps")
    async def case_step(request: Request, case: str) -> Response:
        async def work(who: Principal) -> Response:
            form = await web.form(request)
            step = form.get("type", "")
            if step not in labels.STEP_FORMS:
                raise BadInput(f"type: no step {step!r}")
            fields = {**labels.step_fields(step, form), "case": case}
            try:
                await cases.submit_step(who, fields)
            except (Refused, BadInput) as exc:
                code = 200 if request.headers.get("hx-request") else (
                    409 if isinstance(exc, Refused) else 422)
                return await case_page(request, who, case, code, error=(step, str(exc)),
                                       values=form)
            return RedirectResponse(f"/cases/{case}?done={step}", 303)
        return await web.page(request, work)

    @r.post("/cases/{case}/identity")
    async def reveal(request: Request, case: str) -> Response:
        async def work(who: Principal) -> Response:
            await web.form(request)
            identity = await T(cases.reveal_identity, who, case)
            return await case_page(request, who, case, identity=identity)
        return await web.page(request, work)

    @r.get("/cases/{case}/access-log")
    async def access_log(request: Request, case: str) -> Response:
        async def work(who: Principal) -> Response:
            result = await T(cases.access_log, who, case)
            return web.render(request, "access_log.html", case=case, rows=result["rows"])
        return await web.page(request, work)

    @r.get("/apply")
    async def apply_form(request: Request) -> Response:
        async def work(who: Principal) -> Response:
            access.check_step(who, "apply", None)  # the form only for those who may apply
            return web.render(request, "apply.html", values={}, error=None,
                              today=cases.today().isoformat())
        return await web.page(request, work)

    @r.post("/apply")
    async def apply(request: Request) -> Response:
        async def work(who: Principal) -> Response:
            form = await web.form(request)
            client: dict[str, Any] = {
                "id": form.get("client", "").strip(), "target_group": form.get("target_group"),
                "district": form.get("district", "").strip(),
                "household": {"adults": form.get("adults") or 1,
                              "children": form.get("children") or 0},
                "housing_situation": form.get("housing_situation") or None,
                "name": form.get("name", "").strip() or None,
                "personal_number": form.get("personal_number", "").strip() or None}
            fields = {"type": "apply", "case": form.get("case", "").strip(),
                      "client": {k: v for k, v in client.items() if v is not None},
                      "referral": form.get("referral") or None, "on": form.get("on") or None}
            try:
                await cases.submit_step(who, fields)
            except (Refused, BadInput) as exc:
                safe = {k: v for k, v in form.items() if k not in ("name", "personal_number")}
                return web.render(request, "apply.html", 409 if isinstance(exc, Refused) else 422,
                                  values=safe, error=str(exc), today=cases.today().isoformat())
            return RedirectResponse(f"/cases/{fields['case']}?done=apply", 303)
        return await web.page(request, work)

    @r.get("/queue")
    async def queue(request: Request) -> Response:
        q = dict(request.query_params)

        async def work(who: Principal) -> Response:
            by = q.get("by") or ""
            if by not in ("", *labels.QUEUE_GROUPS):
                raise BadInput(f"by: one of {', '.join(labels.QUEUE_GROUPS)}")
            result = await T(cases.report, who, "queue", _options(q, "as_of", "by"))
            column = by.replace("-", "_")  # the group's own column header and labels
            groups = [{column: row["group"], **{k: v for k, v in row.items() if k != "group"}}
                      for row in result.get("groups", [])]
            return web.render(request, "queue.html", result=result, as_of=q.get("as_of", ""),
                              by=by, column=column, groups=groups,
                              QUEUE_GROUPS=labels.QUEUE_GROUPS)
        return await web.page(request, work)

    @r.get("/apartments")
    async def apartments(request: Request) -> Response:
        async def work(who: Principal, error: str | None = None, status: int = 200,
                       values: dict | None = None) -> Response:
            result = await T(cases.apartments, who, None)
            return web.render(request, "apartments.html", status, result=result, error=error,
                              values=values or {}, done=request.query_params.get("done"))
        return await web.page(request, work)

    @r.post("/apartments")
    async def register_apartment(request: Request) -> Response:
        async def work(who: Principal) -> Response:
            form = await web.form(request)
            fields = {"type": "register_apartment", "apartment": form.get("apartment", "").strip(),
                      "landlord": form.get("landlord", "").strip(), "rooms": form.get("rooms") or None,
                      "on": form.get("on") or None}
            try:
                await cases.submit_step(who, fields)
            except (Refused, BadInput) as exc:
                result = await T(cases.apartments, who, None)
                return web.render(request, "apartments.html", 422, result=result, error=str(exc),
                                  values=form, done=None)
            return RedirectResponse("/apartments?done=1", 303)
        return await web.page(request, work)

    async def notices_page(request: Request, who: Principal, status: int = 200,
                           error: tuple[str, str] | None = None) -> Response:
        listed = await T(cases.notices, who, True)
        result = await T(cases.report, who, "evictions", ReportOptions(by="quarter"))
        return web.render(request, "notices.html", status, result=result, notices=listed,
                          error=error, done=request.query_params.get("done"),
                          can_step=who.is_admin or who.has(Role.CASEWORKER))

    @r.get("/notices")
    async def notices(request: Request) -> Response:
        async def work(who: Principal) -> Response:
            return await notices_page(request, who)
        return await web.page(request, work)

    @r.post("/notices")
    async def register_notice(request: Request) -> Response:
        async def work(who: Principal) -> Response:
            form = await web.form(request)
            fields = {"type": "register", "notice": form.get("notice", "").strip(),
                      "client": form.get("client", "").strip(),
                      "district": form.get("district", "").strip(),
                      "eviction_date": form.get("eviction_date") or None}
            try:
                await cases.submit_notice_step(who, fields)
            except (Refused, BadInput) as exc:
                return await notices_page(request, who, 409 if isinstance(exc, Refused) else 422,
                                          error=(fields["notice"], str(exc)))
            return RedirectResponse("/notices?done=register", 303)
        return await web.page(request, work)

    @r.post("/notices/{notice}/steps")
    async def notice_step(request: Request, notice: str) -> Response:
        async def work(who: Principal) -> Response:
            form = await web.form(request)
            step = form.get("type", "")
            if step not in labels.NOTICE_FORMS:
                raise BadInput(f"type: no notice step {step!r}")
            try:
                await cases.submit_notice_step(who, {**labels.notice_fields(step, form),
                                                     "notice": notice})
            except (Refused, BadInput) as exc:
                return await notices_page(request, who, 409 if isinstance(exc, Refused) else 422,
                                          error=(notice, str(exc)))
            return RedirectResponse(f"/notices?done={step}#notice-{notice}", 303)
        return await web.page(request, work)

    async def ivo_counts(who: Principal) -> list[dict[str, Any]]:
        """Unexecuted decisions per quarter (the last eight), the change from the quarter
        before and the least-squares trend through them."""
        return await T(cases.unexecuted_series, who, previous_quarters(cases.today(), 8))

    async def course_rows(who: Principal) -> list[dict[str, Any]]:
        """Housing-course completion among the tenants who moved in each of the last three
        years (the caseload report's course figures, as the kpis report counts them)."""
        today = cases.today()
        years = list(range(today.year - 2, today.year + 1))
        return [{"year": str(c["year"]), "new_tenants": c["new_tenants"],
                 "completed": c["completed"],
                 "completion_percent": None if c["completion_rate"] is None
                 else round(c["completion_rate"] * 100, 1)}
                for c in await T(cases.course_completion_per_year, who, years)]

    def waiting_choice(q: Any) -> tuple[str, str, str]:
        chosen = []
        for key, table, default in (("interval", labels.INTERVALS, "decision-to-move-in"),
                                    ("period", labels.PERIODS, "year"),
                                    ("group", labels.WAIT_GROUPS, "period")):
            value = q.get(key) or default
            if value not in table:
                raise BadInput(f"{key}: one of {', '.join(table)}")
            chosen.append(value)
        return chosen[0], chosen[1], chosen[2]

    def waiting_window(today: date, period: str, group: str) -> tuple[date | None, date | None]:
        """By period: the last twelve months, the last eight quarters or every year. By a
        group: the current month, quarter or year up to today."""
        if group == "period":
            if period == "month":
                first = today.replace(day=1)
                for _ in range(11):
                    first = (first - timedelta(days=1)).replace(day=1)
                return first, None
            if period == "quarter":
                return quarter_bounds(previous_quarters(today, 8)[0])[0], None
            return None, None
        if period == "month":
            return today.replace(day=1), today
        if period == "quarter":
            return quarter_bounds(quarter_of(today))[0], today
        return date(today.year, 1, 1), today

    @r.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        q = request.query_params

        async def work(who: Principal) -> Response:
            g = translations(web.lang(request)).gettext
            num = lambda v: fmt_number(v, web.lang(request))  # noqa: E731
            today = cases.today()
            interval, period, group = waiting_choice(q)
            w_from, w_to = waiting_window(today, period, group)
            since = quarter_bounds(previous_quarters(today, 8)[0])[0]
            # side by side: each report reads on a connection of its own
            waiting, through, load, ivo_rows, stock, course = await asyncio.gather(
                T(cases.report, who, "waiting-times", ReportOptions(
                    interval=interval, by=period if group == "period" else group,
                    date_from=w_from, date_to=w_to)),
                T(cases.report, who, "throughput", ReportOptions(by="quarter", date_from=since)),
                T(cases.report, who, "caseload", ReportOptions()),
                ivo_counts(who),
                T(cases.report, who, "stock", ReportOptions(by="landlord")),
                course_rows(who))
            column = {"period": "group", "target-group": "target_group"}.get(group, group)
            w = [{column: x["group"], **{k: v for k, v in x.items() if k != "group"}}
                 for x in waiting["rows"]]
            w_csv = {"interval": interval, "by": period if group == "period" else group,
                     **({"from": w_from.isoformat()} if w_from else {}),
                     **({"to": w_to.isoformat()} if w_to else {})}
            label = web.envs[web.lang(request)].globals["label"]
            w_labels = [label("VALUES", x["group"]) for x in waiting["rows"]]

            t_rows = [{**x, "outflow": sum(x["exits"].values())} for x in through["rows"]]
            destinations = sorted({d for x in t_rows for d in x["exits"]})
            t_labels = [x["group"] for x in t_rows]
            reuse = [{"landlord": x["landlord"], "vacated": x["vacated"], "relet": x["relet"],
                      "reuse_percent": None if x["reuse_rate"] is None
                      else round(x["reuse_rate"] * 100, 1)} for x in stock.get("rows", [])]
            reuse_total = {"landlord": g("All landlords"), "vacated": stock["vacated"],
                           "relet": stock["relet"],
                           "reuse_percent": None if stock["reuse_rate"] is None
                           else round(stock["reuse_rate"] * 100, 1)}
            by_name = labels.PERIODS[period] if group == "period" else labels.WAIT_GROUPS[group]
            charts_ = {
                "waiting": charts.series_chart(
                    g("Mean, median and 90th percentile of the days from %(interval)s, "
                      "by %(group)s") % {"interval": g(labels.INTERVALS[interval]).lower(),
                                         "group": g(by_name).lower()},
                    w_labels, [(g("Mean"), [x["mean_days"] for x in w]),
                               (g("Median"), [x["median_days"] for x in w]),
                               (g("90th percentile"), [x["p90_days"] for x in w])], num),
                "flow": charts.series_chart(
                    g("Inflow and outflow per quarter, with the net change"), t_labels,
                    [(g("Inflow"), [x["applications"] for x in t_rows]),
                     (g("Outflow"), [x["outflow"] for x in t_rows])], num,
                    lines=[(g("Net change"), [x["net_change"] for x in t_rows])]),
                "outflow": charts.series_chart(
                    g("Outflow by destination, per quarter"), t_labels,
                    [(label("VALUES", dest), [x["exits"].get(dest, 0) for x in t_rows])
                     for dest in destinations], num),
                "throughput": charts.line_chart(g("Active cases at the end of each quarter"),
                                                t_labels,
                                                [x["active_at_end"] for x in t_rows], num),
                "ivo": charts.series_chart(
                    g("Unexecuted decisions reported to IVO, by quarter, with the trend"),
                    [x["quarter"] for x in ivo_rows],
                    [(g("Unexecuted decisions"), [x["ivo_count"] for x in ivo_rows])], num,
                    lines=[(g("Trend"), [x["trend"] for x in ivo_rows])]),
                "caseload": charts.bar_chart(g("Cases per housing pilot against the norm of "
                                               "35–45"), [x["pilot"] for x in load["rows"]],
                                             [x["cases"] for x in load["rows"]], num,
                                             band=CASELOAD_NORM, band_label=g("Norm: 35–45 cases")),
                "reuse": charts.series_chart(
                    g("Apartment reuse rate per landlord, in per cent"),
                    [x["landlord"] for x in reuse],
                    [(g("Reuse rate (%)"), [x["reuse_percent"] for x in reuse])], num, ceiling=100),
                "course": charts.series_chart(
                    g("Housing-course completion among new tenants, by year of move-in, in per cent"),
                    [x["year"] for x in course],
                    [(g("Completion (%)"), [x["completion_percent"] for x in course])], num, ceiling=100),
            }
            return web.render(request, "dashboard.html", charts=charts_, waiting=waiting,
                              w_rows=w, w_column=column, w_csv=urlencode(w_csv),
                              interval=interval, period=period, group=group,
                              w_from=w_from, w_to=w_to,
                              through=through, t_rows=t_rows, destinations=destinations,
                              load=load, ivo_rows=ivo_rows, since=since.isoformat(),
                              reuse=reuse, reuse_total=reuse_total, stock_as_of=stock["as_of"],
                              course=course, norm=CASELOAD_NORM,
                              INTERVALS=labels.INTERVALS, PERIODS=labels.PERIODS,
                              WAIT_GROUPS=labels.WAIT_GROUPS)
        return await web.page(request, work)

    @r.get("/dashboard/ivo-counts.csv")
    async def ivo_counts_csv(request: Request) -> Response:
        async def work(who: Principal) -> Response:
            rows = [{"quarter": x["quarter"], "unexecuted": x["ivo_count"],
                     "change_from_previous_quarter": x["change"], "trend": x["trend"]}
                    for x in await ivo_counts(who)]
            return Response(csv_text(rows), media_type="text/csv", headers={
                "content-disposition": 'attachment; filename="ivo-counts.csv"'})
        return await web.page(request, work)

    @r.get("/dashboard/course-completion.csv")
    async def course_csv(request: Request) -> Response:
        async def work(who: Principal) -> Response:
            rows = [{"year": x["year"], "new_tenants": x["new_tenants"],
                     "completed": x["completed"],
                     "completion_rate": None if x["completion_percent"] is None
                     else round(x["completion_percent"] / 100, 3)}
                    for x in await course_rows(who)]
            return Response(csv_text(rows), media_type="text/csv", headers={
                "content-disposition": 'attachment; filename="course-completion.csv"'})
        return await web.page(request, work)

    @r.get("/ivo")
    async def ivo(request: Request) -> Response:
        q = dict(request.query_params)

        async def work(who: Principal) -> Response:
            quarter = q.get("quarter") or quarter_of(cases.today())
            result = await T(cases.report, who, "ivo", ReportOptions(quarter=quarter))
            return web.render(request, "ivo.html", result=result, quarter=quarter)
        return await web.page(request, work)

    @r.get("/reports/{name}.csv")
    async def report_csv(request: Request, name: str) -> Response:
        q = dict(request.query_params)

        async def work(who: Principal) -> Response:
            options = _options(q, "date_from", "date_to", "as_of", "by", "interval", "quarter",
                               "programme", "target_group", "district", "year")
            try:
                result = await T(cases.report, who, name, options, q.get("case") or None)
            except BadInput as exc:  # `--district: ...`, known only once the report reads
                raise _field_named(exc) from None
            return Response(csv_text(csv_rows(result)), media_type="text/csv", headers={
                "content-disposition": f'attachment; filename="{name}.csv"'})
        return await web.page(request, work)

    @r.get("/audit-review")
    async def audit_review(request: Request) -> Response:
        q = request.query_params

        async def work(who: Principal) -> Response:
            month = q.get("month") or cases.today().strftime("%Y-%m")
            if len(month) != 7 or month[4] != "-":
                raise BadInput("month: YYYY-MM")
            rows = await T(cases.audit_review, who, month)
            return web.render(request, "audit_review.html", month=month,
                              rows=[r.model_dump(mode="json") for r in rows])
        return await web.page(request, work)

    @r.get("/accessibility")
    async def accessibility(request: Request) -> Response:
        try:
            web.signed_in(request)
        except NeedSignIn:
            pass
        return web.render(request, "accessibility.html", contact=web.web.accessibility_contact,
                          reviewed=web.web.accessibility_reviewed.isoformat())

    app.include_router(r)

