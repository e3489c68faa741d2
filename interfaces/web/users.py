"""The local issuer's users: `<data>/users.json`, passwords hashed with argon2.

Only the embedded stack (no HOUSING_CHAIN_OIDC_ISSUER) signs people in from this file; a
municipality's identity provider keeps its own users.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.access import ROLE_NAMES
from domain.personal_number import find_personal_number

_hasher = PasswordHasher()
_lock = threading.Lock()
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# a hash to verify against when the user does not exist, so timing does not tell
_DUMMY = _hasher.hash("no such user")


@dataclass(frozen=True)
class User:
    name: str
    roles: tuple[str, ...]
    units: tuple[str, ...]


def users_path(data: Path) -> Path:
    return Path(data) / "users.json"


def _read(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return json.loads(path.read_text("utf-8")).get("users", {})


def add_user(data: Path, name: str, password: str, roles: list[str], units: list[str]) -> User:
    """Create or replace a user; the password is stored as an argon2 hash only."""
    if find_personal_number(name):  # it would be the subject of every access record
        raise ValueError("user name: contains a personal identity number; name staff by a "
                         "user id")
    if not NAME.match(name):
        raise ValueError(f"user name {name!r}: letters, digits and . _ @ - only")
    bad = [r for r in roles if r not in ROLE_NAMES]
    if bad or not roles:
        raise ValueError(f"role {', '.join(bad) or '(none)'}: one of {', '.join(ROLE_NAMES)}")
    if len(password) < 8:
        raise ValueError("password: at least 8 characters")
    path = users_path(data)
    with _lock:
        Path(data).mkdir(parents=True, exist_ok=True)
        users = _read(path)
        users[name] = {"password": _hasher.hash(password), "roles": list(roles),
                       "units": list(units)}
        temp = path.with_name(f".users.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"users": users}, f, ensure_ascii=False, indent=2)
        os.replace(temp, path)
    return User(name, tuple(roles), tuple(units))


def authenticate(data: Path, name: str, password: str) -> User | None:
    """The user, when the password matches; None otherwise (same work either way)."""
    entry = _read(users_path(data)).get(name)
    try:
        _hasher.verify(entry["password"] if entry else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if entry is None:
        return None
    return User(name, tuple(entry.get("roles", ())), tuple(entry.get("units", ())))
