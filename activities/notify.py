"""Delivering reminders: the worklist always, e-mail over SMTP when `smtp_host` is set.

Idempotent through an outbox keyed by the reminder id (`outbox.sqlite` in the data directory,
or the table `outbox` in PostgreSQL when `PERSISTENCE_MODULE=eventsourcing.postgres`): a
reminder already marked sent is not sent again, so an activity retried after its mail went
out (a lost reply, a worker restart) returns "already sent". The Message-ID is derived from
the reminder id too, so a receiving mail system can drop the one duplicate that remains
possible: a crash after the SMTP server accepted the message but before the outbox row was
marked sent.

An SMTP failure raises, and Temporal retries the activity. Logs name the reminder, the case,
the kind and the actor, never a client's personal data (cases carry only pseudonymous ids).
"""

from __future__ import annotations

import email.policy
import hashlib
import os
import re
import smtplib
import sqlite3
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import structlog
from temporalio import activity

from application.i18n import N_, translations
from application.labels import DUE, due_key
from application.preferences import Preferences
from config import postgres
from config.settings import Settings
from workflows.messages import ReminderDelivery

log = structlog.get_logger("notify")

SENT, ALREADY_SENT, WORKLIST_ONLY = "sent", "already sent", "worklist only"
SMTP_TIMEOUT = 30.0
# Headers up to RFC 5322's 998 characters stay on one line: a long Message-ID is not folded.
UNFOLDED = email.policy.default.clone(max_line_length=998)
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")


def message_id(reminder_id: str, domain: str) -> str:
    """A stable Message-ID: `<case-c1.home_visit.2026-05-01.<hash>@domain>`."""
    readable = _NOT_ATEXT.sub(".", reminder_id).strip(".") or "reminder"
    digest = hashlib.sha256(reminder_id.encode("utf-8")).hexdigest()[:12]
    return f"<{readable}.{digest}@{domain}>"


def address_of(actor: str, domain: str) -> str:
    """`bolots.ahmed` → `bolots.ahmed@<domain>`; an actor that is already an address stays."""
    return actor if "@" in actor else f"{actor}@{domain}"


def _false(value: str | None) -> bool:
    return (value or "").strip().lower() in ("n", "no", "f", "false", "off", "0")


