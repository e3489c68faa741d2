"""Rules for the payload codec: nothing a client said reaches Temporal in the clear, yet
workers, the UI (through the codec endpoint) and old unencrypted histories still read."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from application.codec import (
    CodecKeys,
    CodecRequestError,
    EncryptionCodec,
    codec_endpoint,
    data_converter,
)
from application.keys import DecryptionError, UnknownKeyError
from runtime.binaries import temporal_cli
from tests.builders import unique_id

NAME = "Anna Andersson"


class Applicant(BaseModel):
    name: str
    personal_number: str
    note: str


ANNA = Applicant(name=NAME, personal_number="19121212-1212",
                 note="Bor hos sin syster på Södermalm, söker eget boende")


def keys(data: Path) -> CodecKeys:
    return CodecKeys.load(data, environ={})


def raw(payloads) -> bytes:
    return b"".join(p.SerializeToString() for p in payloads)


# -- keys -------------------------------------------------------------------------------------


def test_the_codec_key_file_is_created_private_on_first_start_and_reused(tmp_path: Path):
    first = keys(tmp_path / "data")
    assert stat.S_IMODE((tmp_path / "data" / "codec.keys").stat().st_mode) == 0o600
    assert keys(tmp_path / "data").current() == first.current()
    assert not (tmp_path / "data" / "master.keys").exists()  # separate from the master keys


def test_codec_keys_can_come_from_the_environment(tmp_path: Path):
    key = os.urandom(32)
    loaded = CodecKeys.load(tmp_path, environ={
        "HOUSING_CHAIN_CODEC_KEYS": f"c2:{base64.b64encode(key).decode()}"})
    assert loaded.current() == ("c2", key)
    assert not (tmp_path / "codec.keys").exists()


# -- the codec --------------------------------------------------------------------------------


async def test_pydantic_payloads_round_trip_and_the_encoded_bytes_hide_the_name(tmp_path: Path):
    converter = data_converter(keys(tmp_path))
    [payload] = await converter.encode([ANNA])
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"].decode() == converter.payload_codec.keys.current_id
    for secret in (NAME, "Andersson", "19121212", "Södermalm", "json/plain"):
        assert secret.encode() not in raw([payload])
    assert await converter.decode([payload], [Applicant]) == [ANNA]


async def test_the_same_payload_encrypts_differently_each_time(tmp_path: Path):
    converter = data_converter(keys(tmp_path))
    assert (await converter.encode([ANNA]))[0].data != (await converter.encode([ANNA]))[0].data


async def test_payloads_recorded_before_encryption_pass_decode_unchanged(tmp_path: Path):
    plain = pydantic_data_converter.payload_converter.to_payloads([ANNA, "fri text", None])
    codec = EncryptionCodec(keys(tmp_path))
    assert await codec.decode(plain) == plain
    assert await data_converter(codec.keys).decode(plain, [Applicant, str, None]) == [
        ANNA, "fri text", None]


async def test_payloads_under_an_older_codec_key_still_decode_after_rotation(tmp_path: Path):
    before = EncryptionCodec(keys(tmp_path))
    old = await before.encode(pydantic_data_converter.payload_converter.to_payloads([ANNA]))
    new_id = before.keys.rotate()
    after = EncryptionCodec(keys(tmp_path))
    assert after.keys.ids() == [new_id, before.keys.ids()[1]]
    assert (await after.encode(old))[0].metadata["encryption-key-id"] == new_id.encode()
    decoded = await after.decode(old)
    assert pydantic_data_converter.payload_converter.from_payloads(decoded, [Applicant]) == [ANNA]


async def test_a_payload_under_a_retired_codec_key_fails_loudly(tmp_path: Path):
    codec = EncryptionCodec(keys(tmp_path))
    old_id = codec.keys.current_id
    encoded = await codec.encode([Payload(data=b"x")])
    codec.keys.rotate()
    codec.keys.retire(old_id)
    with pytest.raises(UnknownKeyError, match=old_id):
        await codec.decode(encoded)


async def test_an_altered_payload_fails_to_decode(tmp_path: Path):
    codec = EncryptionCodec(keys(tmp_path))
    [payload] = await codec.encode([Payload(data=b"x")])
    payload.data = payload.data[:-1] + bytes([payload.data[-1] ^ 1])
    with pytest.raises(DecryptionError):
        await codec.decode([payload])


async def test_failure_messages_are_encrypted_too(tmp_path: Path):
    converter = data_converter(keys(tmp_path))
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"Ingen lägenhet för {NAME}"), failure)
    assert NAME.encode() not in failure.SerializeToString()
    assert f"Ingen lägenhet för {NAME}" in str(await converter.decode_failure(failure))


# -- the codec endpoint, as the Temporal UI calls it ------------------------------------------


def ui_payload(value: object) -> dict:
    """A payload the way the Temporal UI posts it: metadata values and data in base64."""
    return {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
            "data": base64.b64encode(json.dumps(value).encode()).decode()}


async def test_the_codec_endpoint_encodes_and_decodes_in_the_shape_the_ui_sends(tmp_path: Path):
    codec = EncryptionCodec(keys(tmp_path))
    request = {"payloads": [ui_payload(ANNA.model_dump()), ui_payload("andra")]}
    encoded = json.loads(await codec_endpoint(codec, "/encode", json.dumps(request).encode()))
    assert len(encoded["payloads"]) == 2
    for payload in encoded["payloads"]:
        assert base64.b64decode(payload["metadata"]["encoding"]) == b"binary/encrypted"
        assert b"Andersson" not in base64.b64decode(payload["data"])
    decoded = await codec_endpoint(codec, "/api/codec/decode/", json.dumps(encoded).encode())
    assert json.loads(decoded) == request


async def test_the_codec_endpoint_answers_an_empty_list_and_refuses_other_requests(tmp_path: Path):
    codec = EncryptionCodec(keys(tmp_path))
    assert json.loads(await codec_endpoint(codec, "/decode", b'{"payloads": []}')) == {"payloads": []}
    with pytest.raises(CodecRequestError) as unknown:
        await codec_endpoint(codec, "/keys", b"{}")
    assert unknown.value.status == 404
    with pytest.raises(CodecRequestError) as malformed:
        await codec_endpoint(codec, "/decode", b'{"payloads": "no"}')
    assert malformed.value.status == 400


# -- end to end on a real Temporal dev server -------------------------------------------------


@workflow.defn(sandboxed=False)
class Welcome:
    @workflow.run
    async def run(self, applicant: Applicant) -> str:
        if applicant.note == "avslag":
            raise ApplicationError(f"Ingen lägenhet för {applicant.name}", non_retryable=True)
        return f"Välkommen, {applicant.name}"


async def history_bytes(client: Client, workflow_id: str) -> bytes:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events)


@pytest.mark.slow
async def test_a_client_without_the_codec_finds_no_name_in_the_history(tmp_path: Path):
    converter = data_converter(keys(tmp_path))
    async with await WorkflowEnvironment.start_local(
            data_converter=converter, dev_server_existing_path=temporal_cli()) as env:
        with_codec = env.client
        without_codec = await Client.connect(with_codec.service_client.config.target_host,
                                             namespace=with_codec.namespace,
                                             data_converter=pydantic_data_converter)
        queue = f"codec-{uuid.uuid4()}"
        welcomed_id, refused_id, plain_id = (unique_id("w") for _ in range(3))
        async with Worker(with_codec, task_queue=queue, workflows=[Welcome]):
            welcomed = await with_codec.execute_workflow(
                Welcome.run, ANNA, id=welcomed_id, task_queue=queue, memo={"note": ANNA.note})
            with pytest.raises(WorkflowFailureError) as refused:
                await with_codec.execute_workflow(
                    Welcome.run, ANNA.model_copy(update={"note": "avslag"}), id=refused_id,
                    task_queue=queue)
            # control: started without the codec the name is in the history, so the checks
            # below would see it; the worker still reads such an unencrypted input, and its
            # result is encrypted, which the client without the codec cannot read
            plain = await without_codec.start_workflow(Welcome.run, ANNA, id=plain_id,
                                                       task_queue=queue)
            assert await with_codec.get_workflow_handle(plain_id).result() == f"Välkommen, {NAME}"
            with pytest.raises(KeyError, match="binary/encrypted"):
                await plain.result()
        assert NAME.encode() in await history_bytes(without_codec, plain_id)

        for workflow_id in (welcomed_id, refused_id):
            stored = await history_bytes(without_codec, workflow_id)
            for secret in (NAME, "Andersson", "19121212", "Södermalm"):
                assert secret.encode() not in stored
            history = await without_codec.get_workflow_handle(workflow_id).fetch_history()
            assert "Andersson" not in history.to_json()
        description = await without_codec.get_workflow_handle(welcomed_id).describe()
        for secret in (NAME, "Södermalm"):  # the memo holds the note
            assert secret.encode() not in description.raw_description.SerializeToString()

        # the client with the codec reads it all
        assert welcomed == f"Välkommen, {NAME}"
        assert NAME in str(refused.value.cause)
        history = await with_codec.get_workflow_handle(welcomed_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        assert await with_codec.data_converter.decode(started.input.payloads, [Applicant]) == [ANNA]
        described = await with_codec.get_workflow_handle(welcomed_id).describe()
        assert await described.memo_value("note") == ANNA.note


def test_a_decode_names_the_cases_and_notices_of_its_json_payloads_and_nothing_else():
    from application.codec import MAX_NAMED, CodecRequestError, named_in

    def payload(encoding: bytes, data: bytes) -> dict:
        return {"metadata": {"encoding": base64.b64encode(encoding).decode()},
                "data": base64.b64encode(data).decode()}

    answer = {"payloads": [
        payload(b"json/plain", json.dumps({"case": "k-1", "steps": [{"case": "k-1"}, {
            "notice": "n-2"}], "note": {"case": "bad id with spaces"}}).encode()),
        payload(b"binary/encrypted", b'{"case": "hidden"}'),
        payload(b"json/plain", b'{"case": "k-3"}'),
    ]}
    assert named_in(json.dumps(answer).encode()) == {
        "case": ["k-1", "k-3"], "notice": ["n-2"], "failures": 0}
    deep = {"payloads": [payload(b"json/plain", b"[" * 5000 + b"]" * 5000)]}
    with pytest.raises(CodecRequestError, match="payload 1 says it is JSON"):
        named_in(json.dumps(deep).encode())
    many = {"payloads": [payload(b"json/plain", json.dumps(
        [{"case": f"k-{i}"} for i in range(MAX_NAMED + 1)]).encode())]}
    with pytest.raises(CodecRequestError, match="decode fewer at a time"):
        named_in(json.dumps(many).encode())
