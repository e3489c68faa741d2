"""Encrypt every Temporal payload, so the Temporal UI, its HTTP API and its database only ever
hold ciphertext.

Workflow inputs, results, signals, queries, memos and (with the failure converter below)
failure messages pass through `EncryptionCodec`. The Temporal UI and CLI read them through the
remote codec protocol (`codec_endpoint`), which only signed-in staff can reach. What the codec
cannot cover: workflow ids, search attributes and task queue names are never encoded, so they
must not contain personal data.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import temporalio.converter
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from application.keys import NONCE_BYTES, DecryptionError, KeySet, UnknownKeyError

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"


class CodecKeys(KeySet):
    """Payload keys, separate from the master keys: the codec server needs these, and should
    not be able to unwrap client data keys."""

    FILENAME = "codec.keys"
    ENV = "HOUSING_CHAIN_CODEC_KEYS"
    PREFIX = "c"


class EncryptionCodec(temporalio.converter.PayloadCodec):
    """AES-256-GCM over each whole serialized payload (metadata included, so even the original
    encoding is hidden), under the current codec key; any key id still loaded decrypts."""

    def __init__(self, keys: CodecKeys) -> None:
        self.keys = keys
        self._aeads: dict[tuple[str, bytes], AESGCM] = {}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id, key = self.keys.current()
        aead = self._aead(key_id, key)
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = aead.encrypt(nonce, payload.SerializeToString(), _aad(key_id))
            encoded.append(Payload(
                metadata={"encoding": ENCODING, KEY_ID_META: key_id.encode()},
                data=nonce + sealed))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Payloads without our encoding pass unchanged: histories recorded before encryption
        was switched on must still replay."""
        return [self._decode_one(payload) if payload.metadata.get("encoding") == ENCODING
                else payload for payload in payloads]

    def _decode_one(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID_META, b"").decode()
        key = self.keys.get(key_id)
        if key is None:
            raise UnknownKeyError(f"payload encrypted under codec key {key_id!r}, "
                                  "which is not loaded (retired?)")
        data = payload.data
        try:
            plain = self._aead(key_id, key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:],
                                                    _aad(key_id))
        except InvalidTag as exc:
            raise DecryptionError("encrypted payload was altered") from exc
        return Payload.FromString(plain)

    def _aead(self, key_id: str, key: bytes) -> AESGCM:
        aead = self._aeads.get((key_id, key))
        if aead is None:
            aead = self._aeads[(key_id, key)] = AESGCM(key)
        return aead


def _aad(key_id: str) -> bytes:
    return b"housing-chain/payload/v1\0" + key_id.encode()


SWITCH = "HOUSING_CHAIN_CODEC"


def encryption_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False only when `HOUSING_CHAIN_CODEC=off`: a benchmark-only switch (bench/
    encryption_cost.py measures the cost of encryption by running without it). It turns off the
    payload codec *and* the per-client encryption of free text and identities, so it must never
    be set on an installation that holds real personal data."""
    environ = os.environ if environ is None else environ
    return environ.get(SWITCH, "on").strip().lower() not in ("off", "0", "false", "no")


def data_converter(keys: CodecKeys) -> DataConverter:
    """The project's pydantic converter with every payload encrypted.

    Failure messages and stack traces are moved into an encoded attribute as well: an exception
    text can quote a client's name, and the UI shows failures to anyone who opens the workflow.
    (Plain, unencrypted, only under the benchmark switch: see `encryption_enabled`.)
    """
    if not encryption_enabled():
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


# -- remote codec protocol (Temporal UI / CLI `--codec-endpoint`) -----------------------------


class CodecRequestError(Exception):
    """A request the codec endpoint refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def codec_endpoint(codec: temporalio.converter.PayloadCodec, path: str, body: bytes) -> bytes:
    """Answer POST `.../encode` or `.../decode`: JSON `{"payloads": [{"metadata": {k: base64},
    "data": base64}]}` in, the same shape out.

    No web framework here: the HTTP layer authenticates, checks roles, sets CORS for the
    Temporal UI's origin, and maps `CodecRequestError` to its status.
    """
    operation = path.rstrip("/").rsplit("/", 1)[-1]
    if operation not in ("encode", "decode"):
        raise CodecRequestError(404, "the codec endpoint answers /encode and /decode")
    try:
        request = json_format.ParseDict(json.loads(body or b"{}"), Payloads(),
                                        ignore_unknown_fields=True)
    except (ValueError, TypeError, AttributeError, RecursionError,
            json_format.ParseError) as exc:
        raise CodecRequestError(400, "expected {\"payloads\": [...]}: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                                ) from None
    try:
        if operation == "encode":
            result = await codec.encode(request.payloads)
        else:
            result = await codec.decode(request.payloads)
    except (UnknownKeyError, DecryptionError) as exc:
        raise CodecRequestError(400, str(exc)) from exc
    except (ValueError, TypeError, InvalidTag) as exc:  # a payload cut short or altered
        raise CodecRequestError(400, "a payload cannot be decoded: it is cut short or altered "
                                f"({type(exc).__name__})") from None
    answer = json_format.MessageToDict(Payloads(payloads=result))
    answer.setdefault("payloads", [])
    return json.dumps(answer).encode()


_NAMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # domain.commands' Id
MAX_NAMED = 500


def named_in(answer: bytes) -> dict[str, Any]:
    """The cases and notices that decoded payloads (a `codec_endpoint` answer) name, in order
    of first mention: the `case` and `notice` fields of their JSON, at any depth, that are
    ids. What a decode shows is then an access to those, scoped and recorded as a read of
    each, and `failures` counts failure attributes (a message and a stack trace, which name
    what failed only in their text). A payload that says it is JSON and is not readable as
    JSON is refused rather than let through unchecked, and so is more than MAX_NAMED (a
    decode is a read, not an export)."""
    found: dict[str, dict[str, None]] = {"case": {}, "notice": {}}
    failures = 0

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in found and isinstance(inner, str):
                    if _NAMED.fullmatch(inner):
                        found[key].setdefault(inner)
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for number, payload in enumerate(json.loads(answer).get("payloads", []), start=1):
        try:
            encoding = base64.b64decode(payload.get("metadata", {}).get("encoding", ""))
            if not encoding.startswith(b"json/"):
                continue
            value = json.loads(base64.b64decode(payload.get("data", "")))
            walk(value)
        except (ValueError, TypeError, RecursionError):
            raise CodecRequestError(400, f"payload {number} says it is JSON and cannot be read "
                                    "as JSON") from None
        if isinstance(value, dict) and "stack_trace" in value:
            failures += 1
    if sum(map(len, found.values())) > MAX_NAMED:
        raise CodecRequestError(400, f"the payloads name more than {MAX_NAMED} cases and "
                                "notices: decode fewer at a time")
    return {**{key: list(ids) for key, ids in found.items()}, "failures": failures}
