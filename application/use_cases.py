"""Every use case of the engine, for every interface: one method each.

The CLI, the HTTP API and the web pages parse their input, call a method here with the
signed-in `Principal`, and render what it returns; none of them decides anything. Each
method follows the same order: find what the rules need to know (the case's unit and who
is assigned, from the event store), ask the access rules (domain/access.py), do the work
(a step through the case's workflow, a read from the event store or the read models), and
append an access record before answering: no record, no answer. A refused permission is
recorded too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from pydantic import TypeAdapter, ValidationError

from application import gateway as gw
from application.audit import AccessLog, AccessRecord, Anchor, AnchorFile
from application.errors import BadInput, Forbidden, NotFound, Refused, Unavailable
from application.free_text import has_text, note_context, seal_fields, sealer_for, text_context
from application.importer import ImportReport, Refusal, describe, parse, run_import
from application.keys import KeyRing, KeysError, request_digest
from application.memo import ByPosition, read_logged
from application.preferences import Preferences
from application.readmodels import keyring_for, projection_for
from application.reporting import (
    OPTION_NAMES,
    REPORT_NAMES,
    ReportOptions,
    check_options,
    report_options,
    run_report,
)
from application.store import HousingChain, IdentityRegistry, NumberClaimed
from config.settings import Settings
from domain import access
from domain.access import CaseScope, Principal
from domain.commands import FREE_TEXT, TYPED, Actor, ApplyLine, ClientId, import_line_adapter
from domain.errors import DomainError
from domain.personal_number import find_personal_number, parse_personal_number
from domain.policy import Policy
from domain.steps import BY_TYPE
from domain.text import clean_text
from domain.views import LineResult
from projections import listings, reports
from projections import worklist as worklists
from projections.caseload import KeptCaseload
from projections.runner import Behind
from projections.worklist import KeptWorklists

log = structlog.get_logger("use_cases")


class UseCases:
    """The application layer over one installation (its settings: stores, Temporal)."""

    def __init__(self, settings: Settings, policy: Policy | None = None) -> None:
        self.settings = settings
        self.policy = policy or settings.policy()
        self._lock = threading.Lock()
        self._view_lock = threading.Lock()
        self._answers = ByPosition()  # reports and worklists, while the read models stand still
        self._worklists = KeptWorklists()  # brought up to date case by case after a step
        self._caseload = KeptCaseload()  # likewise: a home visit changes it
        self._store: HousingChain | None = None
        self._identities: IdentityRegistry | None = None
        self._runner: Any = None
        self._audit: AccessLog | None = None
        self._preferences: Preferences | None = None
        self._clients: dict[int, gw.ChainClient] = {}
        self._codec: Any = None
        self._keyring: KeyRing | None = None

    # --- what the use cases stand on, opened on first use ----------------------------------

    def _opened(self, name: str, open_it: Callable[[], Any]) -> Any:
        """The store, view or log `name`, opened on first use (under the lock)."""
        with self._lock:
            if getattr(self, name) is None:
                setattr(self, name, open_it())
            return getattr(self, name)

    @property
    def store(self) -> HousingChain:
        def open_store() -> HousingChain:
            store = HousingChain(env=self.settings.event_store_env("events"))
            store.keyring = self._keyring_locked()
            return store
        return self._opened("_store", open_store)

    @property
    def identities(self) -> IdentityRegistry:
        def open_identities() -> IdentityRegistry:
            registry = IdentityRegistry(env=self.settings.event_store_env("identities"))
            registry.keyring = self._keyring_locked()
            return registry
        return self._opened("_identities", open_identities)

    @property
    def keyring(self) -> KeyRing:
        """The installation's per-client data keys (free text and identities are encrypted)."""
        with self._lock:
            return self._keyring_locked()

    def _keyring_locked(self) -> KeyRing:
        if self._keyring is None:
            self._keyring = keyring_for(self.settings)
        return self._keyring

    @property
    def runner(self) -> Any:
        return self._opened("_runner", lambda: projection_for(self.settings))

    @property
    def audit(self) -> AccessLog:
        return self._opened("_audit", lambda: AccessLog(self.settings.audit_env(),
                                                        self.settings.data / "audit.sqlite"))

    @property
    def preferences(self) -> Preferences:
        return self._opened("_preferences", lambda: Preferences(
            self.settings.audit_env(), self.settings.data / "preferences.sqlite"))

    def language_of(self, who: Principal) -> str | None:
        """The language `who` chose for the pages (and their mails); None when not chosen."""
        return self.preferences.language(who.subject)

    def choose_language(self, who: Principal, language: str) -> None:
        """Kept for `who` wherever they sign in next, in any browser."""
        try:
            self.preferences.choose_language(who.subject, language)
        except ValueError as exc:
            raise BadInput(f"language: {exc}") from None
        log.info("language chosen", language=language)

    async def chain(self) -> gw.ChainClient:
        """The Temporal gateway, one client per event loop."""
        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            client = await gw.connect(self.settings)
            self._clients[loop] = gw.ChainClient(client, self.settings, self.policy,
                                                 recorded=lambda case: self.store.recorded(case))
        return self._clients[loop]

    def today(self) -> date:
        return gw.today_in(self.policy)

    # --- access: the rules, then the record --------------------------------------------------

    def scope(self, case: str, who: Principal | None = None) -> CaseScope:
        """The case's unit and who is assigned to it now, from the event store. Given `who`,
        the apartment (for its landlord) is read only when `who` is a landlord: the landlord
        is used by the rules and the access record for landlords alone (access.relation)."""
        try:
            c = self.store.get_case(case)
        except DomainError:
            return CaseScope(case=case, exists=False)
        landlord = None
        if c.apartment and (who is None or who.has(access.Role.LANDLORD)):
            try:
                landlord = self.store.get_apartment(c.apartment).landlord
            except DomainError:
                landlord = None
        return CaseScope(case=case, district=c.district, client=c.client_id,
                         caseworker=c.caseworker, housing_pilot=c.housing_pilot,
                         landlord=landlord)

    def record(self, who: Principal, action: str, *, case: str | None = None,
               scope: CaseScope | None = None, report: str | None = None,
               params: dict[str, str] | None = None, outcome: str = "allowed") -> AccessRecord:
        case, params = _masked(case, params)
        return self.audit.append(
            subject=who.subject, roles=sorted(who.roles), units=sorted(who.units), action=action,
            case=case, report=report, params=params, address=who.address or "local",
            outcome=outcome, case_unit=scope.district if scope else None,
            relation=access.relation(who, scope) if scope else "none",
        )

    def allow(self, who: Principal, action: str, check: Callable[[], None], **where: Any) -> None:
        """Run an access rule; a refusal is recorded before it is raised."""
        try:
            check()
        except Forbidden:
            self.record(who, action, outcome="denied", **where)
            raise

    def readable_case(self, who: Principal, case: str, action: str,
                      params: dict[str, str] | None = None) -> CaseScope:
        refuse_personal_numbers(case=case)
        scope = self.scope(case)
        if not scope.exists:  # on record either way; who may know tells it does not exist
            self.record(who, action, case=case, params=params, outcome="denied")
            if who.is_admin or who.has(access.Role.CASEWORKER, access.Role.SUPERVISOR):
                raise NotFound(f"case {case} does not exist")
            access.check_read_case(who, scope)  # the words of a case that is not theirs
            raise Forbidden(f"{who.subject} may not read case {case}")
        self.allow(who, action, lambda: access.check_read_case(who, scope), case=case,
                   scope=scope, params=params)
        return scope

    # --- steps ------------------------------------------------------------------------------

    def parse_step(self, fields: dict[str, Any], who: Principal, *, command_id: str | None = None,
                   on_behalf_of: str | None = None) -> Any:
        """One step from its fields: defaults (today, the signed-in person, a new command id)
        filled in, validated by the import format's models; BadInput names the field."""
        fields = self.filled_in(fields, who, command_id=command_id, on_behalf_of=on_behalf_of)
        try:
            return import_line_adapter.validate_python(fields, context=TYPED)
        except ValidationError as exc:
            raise BadInput(describe(exc)) from None

    def filled_in(self, fields: dict[str, Any], who: Principal, *, command_id: str | None,
                  on_behalf_of: str | None) -> dict[str, Any]:
        """A step's fields (a case's, the stock's, a notice's) with the defaults: today, the
        signed-in person, the request's command id or a new one. An empty id or actor is a
        mistake to say, not "none given": an empty id would take every retry anew."""
        fields = {k: v for k, v in fields.items() if v is not None}
        if "actor" in fields and on_behalf_of is None and not who.is_admin:
            raise BadInput("actor: the actor of a step is the signed-in person")
        for name, value in (("id", fields.get("id")), ("actor", fields.get("actor")),
                            ("id", command_id)):
            if isinstance(value, str) and not value.strip():
                raise BadInput(f"{name}: empty; give one, or leave it out")
        given = fields.get("id")
        if command_id is not None and given is not None and given != command_id:
            raise BadInput(f"id: {given!r} in the step, {command_id!r} as the request's "
                           "command id (Idempotency-Key); give one of them")
        fields.setdefault("on", self.today().isoformat())
        fields["actor"] = on_behalf_of or fields.get("actor") or who.subject
        fields["id"] = command_id or given or new_command_id(who.subject)
        return fields

    def check_reason_code(self, line: Any) -> None:
        """A refusal or denial recorded by a person names its coded reason (an import file
        from before the codes may leave it out: the case codes it `other`)."""
        kind = refusal_kind(line)
        if kind and not line.reason_code:
            said = {"denial": "denial", "landlord": "landlord's refusal",
                    "takeover": "refused takeover"}[kind]
            raise BadInput(f"reason_code: a {said} needs one of the policy's codes: "
                           f"{', '.join(self.policy.reason_codes_for(kind))}")

    async def submit_step(self, who: Principal, fields: dict[str, Any], *,
                          command_id: str | None = None,
                          on_behalf_of: str | None = None) -> LineResult:
        """A step on a case or on the stock, as the signed-in person (or, for the admin
        recording older records, on behalf of another actor)."""
        line = self.parse_step(fields, who, command_id=command_id, on_behalf_of=on_behalf_of)
        spec = BY_TYPE[line.type]
        case = getattr(line, "case", None)
        params = {"type": line.type, "command_id": line.id or ""}
        scope: CaseScope | None = None
        if line.type == "apply":
            district = line.client.district
            self.allow(who, "case.step", lambda: access.check_apply(who, line.case, district),
                       case=line.case, params=params)
            if not who.is_admin:
                await asyncio.to_thread(self._check_known_client, who, line, params)
        elif spec.target == "case":
            # the lookup and the rule in one hop to a thread (a refusal's record too)
            scope = await asyncio.to_thread(self._step_scope, who, line.type, case, params)
        else:
            landlord = await asyncio.to_thread(self._landlord_of, line.apartment)
            self.allow(who, "stock.step", lambda: access.check_stock_step(
                who, line.type, line.apartment, landlord),
                params={**params, "apartment": line.apartment})
        try:
            self.check_reason_code(line)
            return await self._submit_allowed(who, line, fields, scope, params,
                                              command_id=command_id)
        except (Refused, BadInput):
            # allowed by the rules, refused by the case (or the registry): on record too
            await asyncio.to_thread(
                self.record, who, "case.step" if case else "stock.step", case=case,
                scope=scope, params=params, outcome="refused")
            raise
        except BaseException as exc:
            # no answer from the case (an outage, a cancelled request, an error): on record
            # as well; whether the step was taken, the case's history tells
            try:
                await asyncio.to_thread(
                    self.record, who, "case.step" if case else "stock.step", case=case,
                    scope=scope, params={**params, "error": type(exc).__name__},
                    outcome="failed")
            except Exception:  # noqa: BLE001 - the step's own error is the answer
                log.exception("access record of a failed step not written", case=case)
            raise

    def _landlord_of(self, apartment: str) -> str | None:
        """The landlord of a registered apartment, for the stock's access rule; None if not
        registered."""
        try:
            return self.store.get_apartment(apartment).landlord
        except DomainError:
            return None

    def _check_known_client(self, who: Principal, line: ApplyLine, params: dict[str, str]
                            ) -> None:
        """A new case for a client whose identity is registered: opened by a caseworker of a
        unit where the client has a case, or by one who gives the client's personal identity
        number (the person is in front of them). Anyone else could otherwise attach a case of
        their own to the client and reveal the name and number through it."""
        self._check_new_id(who, self.scope(line.case), "case", params)
        c = line.client
        if self._may_attach(who, c.id, c.personal_number):
            return
        self.record(who, "case.step", case=line.case, params={**params, "client": c.id},
                    outcome="denied")
        raise Forbidden(f"{who.subject} may not open case {line.case} for client {c.id}: the "
                        "client is registered with another unit; give the client's personal "
                        "identity number to open a case for them here")

    def _check_notice_client(self, who: Principal, notice: str, client: str,
                             params: dict[str, str]) -> None:
        """A notice for a registered client, by the rule of a new case (`_check_known_client`):
        the case its `open_case` opens would reveal the client's name and number too. A
        notice carries no personal identity number, so only a caseworker of a unit where the
        client has a case registers one."""
        self._check_new_id(who, self.notice_scope(notice), "notice", params)
        if self._may_attach(who, client, None):
            return
        self.record(who, "notice.step", params={**params, "notice": notice, "client": client},
                    outcome="denied")
        raise Forbidden(f"{who.subject} may not register notice {notice} for client {client}: "
                        "the client is registered with another unit")

    def _check_new_id(self, who: Principal, scope: CaseScope, kind: str,
                      params: dict[str, str]) -> None:
        """An id already taken, told without its stage to whoever may not read it (the
        case's or notice's own refusal names the stage)."""
        if not scope.exists or who.is_admin:
            return
        try:
            access.check_read_case(who, scope)
        except Forbidden:
            case = scope.case if kind == "case" else None
            self.record(who, f"{kind}.step", case=case, scope=scope,
                        params=params if case else {**params, "notice": scope.case},
                        outcome="refused")
            raise Refused(f"{kind} {scope.case} already exists; a new "
                          f"{'application' if kind == 'case' else 'notice'} needs a new "
                          f"{kind} id") from None

    def _may_attach(self, who: Principal, client: str, personal_number: str | None) -> bool:
        if self.identities.lookup(client) is None:
            return True
        if personal_number and self.identities.holds(client, personal_number):
            return True
        units = {d for (d,) in self.caught_up_view().rows(
            "SELECT DISTINCT district FROM rm_cases WHERE client_id = ? AND district IS NOT NULL",
            (client,))}
        return who.has(access.Role.CASEWORKER) and bool(units & who.units)

    async def _submit_allowed(self, who: Principal, line: Any, fields: dict[str, Any],
                              scope: CaseScope | None, params: dict[str, str], *,
                              command_id: str | None) -> LineResult:
        spec = BY_TYPE[line.type]
        case = getattr(line, "case", None)
        client = scope.client if scope else None
        if (client and line.type in FREE_TEXT and has_text(line, FREE_TEXT[line.type])):
            def sealed(plain: Any = line) -> tuple[Any, str]:  # the digest after the sealing
                return self.seal_case_step(plain, client), self.request_digest(plain, client)

            line, digest = await asyncio.to_thread(sealed)
        else:
            digest = self.request_digest(line, client)
        if case:  # the request as sent, to tell a retry from another step under its key
            params["request"] = digest
        identity = None
        if isinstance(line, ApplyLine):
            c = line.client
            identity = (c.id, c.name, c.personal_number) if (c.name or c.personal_number) else None
            if identity:  # refused before the case is opened, not after
                try:
                    await asyncio.to_thread(self.identities.check, *identity)
                except NumberClaimed as exc:
                    # the other client may be another unit's: only the admin learns which
                    raise Refused(str(exc) if who.is_admin else (
                        f"client {c.id}: this personal identity number is already registered "
                        "under another client id (an admin can tell which)")) from None
                except DomainError as exc:
                    raise Refused(str(exc)) from None
            line = line.without_identity()
        chain = await self.chain()
        callers_id = bool(command_id or fields.get("id"))
        # a retry with the caller's command id: Temporal answers a known update id with its
        # first answer (duplicate=false), so the store says it was recorded already
        earlier = (await asyncio.to_thread(self.store.processed_step, line)
                   if callers_id else None)
        sent_as = uuid.uuid4().hex if callers_id else None
        if earlier is not None:
            result = earlier.model_copy(update={"duplicate": True})
        elif spec.target == "stock":
            result = await chain.send_stock(line, recorded_by=who.subject, request=digest,
                                            sent_as=sent_as)
        else:
            result = await chain.send(line, recorded_by=who.subject, request=digest,
                                      sent_as=sent_as)
        if not result.accepted:
            raise Refused(result.reason or "refused")

        def settle() -> None:  # one hop to a thread: the retry's check, the identity, the record
            nonlocal result
            if callers_id:
                # also after a send: two requests at once under one key get one answer, the
                # first's, and the marker tells which request that was
                first = self._check_retry(who, line, digest)
                if first.get("sent_as", sent_as) != sent_as and not result.duplicate:
                    result = result.model_copy(update={"duplicate": True})
            # a duplicate changes nothing: the identity only if its recording was cut short
            if identity and not (result.duplicate and self.identities.lookup(identity[0])):
                self.identities.record(*identity)
            where = scope if scope is not None or not case else self.scope(case)
            self.record(who, "case.step" if case else "stock.step", case=case, scope=where,
                        params={**params, "duplicate": str(result.duplicate).lower()})

        await asyncio.to_thread(settle)
        return result

    def request_digest(self, line: Any, client: str | None,
                       texts: tuple[str, ...] | None = None) -> str:
        """The keyed digest of a step as parsed (so `2` and `2.0`, a default left out or
        given, and the order of fields make no difference) and before it is sealed (sealed
        text differs at every sealing), without the command id, which is the key it is
        compared under. The client's name and number are left out (the identity register
        checks them itself) and typed text is in it by its own digest under the client's
        data key (made when the text was sealed): erasing the client destroys that key, so
        nothing typed can be confirmed from a digest after."""
        given = line.model_dump(mode="json", exclude={"id"})
        if isinstance(given.get("client"), dict):
            given["client"] = {k: v for k, v in given["client"].items()
                               if k not in ("name", "personal_number")}
        texts = FREE_TEXT.get(line.type) if texts is None else texts  # a notice's: its own
        if texts:  # without a text key (no keys, erased) text is not compared
            key = (self.keyring.data_key(client, create=False)
                   if client and self.keyring is not None else None)
            given = _texts_replaced(given, texts, lambda text: request_digest(
                None, text, key) if key else "")
        return request_digest(self.keyring, json.dumps(
            given, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str))

    def _check_retry(self, who: Principal, line: Any, digest: str) -> dict[str, Any]:
        """A command id taken before answers as a duplicate only for the same step sent again
        by the same person with the same fields: another step type, another person or other
        fields under the key is a conflict (the first answer would be taken for this
        request's). The step's marker, saved with its events before any answer, says what
        was sent first; markers from before this rule lack what they cannot tell."""
        first = self.store.first_sent(line)
        case, notice = getattr(line, "case", None), getattr(line, "notice", None)
        where = f"notice {notice}" if notice else f"case {case}" if case else "the stock"
        retry = "a new step needs a new Idempotency-Key (command id)"
        if first.get("step_type", line.type) != line.type:
            raise Refused(f"{where}: the command id {line.id} was used for a step "
                          f"{first['step_type']}; {retry}")
        if first.get("sent_by", who.subject) != who.subject:
            raise Refused(f"{where}: the command id {line.id} was used by another person's step;"
                          f" {retry}")
        if first.get("request", digest) != digest:
            raise Refused(f"{where}: the command id {line.id} was used for a step {line.type} "
                          f"with other fields; send the same fields to retry it, or {retry}")
        return first

    def seal_case_step(self, line: Any, client: str, erased: bool | None = None) -> Any:
        """The step with its free text sealed with the client's key (application/free_text)."""
        return self._seal(line, FREE_TEXT[line.type], client, text_context(line.case), erased)

    def _seal(self, step: Any, paths: tuple[str, ...], client: str, context: str,
              erased: bool | None = None) -> Any:
        if self.keyring is None:  # HOUSING_CHAIN_CODEC=off, the benchmark's baseline
            return step
        if erased is None:
            erased = self.identities.erased_on(client) is not None
        return seal_fields(step, paths, sealer_for(self.keyring, client, context, erased))

    def _step_scope(self, who: Principal, step_type: str, case: str,
                    params: dict[str, str]) -> CaseScope:
        """The scope of a step on an existing case, the access rule asked, a refusal recorded."""
        scope = self.scope(case, who)
        if not scope.exists:
            self.record(who, "case.step", case=case, params=params, outcome="denied")
            if who.is_admin or who.has(access.Role.CASEWORKER):
                raise NotFound(f"case {case} does not exist: apply first")
            access.check_step(who, step_type, scope)  # the words of a case that is not theirs
            raise Forbidden(f"{who.subject} may not take the step {step_type} on case {case}")
        self.allow(who, "case.step", lambda: access.check_step(who, step_type, scope),
                   case=case, scope=scope, params=params)
        return scope

    # --- reading a case ---------------------------------------------------------------------

    async def status(self, who: Principal, case: str) -> dict[str, Any]:
        """Where the case stands (from the event store), the steps allowed now and what is
        due (from the case's workflow, which keeps the timers)."""
        scope = await asyncio.to_thread(self.readable_case, who, case, "case.read")
        c = await asyncio.to_thread(self.store.get_case, case)
        due: list[dict[str, Any]] = []
        # a closed case's run has completed: nothing is due, and no timer is to be missed
        workflow = "closed" if c.stage.value == "closed" else "running"
        if workflow == "running":
            try:
                st = await (await self.chain()).status(case)
                due = [d.model_dump(mode="json") for d in st.due]
            except (Refused, Unavailable) as exc:
                workflow = "unavailable" if isinstance(exc, Unavailable) else "missing"
        view = {
            "case": case, "client": c.client_id, "stage": c.stage.value,
            "stage_label": c.stage_label, "outcome": c.outcome, "district": c.district,
            "target_group": c.target_group, "household": {"adults": c.household[0],
                                                          "children": c.household[1]},
            "housing_situation": c.housing_situation, "referral": c.referral,
            "programme": c.programme, "apartment": c.apartment, "caseworker": c.caseworker,
            "housing_pilot": c.housing_pilot, "applied_on": c.applied_on.isoformat(),
            "decision_date": c.decision_date.isoformat() if c.decision_date else None,
            "move_in_date": c.move_in_date.isoformat() if c.move_in_date else None,
            "last_on": c.last_on.isoformat() if c.last_on else None,
            "allowed": c.allowed(), "exits": c.allowed_exits(), "due": due,
            "workflow": workflow, "case_file": case_file_facts(c, self.policy),
        }
        await asyncio.to_thread(self.record, who, "case.read", case=case, scope=scope)
        return view


    def history(self, who: Principal, case: str) -> dict[str, Any]:
        """Every event of the case, from the event store: the audit trail."""
        scope = self.readable_case(who, case, "case.history")
        result = reports.case_history(self.store, case)
        self.record(who, "case.history", case=case, scope=scope)
        return result

    def reveal_identity(self, who: Principal, case: str) -> dict[str, Any]:
        """The client's name and personal identity number: an explicit, logged reveal."""
        scope = self.readable_case(who, case, "identity.reveal")
        self.allow(who, "identity.reveal", lambda: access.check_reveal(who, scope), case=case,
                   scope=scope)
        client = self.store.get_case(case).client_id
        identity = self.identities.lookup(client)
        self.record(who, "identity.reveal", case=case, scope=scope)
        if identity is None:
            raise NotFound(f"no identity is recorded for the client of case {case}")
        return {"case": case, "client": client, "name": identity.name,
                "personal_number": identity.personal_number}

    def access_log(self, who: Principal, case: str, limit: int = 200) -> dict[str, Any]:
        refuse_personal_numbers(case=case)
        scope = self.scope(case)
        if not scope.exists and (who.is_admin or who.has(access.Role.SUPERVISOR)):
            self.record(who, "access_log.read", case=case, outcome="denied")
            raise NotFound(f"case {case} does not exist")
        self.allow(who, "access_log.read", lambda: _check_access_log(who, scope), case=case,
                   scope=scope)
        rows = [r.model_dump(mode="json") for r in self.audit.for_case(case, limit=limit)]
        self.record(who, "access_log.read", case=case, scope=scope)
        return {"case": case, "rows": rows}

    # --- read models ------------------------------------------------------------------------

    def caught_up_view(self, wait: float = 30.0) -> Any:
        """The read models, at least as far as the event store's head when called (read your
        writes). Only the catching up is one thread at a time; the reads that follow run side
        by side, each on a connection of its own (a report does not wait for another)."""
        runner = self.runner
        with self._view_lock:
            try:
                runner.wait_or_catch_up(runner.head(), timeout=wait)
            except Behind as exc:
                raise Unavailable(str(exc)) from None
        return runner.view

    def worklist(self, who: Principal, actor: str | None = None, days: int = 14,
                 as_of: date | None = None, everyone: bool = False,
                 kind: str | None = None) -> dict[str, Any]:
        """What is due and overdue: the signed-in person's own, or (supervisors, the admin)
        another actor's or everyone's; the rows of one kind only when `kind` is given (the
        counts and `kinds` are of the whole list)."""
        refuse_personal_numbers(actor=actor)
        whose = None if everyone else (actor or who.subject)
        if whose != who.subject:
            self.allow(who, "worklist.read",
                       lambda: access.check_role(who, "read another person's worklist",
                                                 access.Role.SUPERVISOR),
                       params={"actor": whose or "everyone"})
        as_of = as_of or self.today()
        if days > (date.max - as_of).days:
            raise BadInput(f"as_of: {as_of} and {days} days on are past the end of the calendar")
        view = self.caught_up_view()
        position = self.runner.position
        # another person's list or everyone's, for a supervisor: the cases they may read
        limited = whose != who.subject and not access.report_lists_every_case(who)
        asked = None if limited else kind
        result = self._answers.get(position, ("worklist", whose, as_of, days, asked),
                                   lambda: self._worklists.worklist(
                                       view, position, self.runner.changed_cases, whose,
                                       self.policy, as_of, days, asked))
        if limited:
            readable = self._readable_cases(who, view, position)
            result = {**worklists.cases_only(result, readable.__contains__, kind),
                      "cases_of": {"units": sorted(who.units), "assigned_to": who.subject}}
        self.record(who, "worklist.read", params={"actor": whose or "everyone"})
        return result

    def warm_worklists(self) -> None:
        """Compute today's items of every open case, and the caseload, ahead of the first
        request that needs them (in a new process, on a new day): about a second at 50,000
        cases, after which a worklist or the dashboard after a step costs milliseconds
        (projections/worklist.py, KeptWorklists; projections/caseload.py, KeptCaseload)."""
        runner = self.runner
        try:  # a projection running beside this (up, the worker) catches up: do not race it
            runner.wait(runner.head(), timeout=120.0)
        except Behind:
            pass
        view = self.caught_up_view(wait=300.0)
        position, today = self.runner.position, self.today()
        self._worklists.worklist(view, position, self.runner.changed_cases, None,
                                 self.policy, today, 0)
        self._caseload.rows(view, position, self.runner.changed_cases, today, self.policy)

    async def keep_worklists_warm(self) -> None:
        """`warm_worklists` as the server starts and again just after each midnight (the
        policy's time zone), so that nobody's first worklist of the day waits for them."""
        loop = asyncio.get_running_loop()
        while True:
            done: asyncio.Future[str | None] = loop.create_future()

            def warm(done: asyncio.Future[str | None] = done) -> None:
                try:
                    self.warm_worklists()
                    error = None
                except Exception as exc:  # noqa: BLE001 - the first request computes them
                    error = str(exc)
                try:
                    loop.call_soon_threadsafe(
                        lambda: done.cancelled() or done.set_result(error))
                except RuntimeError:  # the server has stopped meanwhile
                    pass

            # a daemon thread, not the loop's executor: a server that stops does not wait
            # for a warm-up still waiting for the read models
            threading.Thread(target=warm, name="warm-worklists", daemon=True).start()
            error = await done
            if error is not None:
                log.warning("worklists not computed ahead", error=error)
            now = datetime.now(ZoneInfo(self.policy.time_zone))
            midnight = datetime.combine(now.date() + timedelta(days=1), time(0, 1), now.tzinfo)
            await asyncio.sleep((midnight - now).total_seconds())

    def report(self, who: Principal, name: str, options: ReportOptions,
               case: str | None = None, wait: float = 30.0) -> dict[str, Any]:
        """A report by name (options checked against what it takes); `history` is a case's
        audit trail and follows the case's access rules."""
        refuse_personal_numbers(case=case, **options.given())
        if name == "history":
            if not case:
                raise BadInput("report history needs a case: housing-chain report history CASE")
            given = [OPTION_NAMES[k] for k in options.model_dump(exclude_none=True)]
            if given:
                raise BadInput(f"report history does not take {', '.join(given)} (it takes a "
                               "case only)")
            return self.history(who, case)
        if name not in REPORT_NAMES:
            raise BadInput(f"no report {name!r}; reports: {', '.join(REPORT_NAMES)}")
        if case:
            raise BadInput(f"report {name} does not take a case ({case!r}); only history does")
        self.allow(who, "report.read", lambda: access.check_report(who, name), report=name,
                   params=options.given())
        try:
            check_options(name, options)
            view, today = self.caught_up_view(wait), self.today()
            position = self.runner.position
            question = ("report", name, options.model_dump_json(), today)
            kept = self._kept_caseload(view, position, options, today) if name == "caseload" \
                else None
            result = kept if kept is not None else self._answers.get(
                position, question,
                lambda: read_logged(view, lambda v: run_report(v, name, options, self.policy,
                                                               today, who.units)),
                view.changes)
        except reports.ReportError as exc:
            raise BadInput(str(exc)) from None
        if name in reports.CASE_LISTS and not access.report_lists_every_case(who):
            readable = self._readable_cases(who, view, position)
            result = {**reports.cases_only(name, result, readable.__contains__, options.by),
                      "cases_of": {"units": sorted(who.units), "assigned_to": who.subject}}
        self.record(who, "report.read", report=name, params=options.given())
        return result

    def _readable_cases(self, who: Principal, view: Any, position: int) -> frozenset[str]:
        """The ids of the cases `who` may read (access.relation: their units' cases and those
        assigned to them), remembered while the read models stand still."""
        units = sorted(who.units)
        sql = ("SELECT case_id FROM rm_cases WHERE caseworker = ? OR assigned_pilot = ?"
               + (f" OR district IN ({', '.join('?' * len(units))})" if units else ""))
        return self._answers.get(
            position, ("readable cases", who.subject, tuple(units)),
            lambda: read_logged(view, lambda v: frozenset(
                c for (c,) in v.rows(sql, (who.subject, who.subject, *units)))),
            view.changes)

    def _kept_caseload(self, view: Any, position: int, options: ReportOptions,
                       today: date) -> dict[str, Any] | None:
        """The `caseload` report from the kept caseload (projections/caseload.py) and its
        course figures remembered while no move-in or course session changes; None for a
        date before the latest facts, which `reports.caseload` reads from the dated steps."""
        as_of = options.as_of or today
        rows = self._caseload.rows(view, position, self.runner.changed_cases, as_of, self.policy)
        if rows is None:
            return None
        course = self._answers.get(
            position, ("caseload course", options.date_from, options.date_to),
            lambda: read_logged(view, lambda v: reports.course_completion(
                v, options.date_from, options.date_to)), view.changes)
        return {"definition_version": reports.DEFINITION_VERSIONS["caseload"],
                "as_of": as_of.isoformat(), "rows": rows, "course": course}

    def unexecuted_per_quarter(self, who: Principal, quarters: list[str]) -> list[int]:
        """The `ivo` report's unexecuted decisions counted for each quarter (the dashboard's
        series), in one pass instead of one report a quarter; its access rule and record."""
        return self._figures(who, "ivo", {"quarters": ",".join(quarters)},
                             lambda view: reports.unexecuted_per_quarter(view, quarters))

    def unexecuted_series(self, who: Principal, quarters: list[str]) -> list[dict[str, Any]]:
        """The dashboard's IVO series (`reports.unexecuted_series`: counts, change, trend);
        the `ivo` report's access rule and record."""
        return self._figures(who, "ivo", {"series": ",".join(quarters)},
                             lambda view: reports.unexecuted_series(view, quarters))

    def course_completion_per_year(self, who: Principal, years: list[int]) -> list[dict[str, Any]]:
        """The `caseload` report's course completion for the tenants who moved in each year
        (the dashboard's series), in one pass; its access rule and record."""
        return self._figures(who, "caseload", {"years": ",".join(map(str, years))},
                             lambda view: reports.course_completion_per_year(view, years))

    def _figures(self, who: Principal, report: str, params: dict[str, str],
                 compute: Callable[[Any], Any]) -> Any:
        self.allow(who, "report.read", lambda: access.check_report(who, report), report=report,
                   params=params)
        try:
            view = self.caught_up_view()
            result = self._answers.get(self.runner.position,
                                       ("figures", report, tuple(sorted(params.items()))),
                                       lambda: read_logged(view, compute), view.changes)
        except reports.ReportError as exc:
            raise BadInput(str(exc)) from None
        self.record(who, "report.read", report=report, params=params)
        return result

    def apartments(self, who: Principal, as_of: date | None = None) -> dict[str, Any]:
        """The stock: each apartment, its status and who lives there; a landlord sees its own,
        and nothing personal: not the case living there nor its client (the social services'
        own, as `access.check_read_case` has it). `apartments` lists each apartment as it
        stands now."""
        options = report_options(as_of=as_of)  # a day of the calendar, or BadInput naming it
        if not who.has(access.Role.LANDLORD) or who.is_admin:
            result = self.report(who, "stock", options)
            view = self.caught_up_view()
            listed = listings.apartments(view, self.today())
            if not access.report_lists_every_case(who):  # who lives there: their cases only
                readable = self._readable_cases(who, view, self.runner.position)
                listed = [r if not r["case_id"] or r["case_id"] in readable else
                          {**r, "case_id": None, "client": None, "case_of_another_unit": True}
                          for r in listed]
            return {**result, "apartments": listed}
        view = self.caught_up_view()
        own = who.units | {who.subject}
        # every figure of its own apartments only, the totals too
        result = {"definition_version": reports.DEFINITION_VERSIONS["stock"],
                  **reports.stock(view, as_of or self.today(), "landlord", own)}
        result["apartments"] = [{k: v for k, v in r.items() if k not in listings.TENANT_FIELDS}
                                for r in listings.apartments(view, self.today())
                                if r.get("landlord") in own]
        self.record(who, "report.read", report="stock", params={"landlord": ",".join(sorted(own))})
        return result

    def notices(self, who: Principal, open_only: bool = True) -> dict[str, Any]:
        """The eviction-prevention notices (the open ones by default), most urgent first, each
        with its reach or 48-hour outreach clock; a caseworker or supervisor sees the notices
        of their units, the admin every notice."""
        self.allow(who, "notice.list", lambda: access.check_report(who, "evictions"),
                   params={"open_only": str(open_only).lower()})
        districts = None if who.is_admin else frozenset(who.units)
        now = datetime.now(UTC)
        rows = listings.notices(self.caught_up_view(), self.policy, now, open_only, districts)
        self.record(who, "notice.list", params={"open_only": str(open_only).lower(),
                                                "rows": str(len(rows))})
        return {"now": now.isoformat(timespec="minutes"), "open_only": open_only, "rows": rows}

    def projection_status(self, who: Principal) -> dict[str, Any]:
        self.allow(who, "projections.read",
                   lambda: access.check_role(who, "see the projections", access.Role.SUPERVISOR))
        runner = self.runner
        position, head = runner.position, runner.head()
        return {"projections": [{"projection": "ChainView", "position": position, "head": head,
                                 "behind": head - position}]}

    def rebuild_projections(self, who: Principal) -> dict[str, Any]:
        self.allow(who, "projections.rebuild",
                   lambda: access.check_role(who, "rebuild the read models"))
        with self._view_lock:
            covered = self.runner.rebuild()
            self._answers.clear()
            self._worklists.clear()
            self._caseload.clear()
        self.record(who, "projections.rebuild", params={"events": str(covered)})
        return {"events": covered, "position": self.runner.position}

    # --- eviction-prevention notices ------------------------------------------------------

    def notice_scope(self, notice: str) -> CaseScope:
        """A notice is scoped like a case: its district, and the pilot sent to the door."""
        from application.notice_store import get_notice

        try:
            n = get_notice(self.store, notice)
        except DomainError:
            return CaseScope(case=notice, exists=False)
        return CaseScope(case=notice, district=n.district, client=n.client_id,
                         housing_pilot=n.pilot)

    async def submit_notice_step(self, who: Principal, fields: dict[str, Any], *,
                                 command_id: str | None = None,
                                 on_behalf_of: str | None = None) -> LineResult:
        """A step on an eviction-prevention notice; a retry under the caller's key is told
        from another step under it as a case step's is (`_check_retry`)."""
        from domain.notice_commands import notice_step_adapter

        callers_id = bool(command_id or fields.get("id"))
        fields = self.filled_in(fields, who, command_id=command_id, on_behalf_of=on_behalf_of)
        try:
            step = notice_step_adapter.validate_python(fields, context=TYPED)
        except ValidationError as exc:
            raise BadInput(describe(exc)) from None
        params = {"type": f"notice.{step.type}", "command_id": step.id or "",
                  "notice": step.notice}
        scope = await asyncio.to_thread(self.notice_scope, step.notice)
        if step.type != "register" and not scope.exists:  # on record, as a case's (_step_scope)
            await asyncio.to_thread(self.record, who, "notice.step", params=params,
                                    outcome="denied")
            if who.is_admin or who.has(access.Role.CASEWORKER):
                raise NotFound(f"notice {step.notice} does not exist: register it first")
            access.check_step(who, _access_kind(step.type), scope, shown_as=step.type,
                              target="notice")
            raise Forbidden(f"{who.subject} may not take the step {step.type} on notice "
                            f"{step.notice}")
        if step.type == "register":
            district = step.district
            self.allow(who, "notice.step", lambda: access.check_apply(who, step.notice, district),
                       params=params)
            if not who.is_admin:
                await asyncio.to_thread(self._check_notice_client, who, step.notice,
                                        step.client, params)
        else:
            self.allow(who, "notice.step", lambda: access.check_step(
                who, _access_kind(step.type), scope, shown_as=step.type, target="notice"),
                scope=scope, params=params)
        try:
            return await self._submit_notice_allowed(who, step, scope, params,
                                                     callers_id=callers_id)
        except (Refused, BadInput):
            await asyncio.to_thread(self.record, who, "notice.step", scope=scope, params=params,
                                    outcome="refused")
            raise
        except BaseException as exc:
            try:  # as a case step's (`submit_step`)
                await asyncio.to_thread(
                    self.record, who, "notice.step", scope=scope,
                    params={**params, "error": type(exc).__name__}, outcome="failed")
            except Exception:  # noqa: BLE001 - the step's own error is the answer
                log.exception("access record of a failed notice step not written",
                              notice=step.notice)
            raise

    async def _submit_notice_allowed(self, who: Principal, step: Any, scope: CaseScope,
                                     params: dict[str, str], *, callers_id: bool) -> LineResult:
        from application.notice_gateway import NoticeClient
        from application.notice_store import notice_snapshot
        from domain.notice_commands import NOTICE_FREE_TEXT
        from domain.notice_stages import closed_notice_refusal

        texts = NOTICE_FREE_TEXT.get(step.type, ())
        client = scope.client
        if client and texts and has_text(step, texts):
            def sealed(plain: Any = step) -> tuple[Any, str]:  # the digest after the sealing
                return (self._seal(plain, texts, client, note_context(plain.notice)),
                        self.request_digest(plain, client, texts))

            step, digest = await asyncio.to_thread(sealed)
        else:
            digest = self.request_digest(step, client, texts)
        params["request"] = digest
        # a retry under the caller's key: as a case step's (`_submit_allowed`)
        earlier = (await asyncio.to_thread(self.store.processed_step, step)
                   if callers_id else None)
        sent_as = uuid.uuid4().hex if callers_id else None
        if earlier is not None:
            result = earlier.model_copy(update={"duplicate": True})
        else:
            chain = await self.chain()
            try:
                result = await NoticeClient(chain.client, self.settings, self.policy).send_notice(
                    step, request=digest, sent_by=who.subject, sent_as=sent_as)
            except Refused as exc:
                # a closed notice whose run has ended and is gone from Temporal: the store's
                if scope.exists and str(exc).endswith("does not exist: register it first"):
                    snap = await asyncio.to_thread(notice_snapshot, self.store, step.notice)
                    if snap.stage == "closed":
                        raise Refused(closed_notice_refusal(step.notice, snap.outcome)) from None
                raise
        if not result.accepted:
            raise Refused(result.reason or "refused")

        def settle() -> None:
            nonlocal result
            if callers_id:
                first = self._check_retry(who, step, digest)
                if first.get("sent_as", sent_as) != sent_as and not result.duplicate:
                    result = result.model_copy(update={"duplicate": True})
            # a registration: the notice's unit from the store, as an `apply`'s case's
            where = scope if scope.exists else self.notice_scope(step.notice)
            self.record(who, "notice.step", scope=where,
                        params={**params, "duplicate": str(result.duplicate).lower()})

        await asyncio.to_thread(settle)
        return result

    async def notice_status(self, who: Principal, notice: str) -> dict[str, Any]:
        from application.notice_gateway import NoticeClient
        from application.notice_store import notice_snapshot
        from workflows.eviction_messages import NoticeStatus

        refuse_personal_numbers(notice=notice)
        scope = await asyncio.to_thread(self.notice_scope, notice)
        if not scope.exists:  # on record either way, as a case's (readable_case)
            await asyncio.to_thread(self.record, who, "notice.read", params={"notice": notice},
                                    outcome="denied")
            if who.is_admin or who.has(access.Role.CASEWORKER, access.Role.SUPERVISOR):
                raise NotFound(f"notice {notice} does not exist")
            access.check_read_case(who, scope, "notice")
            raise Forbidden(f"{who.subject} may not read notice {notice}")
        self.allow(who, "notice.read", lambda: access.check_read_case(who, scope, "notice"),
                   scope=scope, params={"notice": notice})
        snap = await asyncio.to_thread(notice_snapshot, self.store, notice)
        if snap.stage == "closed":  # its run has ended (and may be gone): the store's
            st = NoticeStatus.of(snap, [])
        else:
            chain = await self.chain()
            st = await NoticeClient(chain.client, self.settings, self.policy).notice_status(
                notice)
        await asyncio.to_thread(self.record, who, "notice.read", scope=scope,
                                params={"notice": notice})
        return st.model_dump(mode="json")

    # --- import and erasure -----------------------------------------------------------------

    async def import_lines(self, who: Principal, raw: list[str], source: str, *,
                           default_actor: str = "import", strict: bool = False, parallel: int = 16,
                           progress: Callable[[int], None] | None = None,
                           total: Callable[[int], None] | None = None) -> ImportReport:
        """A JSONL file of steps through the workflows (admin: migrating older records, each
        line may name its own actor; the access record names who imported)."""
        check_import_names(source, default_actor)
        self.allow(who, "import", lambda: access.check_role(who, "import records"),
                   params={"source": source, "lines": str(len(raw))})
        lines, refused = parse(raw, source=source, actor=default_actor, today=self.today())
        lines = await asyncio.to_thread(self._identities_allowed, lines, refused)
        report = ImportReport(refused=refused)
        if total:
            total(len(lines))
        if strict and refused:
            report.stopped_early = True
            return report
        await asyncio.to_thread(self._record_import_in_cases, who, lines, source)
        await run_import(await self.chain(), lines, report, parallel=parallel, strict=strict,
                         recorded_by=who.subject, seal=self._import_sealer(lines),
                         record_identity=self.identities.record, processed=self.store.processed_step,
                         progress=progress)
        self.record(who, "import", params={"source": source, "lines": str(len(raw)),
                                           "accepted": str(report.accepted),
                                           "refused": str(len(report.refused))})
        return report

    def _record_import_in_cases(self, who: Principal, lines: list[Any], source: str) -> None:
        """One access record in each case the file writes to, before any line is sent, all in
        one commit: a supervisor reading the case's access log sees the import as well as
        the steps in its history (the import's own record, without a case, comes after)."""
        per_case: dict[str, int] = {}
        district: dict[str, str] = {}
        for line in lines:
            if line.case is None:  # a line on the stock
                continue
            per_case[line.case] = per_case.get(line.case, 0) + 1
            if line.step.type == "apply":
                district.setdefault(line.case, line.step.client.district)
        drafts = []
        for case, count in per_case.items():
            scope = self.scope(case)
            if not scope.exists:
                scope = CaseScope(case=case, district=district.get(case))
            drafts.append(self._draft(who, "case.import", scope,
                                      {"source": source, "lines": str(count)}, case=case))
        if drafts:
            self.audit.append_all(drafts)

    def _draft(self, who: Principal, action: str, scope: CaseScope, params: dict[str, str],
               case: str | None = None) -> AccessRecord:
        """An access record of `who` on the scope's case (`case`, when the scope is a
        notice's: None), to append with others at once."""
        case, params = _masked(case, params)
        return AccessRecord(
            seq=0, at=datetime.now(UTC), subject=who.subject, roles=sorted(who.roles),
            units=sorted(who.units), action=action, case=case, report=None, params=params,
            address=who.address or "local", outcome="allowed", case_unit=scope.district,
            relation=access.relation(who, scope), prev_hash="", hash="")

    def _import_sealer(self, lines: list[Any]) -> Callable[[list[Any]], Awaitable[list[Any]]]:
        """Seals the free text of a batch of lines before it is sent. The client of a case is
        the event store's when the case exists, else the one its `apply` in this file names."""
        applied_here = {line.case: line.step.client.id for line in lines
                        if line.step.type == "apply"}
        client_of: dict[str, str | None] = {}
        erased: dict[str, bool] = {}

        def client(case: str) -> str | None:
            if case not in client_of:
                try:
                    client_of[case] = self.store.get_case(case).client_id
                except DomainError:
                    return applied_here.get(case)  # not applied yet: ask again next time
            return client_of[case]

        def was_erased(owner: str) -> bool:
            if owner not in erased:
                erased[owner] = self.identities.erased_on(owner) is not None
            return erased[owner]

        def typed(step: Any) -> bool:
            return step.type in FREE_TEXT and has_text(step, FREE_TEXT[step.type])

        def seal_all(steps: list[Any]) -> list[Any]:
            return [self.seal_case_step(step, owner, was_erased(owner))
                    if typed(step) and (owner := client(step.case)) else step
                    for step in steps]

        async def seal(steps: list[Any]) -> list[Any]:
            if not any(map(typed, steps)):
                return steps
            return await asyncio.to_thread(seal_all, steps)

        return seal

    def _identities_allowed(self, lines: list[Any], refused: list[Refusal]) -> list[Any]:
        """Refuse, before anything is sent, the lines whose identity must not be recorded
        (an erased client, a personal number under another client id)."""
        allowed = []
        in_file: dict[str, tuple[str, int]] = {}  # a number -> the client and line that had it
        for line in lines:
            try:
                if line.identity:
                    self.identities.check(*line.identity)
                    self._once_in_file(line, in_file)
            except DomainError as exc:
                refused.append(Refusal(line.number, line.case, str(exc)))
                continue
            allowed.append(line)
        refused.sort(key=lambda r: r.line)
        return allowed

    @staticmethod
    def _once_in_file(line: Any, in_file: dict[str, tuple[str, int]]) -> None:
        """A personal identity number under two client ids within one file is refused on
        its second line, as it is against the ones already registered."""
        client, _, number = line.identity
        if not number:
            return
        try:
            key = parse_personal_number(number).normalized
        except DomainError:
            key = "".join(ch for ch in number if ch.isalnum())
        first = in_file.setdefault(key, (client, line.number))
        if first[0] != client:
            raise DomainError(f"client {client}: this personal identity number is already "
                              f"given to client {first[0]} on line {first[1]} of this file")

    async def repair(self, who: Principal, case: str) -> dict[str, Any]:
        """Start the case's workflow again from the event store (admin), when its run was
        terminated or failed outside the engine or is missing; a running one is left alone."""
        refuse_personal_numbers(case=case)
        self.allow(who, "case.repair", lambda: access.check_role(who, "repair case workflows"),
                   case=case)
        recorded = await asyncio.to_thread(self.store.recorded, case)
        if recorded is None:
            raise NotFound(f"case {case} does not exist")
        outcome = await (await self.chain()).repair(case, *recorded)
        await asyncio.to_thread(self.record, who, "case.repair", case=case,
                                params={"outcome": outcome})
        return {"case": case, "workflow": outcome, "stage": recorded[0].stage}

    def erase_identity(self, who: Principal, client: str, *, action: str = "identity.erase",
                       params: dict[str, str] | None = None) -> dict[str, Any]:
        """Erase a client's identity and shred their free text (admin). The retention run
        (activities/retention.py) erases through here too, as a system principal, under its
        own `action` so that the access log tells a request from gallring."""
        refuse_personal_numbers(client=client)
        _checked(_CLIENT_ID, "client", client)  # one no step would take: empty, too long
        self.allow(who, action, lambda: access.check_role(who, "erase identities"),
                   params={"client": client})
        erased = self.identities.erase(client)
        # crypto-shredding: every reason and note typed about the client, in every event and
        # copy, becomes unreadable; the tombstone keeps an old file from bringing the name back
        shredded = self.keyring.destroy(client)
        erased_at = self.identities.erased_on(client)
        if erased or shredded or erased_at:
            # not for an id nothing is known of (a typing error would block it for good)
            erased_at = self.identities.tombstone(
                client, datetime.now(UTC).isoformat(timespec="seconds"))
        # PostgreSQL: the deleted rows out of dead tuples (see IdentityRegistry.vacuum)
        self.identities.vacuum()
        getattr(self.keyring.store, "vacuum", lambda: False)()
        erased = erased or shredded
        self.record(who, action, params={**(params or {}), "client": client,
                                         "erased": str(erased).lower()})
        # erased_at: when the identity was first erased (a second request erases nothing)
        return {"client": client, "erased": erased, "erased_at": erased_at}

    def rotate_master_key(self, who: Principal) -> dict[str, Any]:
        """A new master key, every client data key re-wrapped under it, the old one retired
        (admin). Retiring also finishes shredding destroyed data keys left in backups."""
        self.allow(who, "keys.rotate", lambda: access.check_role(who, "rotate the master key"))
        ring = self.keyring
        if ring.master.path is None:
            return self._rewrap_under_injected_key(who)
        old = ring.master.current_id
        try:
            new = ring.master.rotate()
        except KeysError as exc:
            raise BadInput(str(exc)) from None
        rewrapped = ring.rotate_master()
        ring.retire_master(old)
        self.record(who, "keys.rotate", params={"retired": old, "current": new,
                                                "rewrapped": str(rewrapped)})
        return {"retired": old, "current": new, "rewrapped": rewrapped}

    def _rewrap_under_injected_key(self, who: Principal) -> dict[str, Any]:
        """Master keys from HOUSING_CHAIN_MASTER_KEYS (or a key service that injects it): the
        operator has put the new key first; every data key is re-wrapped under it, and the
        older keys that no data key needs any more are named, to be dropped from the
        variable (no process reads a key file to retire them from)."""
        ring = self.keyring
        rewrapped = ring.rotate_master()
        current = ring.master.current_id
        in_use = ring.master_ids_in_use()
        removable = [k for k in ring.master.key_ids if k != current and k not in in_use]
        self.record(who, "keys.rotate", params={"current": current, "rewrapped": str(rewrapped),
                                                "removable": ",".join(removable)})
        return {"current": current, "rewrapped": rewrapped, "retired": None,
                "removable": removable}

    # --- the audit ---------------------------------------------------------------------------

    def audit_verify(self, who: Principal, anchors: Iterable[str] = ()) -> Any:
        """The chain recomputed, and every anchor kept so far still in it (the anchors file,
        and any `SEQ:HASH` kept elsewhere); an intact chain leaves its head as a new anchor,
        in the anchors file and in the logs."""
        self.allow(who, "audit.verify",
                   lambda: access.check_role(who, "verify the access log", access.Role.SUPERVISOR))
        given = []
        for text in anchors:
            try:
                given.append(Anchor.parse(text))
            except ValueError as exc:
                raise BadInput(f"anchor: {exc}") from None
        kept = AnchorFile(self.settings.data / "audit-anchors.jsonl")
        stored = kept.read()
        result = self.audit.verify(anchors=[*stored, *given])
        warnings = [kept.error] if kept.error else []
        if kept.skipped:
            warnings.append(f"{kept.path.name}: {_count(kept.skipped, 'line')} not an anchor, "
                            "not checked: the file was damaged or altered")
        others = sum(1 for a in stored if a.log not in (None, self.audit.name))
        if others:
            warnings.append(f"{kept.path.name}: {_count(others, 'anchor')} of another log, not "
                            f"checked (this log is {self.audit.name})")
        if warnings:
            log.warning("anchors not all checked", file=str(kept.path), warnings=warnings)
            result = result.model_copy(update={"warnings": warnings})
        if result.ok and result.head_seq is not None:
            log.info("access log anchored", seq=result.head_seq, hash=result.head_hash,
                     log_name=self.audit.name)
            try:
                kept.add(Anchor(seq=result.head_seq, hash=result.head_hash,
                                at=datetime.now(UTC), log=self.audit.name))
            except OSError as exc:  # a read-only data directory: the log line is the anchor
                log.warning("anchor not kept in the anchors file", file=str(kept.path),
                            error=str(exc))
        elif not result.ok:
            log.error("access log broken", record=result.first_broken, reason=result.reason)
        self.record(who, "audit.verify", params={"ok": str(result.ok).lower(),
                                                 "checked": str(result.checked)})
        return result

    def audit_review(self, who: Principal, month: str) -> list[AccessRecord]:
        self.allow(who, "audit.review",
                   lambda: access.check_role(who, "review the access log", access.Role.SUPERVISOR),
                   params={"month": month})
        try:
            rows = self.audit.review(month)
        except ValueError as exc:  # 0000-01 or 9999-12: no such month in datetime's calendar
            raise BadInput(f"month: {exc}") from None
        rows = [r for r in rows if access.reviews(who, r.case_unit, r.units)]
        self.record(who, "audit.review", params={"month": month, "rows": str(len(rows))})
        return rows

    # --- Temporal's remote codec (the Temporal UI decodes payloads through it) ----------------

    async def codec(self, who: Principal, path: str, body: bytes) -> bytes:
        """Encode or decode Temporal payloads for a signed-in supervisor or admin.

        Decoding shows workflow inputs in the clear, so it is an access like any other read:
        refused ones and answered ones are both in the access log.
        """
        from application.codec import CodecKeys, EncryptionCodec, codec_endpoint, named_in

        operation = path.rstrip("/").rsplit("/", 1)[-1]
        self.allow(who, f"codec.{operation}", lambda: access.check_role(
            who, "decode Temporal payloads", access.Role.SUPERVISOR))
        with self._lock:
            if self._codec is None:
                self._codec = EncryptionCodec(CodecKeys.load(self.settings.data))
        answer = await codec_endpoint(self._codec, path, body)
        if operation == "decode":
            await asyncio.to_thread(self._decoded, who, named_in(answer))
        else:
            await asyncio.to_thread(self.record, who, f"codec.{operation}")
        return answer

    def _decoded(self, who: Principal, named: dict[str, Any]) -> None:
        """What a decode shows is a read of each case and notice its payloads name: refused
        unless `who` may read every one of them (a supervisor, those of their units), and
        recorded in each one's access log. Payloads that name neither (a step's answer, a
        timer) say nothing of a case on their own."""
        if named["failures"]:  # a failure names what failed in its text only: the admin's
            self.allow(who, "codec.decode", lambda: access.check_role(
                who, "decode failure messages"), params={"failures": str(named["failures"])})
        scopes = [(self.scope(case), {}) for case in named["case"]]
        scopes += [(self.notice_scope(n), {"notice": n}) for n in named["notice"]]
        if not scopes:
            self.record(who, "codec.decode")
            return
        for scope, params in scopes:
            case = None if params else scope.case
            self.allow(who, "codec.decode", lambda s=scope, p=params: access.check_read_case(
                who, s, "notice" if p else "case"),
                       case=case, scope=scope, params=params)
        self.audit.append_all([self._draft(who, "codec.decode", scope, params,
                                           case=None if params else scope.case)
                               for scope, params in scopes])


