"""Talking to the running stack: send steps to case workflows, read their status.

A refusal, whether from a workflow's update validator, the domain, or because the case does
not exist or is closed, comes back as `Refused` with a message that names the case.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from application.codec import CodecKeys, data_converter
from application.errors import Refused, Unavailable
from config.logs import route_temporal_logs
from config.settings import Settings
from domain.commands import CaseStep, StockStep
from domain.policy import Policy
from domain.stages import closed_refusal
from domain.views import CaseSnapshot, LineResult
from workflows.case import APPLIED_KEPT, CaseWorkflow
from workflows.messages import (
    CarriedState,
    CaseStart,
    CaseStatus,
    StepBatch,
    StepRequest,
    StockRequest,
)
from workflows.stock import StockWorkflow

T = TypeVar("T")

# A restarting server or a busy one: the same update id sent again is safe (Temporal and the
# service both deduplicate it), so these are retried until `retry_for` runs out.
TRANSIENT = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
             RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.ABORTED, RPCStatusCode.CANCELLED}


# A read (a workflow's status) waits this long for a server that is away, then answers
# without it: a person reading a case should not wait as long as a step is retried.
READ_RETRY_SECONDS = 5.0


def is_transient(exc: BaseException) -> bool:
    """A status in TRANSIENT, or the core's `Unknown: transport error`: the connection broke
    in the middle of a call (a server killed with the call in flight). Retrying is as safe
    as for UNAVAILABLE (the same update id), and neither is ever a refusal of the step."""
    if not isinstance(exc, RPCError):
        return False
    return exc.status in TRANSIENT or (exc.status == RPCStatusCode.UNKNOWN
                                       and "transport error" in str(exc))


class Unreachable(Unavailable):
    """No Temporal server answers at the configured address."""


def case_workflow_id(case: str) -> str:
    return f"case-{case}"


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise Unreachable(f"HOUSING_CHAIN_TEMPORAL_{setting} {path}: cannot read it "
                          f"({exc.strerror})") from None


def temporal_security(settings: Settings) -> dict[str, Any]:
    """The TLS and API-key arguments of every `Client.connect` (the worker's, the API's, the
    CLI's), built here only, so that one configuration reaches a secured cluster everywhere.

    No setting: plain gRPC, as the embedded dev server speaks. A client certificate and key:
    mTLS; a CA: the server's certificate is checked against it rather than the system's
    roots; an API key (Temporal Cloud) sends `Authorization: Bearer` and implies TLS."""
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if (cert is None) != (key is None):
        raise Unreachable("HOUSING_CHAIN_TEMPORAL_TLS_CERT and HOUSING_CHAIN_TEMPORAL_TLS_KEY go "
                          "together: set both (the client certificate and its private key)")
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    wanted = (cert, settings.temporal_tls_ca, settings.temporal_tls_server_name, api_key)
    if all(value is None for value in wanted):
        return {"tls": False}
    tls = TLSConfig(
        server_root_ca_cert=_read(settings.temporal_tls_ca, "TLS_CA") if settings.temporal_tls_ca else None,
        client_cert=_read(cert, "TLS_CERT") if cert else None,
        client_private_key=_read(key, "TLS_KEY") if key else None,
        domain=settings.temporal_tls_server_name,
    )
    return {"tls": tls, "api_key": api_key}


def uses_tls(settings: Settings) -> bool:
    return temporal_security(settings)["tls"] is not False


async def temporal_client(settings: Settings, **options: Any) -> Client:
    """`Client.connect` with the address, namespace, encrypting converter and TLS settings."""
    route_temporal_logs()
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(CodecKeys.load(settings.data)),
        **temporal_security(settings),
        **options,
    )


def _innermost(said: str) -> str:
    """The core's transport error is a nest of Rust debug output; its innermost `error: "…"`
    (a URL after it dropped) is what a person can act on."""
    found = re.findall(r'error: "([^"]+)"', said)
    if found:
        return " ".join(found[-1].split(": https://")[0].split())
    kind = re.findall(r"Kind\((\w+)\)", said)  # e.g. ConnectionReset: "connection reset"
    if kind:
        return re.sub(r"(?<!^)([A-Z])", r" \1", kind[-1]).lower()
    return " ".join(said.split())


def unreachable(settings: Settings, exc: BaseException) -> Unreachable:
    """Why no client: in one line, naming TLS and the certificate when TLS is configured (a
    refused handshake surfaces as a bare transport error otherwise)."""
    said = _innermost(str(exc))
    if uses_tls(settings):
        return Unreachable(
            f"no TLS connection to Temporal at {settings.temporal_address}: the TLS handshake "
            "failed or the server refused the client certificate — check "
            "HOUSING_CHAIN_TEMPORAL_TLS_CERT, _TLS_KEY, _TLS_CA and _TLS_SERVER_NAME (or "
            f"HOUSING_CHAIN_TEMPORAL_API_KEY) ({said})")
    return Unreachable(
        f"no Temporal server at {settings.temporal_address} ({said}); start the stack with "
        "`housing-chain up` or set TEMPORAL_ADDRESS (a secured cluster: set "
        "HOUSING_CHAIN_TEMPORAL_TLS_CERT, _TLS_KEY, _TLS_CA or HOUSING_CHAIN_TEMPORAL_API_KEY)"
    )


async def connect(settings: Settings, attempts: int = 1) -> Client:
    """A client whose payloads are encrypted (`application.codec`): Temporal's database, UI and
    HTTP API only ever see ciphertext of what the engine sends it."""
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return await temporal_client(settings)
        except RuntimeError as exc:
            last = exc
            if attempt + 1 < attempts:
                await asyncio.sleep(0.5)
    assert last is not None
    raise unreachable(settings, last)


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or getattr(exc, "cause", None)
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        cause = getattr(cause, "cause", None) or cause.__cause__
    return str(exc)


# What the event store knows of a case, for a repair: its snapshot and the command ids its
# events carry (oldest first), or None when the store has no such case.
Recorded = tuple[CaseSnapshot, list[str]] | None


class ChainClient:
    def __init__(self, client: Client, settings: Settings, policy: Policy | None = None,
                 retry_for: float = 600.0,
                 recorded: Callable[[str], Recorded] | None = None) -> None:
        self.client = client
        self.settings = settings
        self.policy = policy or settings.policy()
        self.retry_for = retry_for
        # Given, a step that finds its case's workflow gone (terminated or failed outside
        # the engine) while the event store has the case repairs it and is sent once more.
        self.recorded = recorded

    async def _retrying(self, call: Callable[[], Awaitable[T]],
                        retry_for: float | None = None) -> T:
        deadline = time.monotonic() + (self.retry_for if retry_for is None else retry_for)
        delay = 0.2
        while True:
            try:
                return await call()
            except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
                if isinstance(exc.__cause__, asyncio.CancelledError):
                    # temporalio wraps our own cancellation (Ctrl-C, a caller's timeout)
                    # in the same error as a server-side timeout: a cancel must stop here
                    raise asyncio.CancelledError() from exc
                if time.monotonic() > deadline:
                    raise
            except RPCError as exc:
                if not is_transient(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _start(self, case: str) -> WithStartWorkflowOperation:
        return WithStartWorkflowOperation(
            CaseWorkflow.run,
            CaseStart(case=case, policy=self.policy),
            id=case_workflow_id(case),
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )

    async def update(
        self, workflow_id: str, update: Any, request: Any, update_id: str,
        start: Callable[[], WithStartWorkflowOperation] | None = None,
    ) -> Any:
        """Send an update, starting the workflow first when `start` is given, and retry
        transient errors with the same update id. Temporal's own errors propagate."""
        unsettled: list[WithStartWorkflowOperation] = []

        async def call() -> Any:
            if start is not None:
                while unsettled:  # a retry: collect the failed attempt's operation
                    await _settle(unsettled.pop())
                unsettled.append(start())  # an operation is good for one request
                return await self.client.execute_update_with_start_workflow(
                    update, request, start_workflow_operation=unsettled[-1], id=update_id,
                )
            handle = self.client.get_workflow_handle(workflow_id)
            return await handle.execute_update(update, request, id=update_id)

        try:
            return await self._retrying(call)
        except (RPCError, WorkflowAlreadyStartedError, asyncio.CancelledError):
            while unsettled:
                await _settle(unsettled.pop())
            raise

    async def send(self, step: CaseStep, *, repaired: bool = False,
                   recorded_by: str | None = None, request: str | None = None,
                   sent_as: str | None = None) -> LineResult:
        """One caseworker step; raises Refused. `recorded_by`: the signed-in person, kept
        with the step when it is not the step's actor; `request`: the request's digest, kept
        in the step's marker with who sent it and the request's own id (`sent_as`)."""
        start = (lambda: self._start(step.case)) if step.type == "apply" else None
        # Temporal answers an update id it knows with its first outcome, a refusal too: the
        # request's digest in the id keeps that for the same request sent again, so that a
        # corrected step under the caller's key is asked anew (the case's markers then tell
        # a taken key apart)
        update_id = f"{step.id}:{request}" if request and step.id else step.id or ""
        try:
            return await self.update(case_workflow_id(step.case), CaseWorkflow.step,
                                     StepRequest(step=step, recorded_by=recorded_by,
                                                 request=request, sent_as=sent_as),
                                     update_id, start)
        except WorkflowUpdateFailedError as exc:
            reason = _reason(exc)
            # an empty run (an `apply` sent again after a terminate started one) while the
            # store has the case: repaired like a missing one
            if (not repaired and step.type != "apply" and reason.endswith("does not exist: apply first")
                    and await self._repaired(step.case)):
                return await self.send(step, repaired=True, recorded_by=recorded_by,
                                       request=request, sent_as=sent_as)
            raise Refused(reason) from None
        except (RPCError, WorkflowAlreadyStartedError) as exc:
            if not repaired and step.type != "apply" and await self._repaired(step.case, exc):
                return await self.send(step, repaired=True, recorded_by=recorded_by,
                                       request=request, sent_as=sent_as)
            _raise_if_outage(exc)
            raise Refused(await self._explain(step.case, exc)) from None

    async def send_batch(self, case: str, steps: Sequence[CaseStep], batch_id: str,
                         recorded_by: str | None = None) -> list[LineResult]:
        """Consecutive steps of one case in one update; each line accepted or refused alone."""
        start = (lambda: self._start(case)) if steps[0].type == "apply" else None
        request = StepBatch(batch_id=batch_id, steps=list(steps), recorded_by=recorded_by)
        try:
            return await self.update(case_workflow_id(case), CaseWorkflow.steps, request,
                                     batch_id, start)
        except WorkflowUpdateFailedError as exc:
            reason = _reason(exc)
        except (RPCError, WorkflowAlreadyStartedError) as exc:
            if start is None and await self._repaired(case, exc):
                try:
                    return await self.update(case_workflow_id(case), CaseWorkflow.steps,
                                             request, batch_id)
                except WorkflowUpdateFailedError as again:
                    reason = _reason(again)
                except RPCError as again:
                    _raise_if_outage(again)
                    reason = await self._explain(case, again)
            else:
                _raise_if_outage(exc)
                reason = await self._explain(case, exc)
        return [LineResult(accepted=False, command_id=s.id or "", reason=reason) for s in steps]

    async def send_stock(self, step: StockStep, *, recorded_by: str | None = None,
                         request: str | None = None, sent_as: str | None = None) -> LineResult:
        """A step on the apartment stock; a refusal (the id exists, the apartment is not
        vacant) raises Refused with the domain's message, as a case step does."""
        try:
            return await self._send_stock(step, recorded_by, request, sent_as)
        except WorkflowFailureError as exc:
            raise Refused(_reason(exc)) from None

    async def _send_stock(self, step: StockStep, recorded_by: str | None = None,
                          request: str | None = None, sent_as: str | None = None) -> LineResult:
        # the request's digest in the workflow id, as in a case step's update id: another
        # request under the key runs anew and finds the marker of the first
        key = f"{step.id}:{request}" if request else step.id
        return await self._retrying(lambda: self.client.execute_workflow(
            StockWorkflow.run,
            StockRequest(step=step, policy=self.policy, recorded_by=recorded_by,
                         request=request, sent_as=sent_as),
            id=f"stock-{step.apartment}-{key}",
            task_queue=self.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        ))

    async def status(self, case: str, *, patient: bool = False) -> CaseStatus:
        """The workflow's status; a server away for READ_RETRY_SECONDS is Unavailable, unless
        `patient` (a step's own follow-up questions wait as long as the step)."""
        handle = self.client.get_workflow_handle(case_workflow_id(case))
        try:
            return await self._retrying(lambda: handle.query(CaseWorkflow.status),
                                        None if patient else min(self.retry_for,
                                                                 READ_RETRY_SECONDS))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"case {case} does not exist") from None
            _raise_if_outage(exc)
            raise

    async def _repaired(self, case: str, exc: Exception | None = None) -> bool:
        """After 'not found' (no run, or its last run ended), repair when the store has it."""
        if self.recorded is None:
            return False
        if exc is not None and not (isinstance(exc, RPCError)
                                    and exc.status == RPCStatusCode.NOT_FOUND):
            return False
        recorded = await asyncio.to_thread(self.recorded, case)
        if recorded is None:
            return False
        return await self.repair(case, *recorded) == "restarted"

    async def repair(self, case: str, snapshot: CaseSnapshot, applied: Sequence[str]) -> str:
        """Start the case's workflow again from the event store when its run was terminated
        or failed outside the engine, or is missing: a new run carrying the store's snapshot
        (the same stage; the timers follow from its dates, and the notes they raise are
        idempotent by their ids) and the command ids already applied (a retried step answers
        as a duplicate). Answers "restarted", "running" or "closed"."""
        handle = self.client.get_workflow_handle(case_workflow_id(case))
        try:
            description = await self._retrying(handle.describe)
            status = description.status
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            status = None
        if status == WorkflowExecutionStatus.RUNNING:
            if (await self.status(case, patient=True)).stage != "new":
                return "running"
            # a run that never saw the case's `apply` (started by one sent again after the
            # case's run was terminated): it would wait ten minutes and fail as never opened
            await handle.terminate("repair: an empty run of a case the event store holds")
        if snapshot.stage == "closed" or status == WorkflowExecutionStatus.COMPLETED:
            return "closed"
        carried = CarriedState(snapshot=snapshot, applied=list(applied)[-APPLIED_KEPT:])
        try:
            await self._retrying(lambda: self.client.start_workflow(
                CaseWorkflow.run,
                CaseStart(case=case, policy=self.policy, carried=carried),
                id=case_workflow_id(case),
                task_queue=self.settings.task_queue,
                # a new run after a terminated, failed, cancelled or timed-out one only
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            ))
        except WorkflowAlreadyStartedError:
            return "closed"
        return "restarted"

    async def _explain(self, case: str, exc: Exception) -> str:
        """Turn 'not found' and 'already completed' into what they mean for the case."""
        if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
            # no run, or its last run completed: the event store tells a closed case apart
            recorded = await asyncio.to_thread(self.recorded, case) if self.recorded else None
            if recorded is not None and recorded[0].stage == "closed":
                return closed_refusal(case, recorded[0].outcome)
            return f"case {case} does not exist: apply first"
        try:
            status = await self.status(case, patient=True)
        except Exception:  # noqa: BLE001 - the original error is the better message then
            return f"case {case}: {exc}"
        if status.stage == "closed":
            return closed_refusal(case, status.outcome)
        if isinstance(exc, WorkflowAlreadyStartedError):
            return f"case {case} already exists ({status.stage_label})"
        return f"case {case}: {exc}"


def _raise_if_outage(exc: Exception) -> None:
    """A server still away after the retries is an outage, never a refusal of the step."""
    if is_transient(exc):
        raise Unavailable(f"Temporal did not answer: {exc}") from exc


async def _settle(start: WithStartWorkflowOperation) -> None:
    """Collect the start operation's own failure (else asyncio reports it as never retrieved)."""
    try:
        await asyncio.wait_for(start.workflow_handle(), timeout=0.1)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # we are being cancelled ourselves
            raise
    except Exception:  # noqa: BLE001 - the caller reports the refusal
        pass


def today_in(policy: Policy) -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(policy.time_zone)).date()
