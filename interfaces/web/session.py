"""The signed-in session: an encrypted cookie (Fernet, key in the data directory) holding
the access token, the CSRF token and the time of the last request; the idle time-out is
checked on every request. The person is always taken from the token, checked again."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from application.keys import create_once as write_private_file

SESSION = "hc_session"
FLOW = "hc_flow"
CSRF = "hc_csrf"
LANG = "hc_lang"


class Sealer:
    def __init__(self, data: Path) -> None:
        path = Path(data) / "web-session-key"
        if not path.exists():
            Path(data).mkdir(parents=True, exist_ok=True)
            write_private_file(path, Fernet.generate_key())
        self.fernet = Fernet(path.read_bytes().strip())

    def seal(self, value: dict[str, Any]) -> str:
        return self.fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str | None, max_age: int | None = None) -> dict[str, Any] | None:
        if not token:
            return None
        try:
            return json.loads(self.fernet.decrypt(token.encode(), ttl=max_age))
        except (InvalidToken, ValueError):
            return None


def new_session(access_token: str, now: float | None = None) -> dict[str, Any]:
    return {"token": access_token, "csrf": secrets.token_urlsafe(24),
            "seen": int(time.time() if now is None else now)}


def idle(session: dict[str, Any], idle_seconds: int, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return int(now) - int(session.get("seen", 0)) > idle_seconds