class Outbox:
    """The outbox table: one row per reminder id, status `pending`, `sent` or `worklist_only`."""

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.postgres = env.get("PERSISTENCE_MODULE", "").endswith("postgres")
        self.env = env
        self.mark = "%s" if self.postgres else "?"
        self.table = "outbox"
        if self.postgres and env.get("POSTGRES_SCHEMA"):
            schema = env["POSTGRES_SCHEMA"]
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
                raise ValueError(f"POSTGRES_SCHEMA {schema!r} is not a plain identifier")
            self.table = f"{schema}.outbox"
        self.path = settings.data / "outbox.sqlite"
        self._created = False
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        if self.postgres:
            return postgres.connect(self.env)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self._connect()
        try:
            self._create(conn)
            cursor = conn.execute(sql.replace("?", self.mark), params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            conn.close()

    def _create(self, conn: Any) -> None:
        with self._lock:
            if self._created:
                return
            if not (self.postgres and _false(self.env.get("CREATE_TABLE"))):
                try:
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {self.table} ("
                        "reminder_id TEXT PRIMARY KEY, case_id TEXT NOT NULL, kind TEXT NOT NULL, "
                        "due TEXT NOT NULL, to_actor TEXT NOT NULL, escalation BOOLEAN NOT NULL, "
                        "status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
                    )
                except Exception as exc:  # noqa: BLE001 - another process created it just now
                    if "already exists" not in str(exc) and "duplicate key" not in str(exc):
                        raise
            self._created = True

    def record(self, d: ReminderDelivery) -> str:
        """Add the reminder as `pending` unless it is there; returns its status."""
        now = datetime.now(UTC).isoformat()
        self._execute(
            f"INSERT INTO {self.table} (reminder_id, case_id, kind, due, to_actor, escalation, "
            "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT (reminder_id) DO NOTHING",
            (d.reminder_id, d.case, d.kind, d.due.isoformat(), d.to_actor, d.escalation, now, now),
        )
        return self.status(d.reminder_id) or "pending"

    def status(self, reminder_id: str) -> str | None:
        rows = self._execute(f"SELECT status FROM {self.table} WHERE reminder_id = ?", (reminder_id,))
        return rows[0][0] if rows else None

    def set_status(self, reminder_id: str, status: str) -> None:
        self._execute(
            f"UPDATE {self.table} SET status = ?, updated_at = ? WHERE reminder_id = ?",
            (status, datetime.now(UTC).isoformat(), reminder_id),
        )


class Notifier:
    """The `deliver_reminder` activity (sync: the worker runs it in its thread pool)."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        env = os.environ if env is None else env
        self.outbox = Outbox(settings, env)
        self.preferences = Preferences(env, settings.data / "preferences.sqlite")

    def recipient(self, d: ReminderDelivery) -> str:
        return self.settings.supervisor if d.escalation else d.to_actor

    def compose(self, d: ReminderDelivery) -> EmailMessage:
        """The mail in the language its recipient chose on the pages, else the municipality's
        (`mail_language`): the due item's name as the worklist has it, the case, the date; in
        English also the workflow's sentence."""
        s = self.settings
        lang = self.preferences.language(self.recipient(d)) or s.mail_language
        g = translations(lang).gettext
        kind = d.kind.removeprefix("escalation:") if d.escalation else d.kind
        label = DUE.get(due_key(kind))
        name = g(label) if label else kind.replace("_", " ")
        due = d.due.isoformat()
        msg = EmailMessage(policy=UNFOLDED)
        msg["From"] = s.mail_sender
        msg["To"] = address_of(self.recipient(d), s.mail_domain)
        if d.escalation:
            msg["Subject"] = g(N_("Escalation: case %(case)s, %(what)s, due %(due)s (unanswered "
                                  "reminder to %(actor)s)")) % {
                "case": d.case, "what": name, "due": due, "actor": d.to_actor}
        else:
            msg["Subject"] = g(N_("Reminder: case %(case)s, %(what)s, due %(due)s")) % {
                "case": d.case, "what": name, "due": due}
        msg["Message-ID"] = message_id(d.reminder_id, s.mail_domain)
        msg["Date"] = formatdate(usegmt=True)
        msg["X-Housing-Chain-Reminder"] = d.reminder_id
        lines = [d.text if lang == "en" else f"{name}.", "",
                 g(N_("Case: %(case)s")) % {"case": d.case}, g(N_("Due: %(due)s")) % {"due": due},
                 g(N_("Reminder: %(id)s")) % {"id": d.reminder_id}]
        if d.escalation:
            lines.append(g(N_("Escalated: the reminder to %(actor)s is still unanswered."))
                         % {"actor": d.to_actor})
        lines += ["", g(N_("Where the case stands: housing-chain status %(case)s"))
                  % {"case": d.case}]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, msg: EmailMessage) -> None:
        assert self.settings.smtp_host
        with smtplib.SMTP(self.settings.smtp_host, self.settings.smtp_port,
                          timeout=SMTP_TIMEOUT) as smtp:
            smtp.send_message(msg)

    @activity.defn(name="deliver_reminder")
    def deliver(self, d: ReminderDelivery) -> str:
        """"sent", "already sent" or "worklist only"; raises (retryably) when SMTP fails."""
        bound = log.bind(reminder_id=d.reminder_id, case=d.case, kind=d.kind,
                         to_actor=self.recipient(d), escalation=d.escalation)
        status = self.outbox.record(d)
        if status == "sent":
            bound.info("reminder already sent")
            return ALREADY_SENT
        if not self.settings.smtp_host:
            self.outbox.set_status(d.reminder_id, "worklist_only")
            bound.info("reminder on the worklist only (e-mail off)")
            return WORKLIST_ONLY
        try:
            self.send(self.compose(d))
        except (OSError, smtplib.SMTPException) as exc:
            bound.warning("reminder e-mail failed; will retry", error=type(exc).__name__)
            raise
        self.outbox.set_status(d.reminder_id, "sent")
        bound.info("reminder sent", channel="email")
        return SENT
