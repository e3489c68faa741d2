"""Keys for personal data: master keys, per-client data keys, and crypto-shredding.

Free text about a client (names, identity numbers, what a caseworker typed) is stored in the
event store only as a token encrypted with that client's own data key (DEK). Events cannot be
changed or deleted, so erasing a client means destroying the DEK: every copy of the text, in
every event, projection or backup, becomes unreadable at once.

DEKs are stored wrapped (encrypted) under a master key, so the key table alone - or a backup of
it - reveals nothing. Master keys come from a private key file in the data directory (embedded
stack) or from an environment variable that a key service fills in (production). Rotating the
master key re-wraps each DEK in place; once done, the old master key can be retired, which
also finishes shredding any copies of destroyed DEKs that linger in database backups.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Protocol, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config import postgres
from config.sqlite_wal import use_wal
from domain.text import SEALED_PREFIX

log = logging.getLogger(__name__)

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit GCM nonce, random per message
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
FILE_FORMAT = "housing-chain-keys/1"


class KeysError(Exception):
    """Base for key problems (named so that it never shadows the builtin KeyError)."""


class KeyFileError(KeysError):
    """The key file or key variable is malformed or not private."""


class UnknownKeyError(KeysError):
    """Data was encrypted under a key id this process does not have (retired, or never given)."""


class DecryptionError(KeysError, ValueError):
    """Ciphertext was tampered with, or is presented with the wrong owner, context or key."""


# -- private files ----------------------------------------------------------------------------


def private_dir(path: Path) -> Path:
    """Create `path` as 0700, and tighten it if it already exists: it holds key files."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists, and tighten it if it does — without ever
    opening an existing file: closing any descriptor of a file drops every POSIX lock the
    process holds on it, so a SQLite connection elsewhere in the process would silently lose
    its locks, and another process could then delete the WAL file under it."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        pass
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def create_once(path: Path, content: bytes) -> bool:
    """Write `path` (0600) unless it exists; True if this call's content won.

    Written to a temporary file and hard-linked into place: the link fails if another process
    got there first, so two processes starting at once cannot each create a different key and
    overwrite each other. The loser simply reads the winner's file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def replace_private(path: Path, content: bytes) -> None:
    """Atomically replace `path` with `content` (0600): readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of a key file between processes (rotate, retire)."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# -- a set of AES-256 keys with ids -----------------------------------------------------------


@dataclass(frozen=True)
class _Keys:
    current: str
    keys: dict[str, bytes]  # newest first
    created: dict[str, str]


