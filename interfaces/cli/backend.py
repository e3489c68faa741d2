"""Where the CLI's commands go: the application layer in this process (the embedded stack,
as the local operator), or a remote installation's HTTP API (`HOUSING_CHAIN_API_URL` and a
token), so that in production nobody but the API processes and the workers reaches
Temporal and the stores. Both answer the same calls with the same data and errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

from application import errors
from application.reporting import ReportOptions
from application.use_cases import UseCases, local_operator
from config.settings import Settings
from domain.access import Forbidden
from domain.views import LineResult
from interfaces.api.options import option_wording


class Local:
    """The application layer in-process, as the operator of the embedded stack (admin)."""

    def __init__(self, settings: Settings) -> None:
        self.use_cases = UseCases(settings)
        self.who = local_operator()

    async def submit_step(self, fields: dict[str, Any], command_id: str | None,
                          on_behalf_of: str | None) -> LineResult:
        return await self.use_cases.submit_step(self.who, fields, command_id=command_id,
                                                on_behalf_of=on_behalf_of)

    async def submit_notice_step(self, fields: dict[str, Any], command_id: str | None,
                                 on_behalf_of: str | None) -> LineResult:
        return await self.use_cases.submit_notice_step(self.who, fields, command_id=command_id,
                                                       on_behalf_of=on_behalf_of)

    async def status(self, case: str) -> dict[str, Any]:
        return await self.use_cases.status(self.who, case)

    async def notice_status(self, notice: str) -> dict[str, Any]:
        return await self.use_cases.notice_status(self.who, notice)

    async def history(self, case: str) -> dict[str, Any]:
        return self.use_cases.history(self.who, case)

    async def report(self, name: str, options: ReportOptions, case: str | None,
                     wait: float) -> dict[str, Any]:
        return self.use_cases.report(self.who, name, options, case=case, wait=wait)

    async def worklist(self, actor: str | None, days: int, as_of: date | None) -> dict[str, Any]:
        return self.use_cases.worklist(self.who, actor, days, as_of, everyone=actor is None)

    async def import_lines(self, raw: list[str], source: str, actor: str, strict: bool,
                           parallel: int, progress: Callable[[int], None] | None,
                           total: Callable[[int], None] | None) -> dict[str, Any]:
        report = await self.use_cases.import_lines(
            self.who, raw, source, default_actor=actor, strict=strict, parallel=parallel,
            progress=progress, total=total)
        return {**report.as_json(), "duplicates": report.duplicates,
                "stopped_early": report.stopped_early, "stages": report.stages}


PROBLEMS: dict[int, type[Exception]] = {
    401: errors.Unauthenticated, 403: Forbidden, 404: errors.NotFound, 409: errors.Refused,
    422: errors.BadInput, 503: errors.Unavailable,
}


class Remote:
    """The same calls over the HTTP API of a remote installation."""

    def __init__(self, settings: Settings) -> None:
        import httpx

        if not settings.api_token:
            raise errors.Unauthenticated(
                "HOUSING_CHAIN_API_URL is set but HOUSING_CHAIN_API_TOKEN is not: sign in and "
                "set the token the identity provider gave you")
        self.http = httpx.AsyncClient(
            base_url=settings.api_url or "", timeout=120.0,
            headers={"Authorization": f"Bearer {settings.api_token}"})

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            response = await self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise errors.Unavailable(f"the API at {self.http.base_url} does not answer: {exc}") \
                from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail") or response.text
            except ValueError:
                detail = response.text
            raise PROBLEMS.get(response.status_code, errors.UseCaseError)(detail)
        return response.json()

    async def submit_step(self, fields: dict[str, Any], command_id: str | None,
                          on_behalf_of: str | None) -> LineResult:
        body = {k: v for k, v in fields.items() if k != "case" and v is not None}
        if on_behalf_of:
            body["actor"] = on_behalf_of
        headers = {"Idempotency-Key": command_id} if command_id else {}
        case = fields.get("case")
        path = f"/api/cases/{case}/steps" if case else "/api/apartments/steps"
        return LineResult.model_validate(await self._call("POST", path, json=body, headers=headers))

    async def submit_notice_step(self, fields: dict[str, Any], command_id: str | None,
                                 on_behalf_of: str | None) -> LineResult:
        body = {k: v for k, v in fields.items() if k != "notice" and v is not None}
        if on_behalf_of:
            body["actor"] = on_behalf_of
        headers = {"Idempotency-Key": command_id} if command_id else {}
        return LineResult.model_validate(await self._call(
            "POST", f"/api/notices/{fields['notice']}/steps", json=body, headers=headers))

    async def status(self, case: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/cases/{case}")

    async def notice_status(self, notice: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/notices/{notice}")

    async def history(self, case: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/cases/{case}/history")

    async def report(self, name: str, options: ReportOptions, case: str | None,
                     wait: float) -> dict[str, Any]:
        params = options.model_dump(mode="json", exclude_none=True)
        # the API's names for the period's ends (`from`, `to`: GET /api/reports/{name})
        for field, query in (("date_from", "from"), ("date_to", "to")):
            if field in params:
                params[query] = params.pop(field)
        if name == "history" and not params:
            return await self.history(case or "")
        if case:  # the server refuses it (or history's options) with the use case's message
            params["case"] = case
        try:
            return await self._call("GET", f"/api/reports/{name}", params=params)
        except errors.BadInput as exc:  # the API names its query parameters: say the options
            raise errors.BadInput(option_wording(str(exc))) from None

    async def worklist(self, actor: str | None, days: int, as_of: date | None) -> dict[str, Any]:
        params: dict[str, Any] = {"days": days}
        if actor:
            params["actor"] = actor
        if as_of:
            params["as_of"] = as_of.isoformat()
        return await self._call("GET", "/api/worklist", params=params)

    async def import_lines(self, raw: list[str], source: str, actor: str, strict: bool,
                           parallel: int, progress: Callable[[int], None] | None,
                           total: Callable[[int], None] | None) -> dict[str, Any]:
        body = ("\n".join(raw) + "\n").encode("utf-8")
        params = {"source": source, "actor": actor, "strict": str(strict).lower()}
        summary: dict[str, Any] = {}
        done = 0
        async with self.http.stream("POST", "/api/imports", content=body, params=params,
                                    headers={"Content-Type": "application/x-ndjson"}) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                raise PROBLEMS.get(resp.status_code, errors.UseCaseError)(resp.text)
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if "summary" in item:
                    summary = item["summary"]
                elif "done" in item:  # lines done so far, of the lines read well
                    if total and not done:
                        total(item["lines"])
                    if progress:
                        progress(item["done"] - done)
                    done = item["done"]
        return summary


def backend_for(settings: Settings) -> Local | Remote:
    return Remote(settings) if settings.api_url else Local(settings)