_CLIENT_ID: TypeAdapter[str] = TypeAdapter(ClientId)
_ACTOR: TypeAdapter[str] = TypeAdapter(Actor)
# a line's command id is `<source>:<line>:<12 hex digits>`, at most 200 characters
_SOURCE_MAX = 150


def check_import_names(source: str, default_actor: str) -> None:
    """An import's source (its file name: a part of every line's command id) and its default
    actor, checked before any line is read: a bad one would otherwise refuse every line with
    Temporal's or the decoder's words."""
    refuse_personal_numbers(source=source)
    try:
        clean_text(source, "source")
    except ValueError as exc:
        raise BadInput(f"source: {exc}") from None
    if not source.strip() or len(source) > _SOURCE_MAX:
        raise BadInput(f"source: from 1 to {_SOURCE_MAX} characters, not {len(source)}")
    _checked(_ACTOR, "actor", default_actor)


def _checked(model: TypeAdapter[str], field: str, value: str) -> None:
    """`value` as a step's `field` would take it, or BadInput naming the field."""
    try:
        model.validate_python(value)
    except ValidationError as exc:
        raise BadInput(f"{field}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
                       ) from None


def _access_kind(notice_step: str) -> str:
    """The case step whose roles a notice's step takes: a notice's steps are a caseworker's,
    the visit at the door also a pilot's."""
    return "record_visit" if notice_step == "outreach_visit" else "offer"


