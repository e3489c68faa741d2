"""Rules for the keys that protect personal data: master key files, per-client data keys,
text tokens, crypto-shredding and master key rotation (SQLite and PostgreSQL key stores)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.keys import (
    DecryptionError,
    KeyFileError,
    KeyRing,
    MasterKeys,
    PostgresWrappedKeys,
    SqliteWrappedKeys,
    UnknownKeyError,
    create_once,
)
from tests.backends import PG, create_database, drop_database, skip_or_fail_without_postgres

ROOT = Path(__file__).resolve().parents[1]
NOTE = "Anna Andersson, 19121212-1212, bor tillfälligt hos sin syster på Södermalm"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request, tmp_path: Path) -> Iterator:
    """Opens key stores on one shared database, as separate processes would."""
    opened = []
    if request.param == "sqlite":
        def open_store():
            opened.append(SqliteWrappedKeys(tmp_path / "data" / "keys.sqlite"))
            return opened[-1]
        yield open_store
    else:
        skip_or_fail_without_postgres()
        dbname = create_database()
        env = {**PG, "POSTGRES_DBNAME": dbname}

        def open_store():
            opened.append(PostgresWrappedKeys(env))
            return opened[-1]
        yield open_store
    for store in opened:
        store.close()
    if request.param == "postgres":
        drop_database(dbname)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def ring(data: Path, store_factory) -> KeyRing:
    return KeyRing(MasterKeys.load(data, environ={}), store_factory())


# -- master keys ------------------------------------------------------------------------------


def test_the_master_key_file_is_created_private_on_first_start_and_reused(data: Path):
    first = MasterKeys.load(data, environ={})
    path = data / "master.keys"
    assert mode(path) == 0o600
    assert mode(data) == 0o700
    second = MasterKeys.load(data, environ={})
    assert second.current() == first.current()
    document = json.loads(path.read_text())
    assert document["current"] == first.current_id
    assert len(base64.b64decode(document["keys"][0]["key"])) == 32


def test_a_master_key_file_readable_by_others_is_refused(data: Path):
    MasterKeys.load(data, environ={})
    os.chmod(data / "master.keys", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        MasterKeys.load(data, environ={})


def test_of_two_key_files_written_at_once_the_first_wins(tmp_path: Path):
    path = tmp_path / "some.keys"
    assert create_once(path, b"first")
    assert not create_once(path, b"second")
    assert path.read_bytes() == b"first"
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["some.keys"]  # no temporary files left


STARTER = """
import hashlib, pathlib, sys, time
from application.keys import MasterKeys
data, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.0005)
key_id, key = MasterKeys.load(data, environ={}).current()
print(key_id, hashlib.sha256(key).hexdigest(), flush=True)
"""


@pytest.mark.slow
def test_processes_starting_at_once_end_with_the_same_master_key(data: Path, tmp_path: Path):
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", STARTER, str(data), str(go)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True) for _ in range(6)]
    for process in processes:
        assert process.stdout.readline().strip() == "ready"
    go.touch()
    seen = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    key_id, key = MasterKeys.load(data, environ={}).current()
    assert seen == {f"{key_id} {hashlib.sha256(key).hexdigest()}"}


def test_master_keys_from_the_environment_make_the_first_key_current(data: Path):
    k1, k2 = os.urandom(32), os.urandom(32)
    keys = MasterKeys.load(data, environ={"HOUSING_CHAIN_MASTER_KEYS": f"k2:{b64(k2)}, k1:{b64(k1)}"})
    assert keys.current() == ("k2", k2)
    assert keys.get("k1") == k1
    assert keys.path is None
    assert not (data / "master.keys").exists()
    with pytest.raises(KeyFileError, match="HOUSING_CHAIN_MASTER_KEYS"):
        keys.rotate()


@pytest.mark.parametrize("value", [
    "k1", "k1:not base64!", f"k1:{b64(os.urandom(16))}", f"bad id:{b64(os.urandom(32))}",
    f"k1:{b64(os.urandom(32))},k1:{b64(os.urandom(32))}", " , ",
])
def test_malformed_master_keys_in_the_environment_are_refused(value: str):
    with pytest.raises(KeyFileError):
        MasterKeys.from_env(value)


def test_a_wrapped_key_unwraps_only_with_its_own_aad(data: Path):
    master = MasterKeys.load(data, environ={})
    dek = os.urandom(32)
    blob = master.wrap(dek, b"client-1")
    assert dek not in blob
    assert master.key_id_of(blob) == master.current_id
    assert master.unwrap(blob, b"client-1") == dek
    with pytest.raises(DecryptionError):
        master.unwrap(blob, b"client-2")


def test_the_current_master_key_cannot_be_retired(data: Path):
    master = MasterKeys.load(data, environ={})
    with pytest.raises(KeyFileError, match="current"):
        master.retire(master.current_id)


# -- data keys and tokens ---------------------------------------------------------------------


def test_text_round_trips_through_a_token(ring: KeyRing):
    token = ring.encrypt("client-1", NOTE, "case-17/note")
    assert ring.decrypt("client-1", token, "case-17/note") == NOTE


def test_a_token_is_a_json_string_that_hides_the_text_and_differs_each_time(ring: KeyRing):
    first = ring.encrypt("client-1", NOTE, "case-17/note")
    second = ring.encrypt("client-1", NOTE, "case-17/note")
    assert first != second
    assert json.loads(json.dumps({"note": first})) == {"note": first}
    for token in (first, second):
        assert token.startswith("enc:v1:")
        for part in ("Anna", "Andersson", "19121212", "Södermalm"):
            assert part not in token
        assert b"Andersson" not in base64.urlsafe_b64decode(token.rsplit(":", 1)[1] + "==")


def test_a_token_does_not_decrypt_for_another_owner_or_another_context(ring: KeyRing):
    token = ring.encrypt("client-1", NOTE, "case-17/note")
    ring.data_key("client-2")
    with pytest.raises(DecryptionError):
        ring.decrypt("client-2", token, "case-17/note")
    with pytest.raises(DecryptionError):
        ring.decrypt("client-1", token, "case-18/note")
    body = token.rsplit(":", 1)[1]
    altered = token[:-len(body)] + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(DecryptionError):
        ring.decrypt("client-1", altered, "case-17/note")


def test_each_owner_gets_one_data_key_even_from_two_processes(data: Path, store_factory):
    one = KeyRing(MasterKeys.load(data, environ={}), store_factory())
    other = KeyRing(MasterKeys.load(data, environ={}), store_factory())
    dek = one.data_key("client-1")
    assert len(dek) == 32
    assert other.data_key("client-1") == dek
    assert other.decrypt("client-1", one.encrypt("client-1", NOTE, "n"), "n") == NOTE


def test_looking_up_a_data_key_without_create_makes_none(ring: KeyRing):
    assert ring.data_key("client-9", create=False) is None
    assert list(ring.store.owners()) == []


def test_the_data_key_cache_is_bounded(data: Path, store_factory):
    ring = KeyRing(MasterKeys.load(data, environ={}), store_factory(), max_cached=2)
    tokens = {f"client-{i}": ring.encrypt(f"client-{i}", NOTE, "n") for i in range(5)}
    assert len(ring._cache) == 2
    assert all(ring.decrypt(owner, token, "n") == NOTE for owner, token in tokens.items())


# -- crypto-shredding -------------------------------------------------------------------------


def test_a_destroyed_data_key_makes_its_tokens_read_as_erased(ring: KeyRing, data: Path,
                                                               store_factory):
    token = ring.encrypt("client-1", NOTE, "n")
    kept = ring.encrypt("client-2", "Bo Berg", "n")
    assert ring.destroy("client-1")
    assert not ring.destroy("client-1")
    assert ring.decrypt("client-1", token, "n") is None
    assert ring.decrypt("client-2", kept, "n") == "Bo Berg"
    elsewhere = KeyRing(MasterKeys.load(data, environ={}), store_factory())
    assert elsewhere.decrypt("client-1", token, "n") is None


def database_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                    if p.exists())


def test_a_destroyed_data_key_leaves_no_bytes_in_the_sqlite_files(data: Path):
    store = SqliteWrappedKeys(data / "keys.sqlite")
    ring = KeyRing(MasterKeys.load(data, environ={}), store)
    for i in range(50):
        ring.encrypt(f"client-{i}", NOTE, "n")
    blob, dek = store.get("client-7"), ring.data_key("client-7")
    assert blob in database_bytes(store.path)  # the check below looks in the right place
    assert ring.destroy("client-7")
    on_disk = database_bytes(store.path)
    assert blob not in on_disk
    assert blob[-24:] not in on_disk  # not even the tail of the ciphertext
    assert dek not in on_disk
    assert store.get("client-8") is not None
    store.close()


def test_the_sqlite_key_files_are_private(data: Path):
    store = SqliteWrappedKeys(data / "keys.sqlite")
    KeyRing(MasterKeys.load(data, environ={}), store).encrypt("client-1", NOTE, "n")
    assert mode(store.path) == 0o600
    assert mode(Path(f"{store.path}-wal")) == 0o600
    store.close()


# -- master key rotation ----------------------------------------------------------------------


def test_after_rotating_and_retiring_the_master_key_every_token_still_decrypts(
        ring: KeyRing, data: Path, store_factory):
    tokens = {f"client-{i}": ring.encrypt(f"client-{i}", f"{NOTE} {i}", "n") for i in range(5)}
    old = ring.master.current_id
    new = ring.master.rotate()
    assert ring.master.ids() == [new, old]
    assert ring.rotate_master() == 5
    assert ring.rotate_master() == 0
    ring.retire_master(old)
    master = MasterKeys.load(data, environ={})
    assert master.ids() == [new]
    fresh = KeyRing(master, store_factory())
    assert {o: fresh.decrypt(o, t, "n") for o, t in tokens.items()} == {
        o: f"{NOTE} {i}" for i, o in enumerate(tokens)}


def test_the_old_master_key_is_not_retired_while_a_data_key_needs_it(ring: KeyRing):
    ring.encrypt("client-1", NOTE, "n")
    old = ring.master.current_id
    ring.master.rotate()
    with pytest.raises(KeyFileError, match="rotate_master"):
        ring.retire_master(old)


def test_a_process_that_loaded_keys_before_a_rotation_still_reads_after_it(data: Path,
                                                                           store_factory):
    reader = KeyRing(MasterKeys.load(data, environ={}), store_factory(), cache_seconds=0)
    token = reader.encrypt("client-1", NOTE, "n")
    rotator = KeyRing(MasterKeys.load(data, environ={}), store_factory())
    old = rotator.master.current_id
    rotator.master.rotate()
    assert rotator.rotate_master() == 1
    rotator.retire_master(old)
    assert reader.decrypt("client-1", token, "n") == NOTE  # re-reads the key file on a miss


def test_rotation_in_production_rewraps_under_the_key_put_first_in_the_environment(
        data: Path, store_factory):
    k1, k2 = os.urandom(32), os.urandom(32)
    before = KeyRing(MasterKeys.from_env(f"k1:{b64(k1)}"), store_factory())
    token = before.encrypt("client-1", NOTE, "n")
    after = KeyRing(MasterKeys.from_env(f"k2:{b64(k2)},k1:{b64(k1)}"), store_factory())
    assert after.rotate_master() == 1
    only_new = KeyRing(MasterKeys.from_env(f"k2:{b64(k2)}"), store_factory())
    assert only_new.decrypt("client-1", token, "n") == NOTE
    assert MasterKeys.key_id_of(only_new.store.get("client-1")) == "k2"


def test_a_data_key_under_a_retired_master_key_fails_loudly(data: Path, store_factory):
    k1, k2 = os.urandom(32), os.urandom(32)
    KeyRing(MasterKeys.from_env(f"k1:{b64(k1)}"), store_factory()).data_key("client-1")
    with pytest.raises(UnknownKeyError, match="k1"):
        KeyRing(MasterKeys.from_env(f"k2:{b64(k2)}"), store_factory()).data_key("client-1")


def test_rotation_does_not_bring_back_a_data_key_destroyed_meanwhile(ring: KeyRing):
    ring.encrypt("client-1", NOTE, "n")
    ring.master.rotate()
    real_replace = ring.store.replace

    def destroyed_just_before(owner, old_blob, new_blob):
        ring.store.delete(owner)  # another process shreds the client mid-rotation
        return real_replace(owner, old_blob, new_blob)

    ring.store.replace = destroyed_just_before
    assert ring.rotate_master() == 0
    assert ring.store.get("client-1") is None


# -- the key store contract -------------------------------------------------------------------


def test_a_key_store_keeps_the_first_blob_and_swaps_only_from_the_expected_one(store_factory):
    store = store_factory()
    assert store.put_if_absent("client-1", b"first") == b"first"
    assert store.put_if_absent("client-1", b"second") == b"first"
    assert not store.replace("client-1", b"stale", b"new")
    assert store.replace("client-1", b"first", b"new")
    assert store.get("client-1") == b"new"
    assert list(store.owners()) == ["client-1"]
    assert store.delete("client-1")
    assert not store.delete("client-1")
    assert store.get("client-1") is None


def test_the_postgres_key_store_uses_the_configured_schema():
    skip_or_fail_without_postgres()
    import psycopg

    dbname = create_database()
    try:
        connect = {"host": PG["POSTGRES_HOST"], "port": int(PG["POSTGRES_PORT"]),
                   "user": PG["POSTGRES_USER"], "password": PG["POSTGRES_PASSWORD"],
                   "dbname": dbname, "autocommit": True}
        with psycopg.connect(**connect) as conn:
            conn.execute("CREATE SCHEMA secrets")
        store = PostgresWrappedKeys({**PG, "POSTGRES_DBNAME": dbname, "POSTGRES_SCHEMA": "secrets"})
        store.put_if_absent("client-1", b"blob")
        store.close()
        with psycopg.connect(**connect) as conn:
            assert conn.execute("SELECT table_schema FROM information_schema.tables "
                                "WHERE table_name = 'data_keys'").fetchall() == [("secrets",)]
    finally:
        drop_database(dbname)


ROOT = Path(__file__).resolve().parent.parent
READ_OWNERS = """
import sys
from application.keys import SqliteWrappedKeys
store = SqliteWrappedKeys(sys.argv[1])
print(",".join(sorted(store.owners())))
store.close()
"""


def test_a_second_key_store_in_a_process_leaves_the_first_ones_locks_and_wal_alone(tmp_path):
    """Opening and closing the key file (as creating a store once did) dropped every POSIX
    lock the process held on it: another process closing its store then took itself for the
    last one, deleted the WAL under the running stack, and keys written after it were lost."""
    import subprocess
    import sys

    from application.keys import SqliteWrappedKeys
    path = tmp_path / "data-keys.sqlite"
    first = SqliteWrappedKeys(path)
    first.put_if_absent("x1", b"blob1")
    second = SqliteWrappedKeys(path)  # a second store of the same file in this process

    def others_see() -> str:
        return subprocess.run([sys.executable, "-c", READ_OWNERS, str(path)], check=True,
                              capture_output=True, text=True, cwd=ROOT).stdout.strip()

    assert others_see() == "x1"
    assert path.with_name(path.name + "-wal").exists()  # not deleted by the other's close
    first.put_if_absent("x2", b"blob2")
    assert others_see() == "x1,x2"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    second.close()
    first.close()
