"""The local issuer's pending sign-in codes, where every API process on the data directory
sees them: a small SQLite table, `<data>/web-codes.sqlite`. Only a code's SHA-256 is stored;
taking a code deletes its row in the same statement, so it is redeemed once in all."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from config.sqlite_wal import use_wal


class CodeStore:
    def __init__(self, data: Path) -> None:
        Path(data).mkdir(parents=True, exist_ok=True)
        self.path = Path(data) / "web-codes.sqlite"
        db = self._db()
        try:
            db.execute("CREATE TABLE IF NOT EXISTS codes (code TEXT PRIMARY KEY, "
                       "grant_json TEXT NOT NULL, expires REAL NOT NULL)")
        finally:
            db.close()

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        use_wal(db)
        return db

    @staticmethod
    def _key(code: str) -> str:
        return hashlib.sha256(code.encode()).hexdigest()

    def issue(self, grant: dict[str, Any], expires: float) -> str:
        """A new code for the grant (JSON-able), valid until `expires` (time.time())."""
        code = secrets.token_urlsafe(32)
        db = self._db()
        try:
            db.execute("DELETE FROM codes WHERE expires < ?", (time.time(),))
            db.execute("INSERT INTO codes VALUES (?, ?, ?)",
                       (self._key(code), json.dumps(grant), expires))
        finally:
            db.close()
        return code

    def take(self, code: str) -> tuple[dict[str, Any], float] | None:
        """The grant and its expiry, removed: gone even if the rest fails, one taker only."""
        db = self._db()
        try:
            row = db.execute("DELETE FROM codes WHERE code = ? RETURNING grant_json, expires",
                             (self._key(code),)).fetchone()
        finally:
            db.close()
        if row is None or row[1] < time.time():
            return None
        return json.loads(row[0]), row[1]