def refuse_personal_numbers(**given: str | None) -> None:
    """An id typed into a path or a query (a case, a client, an actor, a report's option)
    that holds a personal identity number is refused naming the field, before anything is
    read, done or put on record: the access log is append-only and kept for years."""
    for field, value in given.items():
        found = find_personal_number(value) if isinstance(value, str) else None
        if found:
            raise BadInput(f"{field}: must not contain {found}; use a pseudonymous id")


# values the engine makes, whose hex or dated digits may form a valid number by chance
_ENGINE_PARAMS = frozenset({"request", "retired", "current", "removable"})


def _masked(case: str | None, params: Mapping[str, str] | None
            ) -> tuple[str | None, dict[str, str]]:
    """The case and the params of an access record, any personal identity number in them
    replaced by its masked description: the last guard of the log, should a use case have
    let one through (`refuse_personal_numbers` is the first). Never raises: it runs after
    the work it records."""
    def mask(value: str) -> str:
        found = find_personal_number(value)
        return f"[{found}]" if found else value

    return (mask(case) if case else case,
            {k: v if k in _ENGINE_PARAMS or not isinstance(v, str) else mask(v)
             for k, v in (params or {}).items()})


def new_command_id(prefix: str) -> str:
    """A fresh command id; never one whose digits happen to form a personal identity number
    (a prefix that holds one is left out: the loop would never end)."""
    if find_personal_number(prefix):
        prefix = "step"
    while True:
        candidate = f"{prefix}:{uuid.uuid4()}"
        if find_personal_number(candidate) is None:
            return candidate


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _texts_replaced(fields: dict[str, Any], paths: tuple[str, ...],
                    replace: Callable[[str], str]) -> dict[str, Any]:
    """The fields with the text at each path (`reviews.note`: in every review) replaced."""
    out = dict(fields)
    for path in paths:
        head, _, rest = path.partition(".")
        value = out.get(head)
        if rest and isinstance(value, list):
            out[head] = [_texts_replaced(item, (rest,), replace) if isinstance(item, dict)
                         else item for item in value]
        elif isinstance(value, str) and value:
            out[head] = replace(value)
    return out


