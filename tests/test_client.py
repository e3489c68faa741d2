"""The client the CLI and the importer use: what it does when a call is cancelled."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from application.gateway import ChainClient, case_workflow_id
from config.settings import Settings
from domain.commands import import_line_adapter
from domain.policy import Policy
from runtime.binaries import temporal_test_server
from workflows.case import CaseWorkflow
from workflows.messages import CaseStart


@pytest_asyncio.fixture
async def own_server():
    """A test server of its own: a cancelled call leaves the time-skipping client's lock
    count off, which would stop time skipping for every later test on a shared server."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server())
    yield env
    await env.shutdown()


@pytest.mark.parametrize("kind", ["apply", "record_visit"])
async def test_a_cancelled_step_stops_at_once_instead_of_being_retried(kind, own_server,
                                                                        tmp_path):
    """temporalio reports our own cancellation (Ctrl-C, a caller's timeout) with the same
    error as an update RPC that timed out on the server, which the client retries."""
    # no worker polls this task queue, so the update waits until it is cancelled
    settings = Settings(task_queue=f"nobody-{uuid.uuid4()}", data=tmp_path)
    chain = ChainClient(own_server.client, settings, Policy(), retry_for=6.0)
    case = f"c-{uuid.uuid4().hex[:8]}"
    fields = {"case": case, "on": "2026-01-05", "actor": "handlaggare.lind", "id": f"{kind}-{case}"}
    if kind == "apply":
        fields["client"] = {"id": "p-1", "target_group": "young_adults", "district": "Farsta"}
    else:
        fields["kind"] = "home_visit"
        await own_server.client.start_workflow(
            CaseWorkflow.run, CaseStart(case=case), id=case_workflow_id(case),
            task_queue=settings.task_queue)
    step = import_line_adapter.validate_python({"type": kind, **fields})

    sending = asyncio.create_task(chain.send(step))
    await asyncio.sleep(1.0)
    sending.cancel()
    done, _ = await asyncio.wait({sending}, timeout=4.0)  # waits; cancels nothing
    await own_server.client.get_workflow_handle(case_workflow_id(case)).terminate("done")
    assert done, "the cancelled step was retried instead of stopping"
    assert sending.cancelled()


async def test_a_cases_status_with_the_server_gone_is_unavailable_within_seconds_not_minutes(
        tmp_path):
    """A read does not wait as long as a step is retried (600 s): a person opening a case
    while Temporal is away gets the case from the event store, marked without its workflow."""
    from application.errors import Unavailable
    from application.gateway import READ_RETRY_SECONDS

    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server())
    chain = ChainClient(env.client, Settings(data=tmp_path), Policy(), retry_for=600.0)
    await env.shutdown()
    with pytest.raises(Unavailable, match="Temporal did not answer"):
        await asyncio.wait_for(chain.status("c-gone"), timeout=READ_RETRY_SECONDS + 25)


async def test_a_notice_step_with_the_server_gone_is_unavailable_not_refused(tmp_path):
    """No answer is not a refusal (the step may have been taken): the access record says
    `failed`, as a case step's does, and the caller is told Temporal is away."""
    from application.errors import Unavailable
    from application.notice_gateway import NoticeClient
    from domain.notice_commands import notice_step_adapter

    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server())
    notices = NoticeClient(env.client, Settings(data=tmp_path), Policy(), retry_for=2.0)
    await env.shutdown()
    step = notice_step_adapter.validate_python({
        "type": "contact_attempt", "notice": "n-gone", "reached": False, "on": "2026-01-05",
        "actor": "handlaggare.lind", "id": "c-1"})
    with pytest.raises(Unavailable, match="Temporal did not answer"):
        await asyncio.wait_for(notices.send_notice(step), timeout=30)