class KeySet:
    """AES-256 keys with ids, one of them current: new data uses the current key, old ids stay
    readable until retired.

    Sources, in order: the environment variable `ENV` (`id:BASE64,id:BASE64`, first is current;
    a key service can inject it, and nothing is written to disk), else the file `FILENAME` in the
    data directory, created 0600 on first start.
    """

    FILENAME: ClassVar[str] = "keys"
    ENV: ClassVar[str] = "HOUSING_CHAIN_KEYS"
    PREFIX: ClassVar[str] = "k"

    def __init__(self, keys: Mapping[str, bytes], current: str, *, path: Path | None = None,
                 created: Mapping[str, str] | None = None) -> None:
        self._state = _validated(keys, current, created or {})
        self._path = path
        self._lock = threading.Lock()
        self._mtime = self._file_mtime()

    # sources

    @classmethod
    def load(cls, data_dir: str | Path | None = None,
             environ: Mapping[str, str] | None = None) -> Self:
        """Keys from `ENV` if set, else from `data_dir/FILENAME` (created on first start)."""
        environ = os.environ if environ is None else environ
        value = environ.get(cls.ENV, "").strip()
        if value:
            return cls.from_env(value)
        if data_dir is None:
            raise KeyFileError(f"set {cls.ENV} or give a data directory for {cls.FILENAME}")
        return cls.from_file(Path(data_dir) / cls.FILENAME)

    @classmethod
    def from_env(cls, value: str) -> Self:
        """Parse `id:BASE64,id:BASE64`; the first key is current."""
        keys: dict[str, bytes] = {}
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            if not sep:
                raise KeyFileError(f"{cls.ENV}: expected id:BASE64, got an item without ':'")
            if key_id in keys:
                raise KeyFileError(f"{cls.ENV}: key id {key_id!r} given twice")
            keys[key_id] = _b64_key(encoded, f"{cls.ENV} key {key_id!r}")
        if not keys:
            raise KeyFileError(f"{cls.ENV} holds no keys")
        return cls(keys, next(iter(keys)))

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Read the key file, creating it with one fresh key if it does not exist yet."""
        path = Path(path)
        private_dir(path.parent)
        if not path.exists():
            key_id = cls.new_id()
            state = _Keys(key_id, {key_id: AESGCM.generate_key(256)}, {key_id: _now()})
            create_once(path, _dump(state))  # if another process won, read its key below
        state = _read(path)
        return cls(state.keys, state.current, path=path, created=state.created)

    @classmethod
    def new_id(cls) -> str:
        return f"{cls.PREFIX}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"

    # reading

    @property
    def current_id(self) -> str:
        return self._state.current

    @property
    def path(self) -> Path | None:
        """The key file, or None when the keys came from the environment."""
        return self._path

    @property
    def key_ids(self) -> list[str]:
        return list(self._state.keys)

    def current(self) -> tuple[str, bytes]:
        """The key new data is encrypted with; re-read first if another process rotated the
        file, or this process would go on wrapping under a key that is about to be retired."""
        if self._path is not None and self._file_mtime() != self._mtime:
            self.reload()
        state = self._state
        return state.current, state.keys[state.current]

    def ids(self) -> list[str]:
        """Key ids, current first."""
        return list(self._state.keys)

    def get(self, key_id: str) -> bytes | None:
        """The key with this id; on a miss the key file is re-read, since another process may
        have rotated it (the re-wrapped data then names a key id this process has not seen)."""
        key = self._state.keys.get(key_id)
        if key is None and self._path is not None:
            self.reload()
            key = self._state.keys.get(key_id)
        return key

    def reload(self) -> None:
        if self._path is not None:
            with self._lock:
                self._mtime = self._file_mtime()
                self._state = _read(self._path)

    def _file_mtime(self) -> int | None:
        try:
            return self._path.stat().st_mtime_ns if self._path is not None else None
        except FileNotFoundError:
            return None

    # changing (file source only: an injected variable is changed by whoever injects it)

    def rotate(self) -> str:
        """Add a new current key and return its id; older keys stay until `retire`."""
        path = self._writable()
        with self._lock, _file_lock(path):
            state = _read(path)
            key_id = self.new_id()
            state = _Keys(key_id, {key_id: AESGCM.generate_key(256), **state.keys},
                          {key_id: _now(), **state.created})
            replace_private(path, _dump(state))
            self._state = state
        log.info("key rotated", extra={"key_file": str(path), "key_id": key_id})
        return key_id

    def retire(self, key_id: str) -> None:
        """Forget an old key: anything still encrypted under it becomes unreadable."""
        path = self._writable()
        with self._lock, _file_lock(path):
            state = _read(path)
            if key_id == state.current:
                raise KeyFileError(f"{key_id} is the current key; rotate before retiring it")
            if key_id not in state.keys:
                raise UnknownKeyError(key_id)
            keys = {k: v for k, v in state.keys.items() if k != key_id}
            created = {k: v for k, v in state.created.items() if k != key_id}
            state = _Keys(state.current, keys, created)
            replace_private(path, _dump(state))
            self._state = state
        log.info("key retired", extra={"key_file": str(path), "key_id": key_id})

    def _writable(self) -> Path:
        if self._path is None:
            raise KeyFileError(
                f"these keys come from {self.ENV}: change them where that variable is set "
                "(new key first, old ones after it)")
        return self._path


def _validated(keys: Mapping[str, bytes], current: str, created: Mapping[str, str]) -> _Keys:
    for key_id, key in keys.items():
        if not KEY_ID.match(key_id):
            raise KeyFileError(f"key id {key_id!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
    if current not in keys:
        raise KeyFileError(f"current key {current!r} is not among the keys")
    ordered = {current: keys[current], **{k: v for k, v in keys.items() if k != current}}
    return _Keys(current, ordered, {k: v for k, v in created.items() if k in keys})


def _b64_key(encoded: str, what: str) -> bytes:
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except ValueError as exc:
        raise KeyFileError(f"{what} is not base64") from exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dump(state: _Keys) -> bytes:
    document = {
        "format": FILE_FORMAT,
        "current": state.current,
        "keys": [{"id": k, "key": base64.b64encode(v).decode(), "created": state.created.get(k)}
                 for k, v in state.keys.items()],
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def _read(path: Path) -> _Keys:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        document = json.loads(path.read_bytes())
        if document.get("format") != FILE_FORMAT:
            raise KeyFileError(f"{path}: unknown format {document.get('format')!r}")
        keys = {item["id"]: _b64_key(item["key"], f"{path} key {item['id']!r}")
                for item in document["keys"]}
        created = {item["id"]: item.get("created") or "" for item in document["keys"]}
        return _validated(keys, document["current"], created)
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a valid key file: {exc!r}") from exc


# -- master keys: wrap and unwrap data keys ---------------------------------------------------

WRAP_MAGIC = b"HCW1"


class MasterKeys(KeySet):
    """The keys that wrap per-client data keys; they never encrypt personal data directly."""

    FILENAME = "master.keys"
    ENV = "HOUSING_CHAIN_MASTER_KEYS"
    PREFIX = "m"

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        """AES-256-GCM under the current master key: MAGIC, id length, id, nonce, ciphertext.

        The key id travels in the blob so unwrap finds the right key after a rotation; `aad`
        (the owner) binds the blob to its row, so a blob copied to another row fails to unwrap.
        """
        key_id, key = self.current()
        nonce = os.urandom(NONCE_BYTES)
        header = WRAP_MAGIC + bytes([len(key_id)]) + key_id.encode()
        return header + nonce + AESGCM(key).encrypt(nonce, dek, header + aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        key_id, header, rest = _split_wrapped(blob)
        key = self.get(key_id)
        if key is None:
            raise UnknownKeyError(f"data key wrapped under master key {key_id}, which is not loaded")
        try:
            return AESGCM(key).decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], header + aad)
        except InvalidTag as exc:
            raise DecryptionError("wrapped data key does not belong here or was altered") from exc

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        """The master key id a wrapped blob was made with."""
        return _split_wrapped(blob)[0]


def _split_wrapped(blob: bytes) -> tuple[str, bytes, bytes]:
    blob = bytes(blob)
    if not blob.startswith(WRAP_MAGIC) or len(blob) < len(WRAP_MAGIC) + 1:
        raise DecryptionError("not a wrapped data key")
    end = len(WRAP_MAGIC) + 1 + blob[len(WRAP_MAGIC)]
    if len(blob) < end + NONCE_BYTES + 16:
        raise DecryptionError("wrapped data key is truncated")
    return blob[len(WRAP_MAGIC) + 1:end].decode("ascii"), blob[:end], blob[end:]


# -- where wrapped data keys are stored -------------------------------------------------------


class WrappedKeyStore(Protocol):
    """One wrapped DEK per owner. Every change is conditional, so several processes can share
    the store without locks: the first DEK written for an owner wins, and a re-wrap never
    resurrects a key that was destroyed meanwhile."""

    def get(self, owner: str) -> bytes | None: ...

    def put_if_absent(self, owner: str, blob: bytes) -> bytes:
        """Store `blob` unless the owner has one; return the stored blob, whichever won."""
        ...

    def replace(self, owner: str, old_blob: bytes, new_blob: bytes) -> bool:
        """Compare-and-swap: True if the stored blob was `old_blob` and is now `new_blob`."""
        ...

    def delete(self, owner: str) -> bool: ...

    def owners(self) -> Iterable[str]: ...


class SqliteWrappedKeys:
    """Wrapped DEKs in a SQLite file (0600, WAL).

    `secure_delete` makes SQLite overwrite deleted rows with zeros, and a TRUNCATE checkpoint
    after each delete moves the zeroed page into the main file and empties the WAL, so a
    destroyed key's blob is no longer anywhere in the database files.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)
        private_file(self.path)
        # SQLite gives the -wal and -shm files the main file's permissions
        self._busy_timeout = busy_timeout
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        self._lock = threading.Lock()
        use_wal(self._conn)
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS data_keys ("
            "owner TEXT PRIMARY KEY, blob BLOB NOT NULL, created TEXT NOT NULL)")

    def get(self, owner: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT blob FROM data_keys WHERE owner = ?",
                                     (owner,)).fetchone()
        return bytes(row[0]) if row else None

    def put_if_absent(self, owner: str, blob: bytes) -> bytes:
        with self._lock, self._write():
            self._conn.execute(
                "INSERT INTO data_keys (owner, blob, created) VALUES (?, ?, ?) "
                "ON CONFLICT (owner) DO NOTHING", (owner, blob, _now()))
            row = self._conn.execute("SELECT blob FROM data_keys WHERE owner = ?",
                                     (owner,)).fetchone()
        return bytes(row[0])

    def replace(self, owner: str, old_blob: bytes, new_blob: bytes) -> bool:
        with self._lock, self._write():
            cursor = self._conn.execute(
                "UPDATE data_keys SET blob = ? WHERE owner = ? AND blob = ?",
                (new_blob, owner, old_blob))
        return cursor.rowcount == 1

    def delete(self, owner: str) -> bool:
        with self._lock:
            with self._write():
                cursor = self._conn.execute("DELETE FROM data_keys WHERE owner = ?", (owner,))
            if cursor.rowcount:
                self._checkpoint()
        return cursor.rowcount == 1

    def owners(self) -> list[str]:
        with self._lock:
            return [row[0] for row in
                    self._conn.execute("SELECT owner FROM data_keys ORDER BY owner")]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _checkpoint(self) -> None:
        """Empty the WAL; a reader in another process can hold it, so retry for a while."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            if time.monotonic() > deadline:
                log.warning("data key deleted but the WAL is busy; it is emptied at the next "
                            "checkpoint", extra={"path": str(self.path)})
                return
            time.sleep(0.05)


class PostgresWrappedKeys:
    """Wrapped DEKs in PostgreSQL, connected like the event store (eventsourcing's POSTGRES_*
    variables, POSTGRES_SCHEMA honoured; the schema must exist).

    PostgreSQL keeps deleted rows in dead tuples, its WAL and backups until they are overwritten.
    Those copies are wrapped under a master key, so rotating the master key and retiring the old
    one completes the shredding there.
    """

    def __init__(self, env: Mapping[str, str], *, table: str = "data_keys") -> None:
        from eventsourcing.postgres import PostgresFactory  # psycopg only where it is used
        from psycopg.sql import SQL, Identifier

        self._factory = PostgresFactory(dict(env))
        self._db = self._factory.datastore
        name = SQL("{}.{}").format(Identifier(self._db.schema), Identifier(table))
        self._sql = {key: SQL(text).format(table=name) for key, text in {
            "create": "CREATE TABLE IF NOT EXISTS {table} (owner text PRIMARY KEY, "
                      "blob bytea NOT NULL, created timestamptz NOT NULL DEFAULT now())",
            "get": "SELECT blob FROM {table} WHERE owner = %s",
            "insert": "INSERT INTO {table} (owner, blob) VALUES (%s, %s) "
                      "ON CONFLICT (owner) DO NOTHING",
            "replace": "UPDATE {table} SET blob = %s WHERE owner = %s AND blob = %s",
            "delete": "DELETE FROM {table} WHERE owner = %s",
            "owners": "SELECT owner FROM {table} ORDER BY owner",
            "vacuum": "VACUUM {table}",
        }.items()}
        if self._factory.env_create_table():
            with postgres.creating_tables(env), self._db.transaction(commit=True) as cursor:
                cursor.execute(self._sql["create"])

    def get(self, owner: str) -> bytes | None:
        with self._db.transaction() as cursor:
            row = cursor.execute(self._sql["get"], (owner,)).fetchone()
        return bytes(row["blob"]) if row else None

    def put_if_absent(self, owner: str, blob: bytes) -> bytes:
        with self._db.transaction(commit=True) as cursor:
            cursor.execute(self._sql["insert"], (owner, blob))
            # READ COMMITTED: this statement sees a row a concurrent winner committed
            row = cursor.execute(self._sql["get"], (owner,)).fetchone()
        return bytes(row["blob"])

    def replace(self, owner: str, old_blob: bytes, new_blob: bytes) -> bool:
        with self._db.transaction(commit=True) as cursor:
            cursor.execute(self._sql["replace"], (new_blob, owner, old_blob))
            return cursor.rowcount == 1

    def delete(self, owner: str) -> bool:
        with self._db.transaction(commit=True) as cursor:
            cursor.execute(self._sql["delete"], (owner,))
            return cursor.rowcount == 1

    def owners(self) -> list[str]:
        with self._db.transaction() as cursor:
            return [row["owner"] for row in cursor.execute(self._sql["owners"]).fetchall()]

    def vacuum(self) -> bool:
        """VACUUM the key table after a destroy, so the deleted wrapped key leaves the table's
        pages (WAL and backups keep it until the old master key is retired); False if the
        role may not."""
        try:
            with self._db.cursor() as cursor:  # the pool's connections are autocommit
                cursor.execute(self._sql["vacuum"])
        except Exception as exc:  # noqa: BLE001 - the key is destroyed either way
            log.warning("VACUUM of the data key table failed: %s", exc)
            return False
        return True

    def close(self) -> None:
        self._factory.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the key ring: per-client data keys and text tokens ---------------------------------------

TOKEN_PREFIX = SEALED_PREFIX  # the shape is the domain's (domain.text.is_sealed)
SHREDDED_KID = "shredded----"  # the key id of a text erased as it arrived (KeyRing.shredded)


@dataclass(frozen=True)
class _DataKey:
    aead: AESGCM
    kid: str  # fingerprint of the DEK: tells a wrong owner from tampering, reveals nothing
    loaded: float


class KeyRing:
    """Per-client data keys (DEKs): encrypt a client's text, and erase it by destroying the key.

    DEKs are cached in memory (bounded LRU) for `cache_seconds`; that is also how long another
    process that still has a destroyed key cached can read that client's text.
    """

    def __init__(self, master: MasterKeys, store: WrappedKeyStore, *, max_cached: int = 1024,
                 cache_seconds: float = 60.0) -> None:
        self.master = master
        self.store = store
        self._max_cached = max_cached
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[bytes, _DataKey]] = OrderedDict()
        self._lock = threading.Lock()

    def data_key(self, owner: str, create: bool = True) -> bytes | None:
        """The owner's 256-bit DEK, made on first use; None if it has none (or it was destroyed)
        and `create` is False."""
        found = self._entry(owner, create)
        return found[0] if found else None

    def encrypt(self, owner: str, plaintext: str, context: str) -> str:
        """`enc:v1:<key fingerprint>:<base64url nonce+ciphertext>` - a str, to go into JSON events.

        The AAD binds owner and context (say `case-17/note`), so a token moved to another client
        or another field does not decrypt there.
        """
        _, key = self._entry(owner, create=True)
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plaintext.encode(), _text_aad(owner, context, key.kid))
        return f"{TOKEN_PREFIX}{key.kid}:{_b64url(nonce + sealed)}"

    def decrypt(self, owner: str, token: str, context: str) -> str | None:
        """The plaintext, or None when the owner's key is gone: the text was erased."""
        kid, sealed = _parse_token(token)
        found = self._entry(owner, create=False)
        if found is None:
            return None
        key = found[1]
        if not hmac.compare_digest(kid, key.kid):
            raise DecryptionError("token was not encrypted with this owner's data key")
        try:
            plain = key.aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                     _text_aad(owner, context, kid))
        except InvalidTag as exc:
            raise DecryptionError("token does not belong to this owner and context, "
                                  "or was altered") from exc
        return plain.decode()

    def destroy(self, owner: str) -> bool:
        """Crypto-shred: delete the owner's DEK so every token made with it is unreadable."""
        with self._lock:
            self._cache.pop(owner, None)
        deleted = self.store.delete(owner)
        with self._lock:
            self._cache.pop(owner, None)  # in case a concurrent call cached it meanwhile
        return deleted

    def rotate_master(self) -> int:
        """Re-wrap every DEK that is not under the current master key; returns how many.

        Make the new master key current first (`master.rotate()`, or put it first in
        HOUSING_CHAIN_MASTER_KEYS). Each row is swapped on its own with compare-and-swap, so
        other processes keep reading throughout, and a key destroyed meanwhile stays destroyed.
        Safe to re-run after an interruption. Then `retire_master(old_id)`.
        """
        self.master.reload()  # another process may have made a newer key current
        current = self.master.current_id
        rewrapped = 0
        for owner in list(self.store.owners()):
            for _attempt in range(5):  # a lost swap means someone else changed the row: re-read
                blob = self.store.get(owner)
                if blob is None or self.master.key_id_of(blob) == current:
                    break
                aad = _dek_aad(owner)
                if self.store.replace(owner, blob, self.master.wrap(self.master.unwrap(blob, aad),
                                                                     aad)):
                    rewrapped += 1
                    break
            else:
                raise KeysError("a data key keeps changing during rotation; re-run rotate_master")
        return rewrapped

    def master_ids_in_use(self) -> set[str]:
        """The master keys some stored data key is wrapped under."""
        return {self.master.key_id_of(blob) for owner in self.store.owners()
                if (blob := self.store.get(owner))}

    def retire_master(self, key_id: str) -> None:
        """Retire an old master key, refusing while a stored DEK is still wrapped under it."""
        still = [owner for owner in self.store.owners()
                 if (blob := self.store.get(owner)) and self.master.key_id_of(blob) == key_id]
        if still:
            raise KeyFileError(f"{len(still)} data keys are still wrapped under {key_id}; "
                               "run rotate_master first")
        self.master.retire(key_id)

    @staticmethod
    def shredded(plaintext: str) -> str:
        """A token of `plaintext` under a key made for it and dropped at once: the shape of a
        sealed text that nobody can open (a text for a client erased already)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(AESGCM.generate_key(256)).encrypt(nonce, plaintext.encode(), None)
        return f"{TOKEN_PREFIX}{SHREDDED_KID}:{_b64url(nonce + sealed)}"

    @staticmethod
    def is_shredded(token: str) -> bool:
        return token.startswith(f"{TOKEN_PREFIX}{SHREDDED_KID}:")

    @staticmethod
    def is_token(value: object) -> bool:
        return isinstance(value, str) and value.startswith(TOKEN_PREFIX)

    def _entry(self, owner: str, create: bool) -> tuple[bytes, _DataKey] | None:
        if not owner:
            raise ValueError("a data key needs an owner")
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(owner)
            if cached and now - cached[1].loaded < self._cache_seconds:
                self._cache.move_to_end(owner)
                return cached
        blob = self.store.get(owner)
        if blob is None:
            if not create:
                return None
            fresh = self.master.wrap(AESGCM.generate_key(256), _dek_aad(owner))
            blob = self.store.put_if_absent(owner, fresh)  # another process may have won
        dek = self.master.unwrap(blob, _dek_aad(owner))
        entry = (dek, _DataKey(AESGCM(dek), _fingerprint(dek), now))
        with self._lock:
            self._cache[owner] = entry
            self._cache.move_to_end(owner)
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
        return entry


def _dek_aad(owner: str) -> bytes:
    return json.dumps(["housing-chain/dek/v1", owner]).encode()


def _text_aad(owner: str, context: str, kid: str) -> bytes:
    return json.dumps(["housing-chain/text/v1", owner, context, kid]).encode()


def _fingerprint(dek: bytes) -> str:
    return _b64url(hmac.new(dek, b"housing-chain/dek-id", hashlib.sha256).digest()[:9])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parse_token(token: str) -> tuple[str, bytes]:
    if not KeyRing.is_token(token):
        raise DecryptionError(f"not an {TOKEN_PREFIX} token")
    kid, sep, body = token[len(TOKEN_PREFIX):].partition(":")
    if not sep:
        raise DecryptionError("malformed token")
    try:
        sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as exc:
        raise DecryptionError("malformed token") from exc
    if len(sealed) < NONCE_BYTES + 16:
        raise DecryptionError("token is truncated")
    return kid, sealed


# -- one installation's key ring ----------------------------------------------------------------

BLIND_INDEX_OWNER = "housing-chain/blind-index"  # no client id has a slash


def open_keyring(data_dir: str | Path, postgres_env: Mapping[str, str] | None = None) -> KeyRing:
    """The key ring of an installation: master keys from the data directory (or
    HOUSING_CHAIN_MASTER_KEYS), wrapped data keys beside the event store - in PostgreSQL when
    that is given, so every process of a production installation shares them."""
    master = MasterKeys.load(data_dir)
    store: WrappedKeyStore = (PostgresWrappedKeys(postgres_env) if postgres_env is not None
                              else SqliteWrappedKeys(Path(data_dir) / "data-keys.sqlite"))
    return KeyRing(master, store)


def blind_index(keyring: KeyRing, normalized: str) -> str:
    """HMAC-SHA256 of a normalized personal number: finds a number already registered without
    storing it in the clear. The HMAC key is a data key of its own, wrapped under the master key,
    so it survives master key rotation (an index derived from the master key itself would change
    with every rotation) and is unreadable without the master key."""
    base = keyring.data_key(BLIND_INDEX_OWNER)
    assert base is not None
    key = hmac.new(base, b"housing-chain/blind-index/personal-number/v1", hashlib.sha256).digest()
    return hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()


def request_digest(keyring: KeyRing | None, canonical: str, key: bytes | None = None) -> str:
    """A keyed digest of a step request as its caller sent it (`canonical`), kept in the step's
    access record so that an Idempotency-Key sent again with another body is told apart from
    a retry: under `key` when given (a client's data key, for their typed text), else the
    blind index's own key with another label; plain SHA-256 only when the installation runs
    without keys (the benchmark's baseline)."""
    if key is None and keyring is not None:
        key = keyring.data_key(BLIND_INDEX_OWNER)
    if key is None:
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]
    derived = hmac.new(key, b"housing-chain/request-digest/v1", hashlib.sha256).digest()
    return hmac.new(derived, canonical.encode(), hashlib.sha256).hexdigest()[:32]