def _check_access_log(who: Principal, scope: CaseScope) -> None:
    """The access log of a case: the supervisors of its unit and the admin."""
    if who.is_admin:
        return
    if who.has(access.Role.SUPERVISOR) and scope.district in who.units:
        return
    raise Forbidden(f"{who.subject} may not read the access log of case {scope.case}: "
                    "supervisors of the case's unit do")


def local_operator(on_behalf: Iterable[str] = ()) -> Principal:
    """Whoever runs the CLI on the server of the embedded stack: the OS user, as admin."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in a bare container: still the operator
        user = "operator"
    return Principal(subject=user, roles=frozenset({access.Role.ADMIN.value}), address="local")


def refusal_kind(line: Any) -> str | None:
    """The kind of coded reason a step needs (the policy's `reason_codes`), if it is a refusal
    or denial. A person recording one names the code; an import file from before the codes
    may leave it out (the case codes it `other`), so this check is the front door's."""
    if line.type == "decide" and line.outcome == "denied":
        return "denial"
    if line.type == "landlord_decision" and not line.approved:
        return "landlord"
    if line.type == "takeover_decision" and not line.approved:
        return "takeover"
    return None


def case_file_facts(c: Any, policy: Policy) -> dict[str, Any]:
    """The case file's current facts (pseudonymous: ids, dates, codes, amounts; the typed
    texts stay in the history, sealed with the client's key)."""
    iso = lambda d: d.isoformat() if d else None  # noqa: E731
    return {
        "support_level": None if c.level is None else {
            "level": c.level, "name": policy.support_levels.get(c.level)},
        "plan": None if c.plan_on is None else {
            "made_on": iso(c.plan_on),
            "open_sub_goals": [{"id": g, "follow_up": iso(on)}
                               for g, on in sorted(c.follow_ups.items(), key=lambda x: x[1])]},
        "lease_end": iso(c.lease_end),
        "interrupted": None if c.interrupted_on is None else {
            "since": iso(c.interrupted_on), "kind": c.interruption_kind},
        "open_placements": [{"id": p, "start": iso(start),
                             "planned_end": iso(c.placement_ends.get(p))}
                            for p, start in sorted(c.placements.items())],
        "arrears": str(c.arrears),
        "repayment_plan": list(c.instalments) or None,
        "warnings": [iso(w) for w in c.warnings],
    }
