"""The `erase_expired_identities` activity: gallring of client identities.

A client's identity (name, personal identity number) and the free text typed about them are
kept `Policy.identity_retention_years` after the last entry in their records, and erased
then. A client is due when every case (and eviction-prevention notice) of theirs is closed and
the latest effective date of a step in any of them is before the cutoff; one open case or
notice, or one recent step, keeps the whole identity. The dates come from the read models
(`rm_cases`, `rm_steps`, `rm_notices`, brought up to the event store's head first), so a
caseworker's backdated step counts by the day it happened, not the day it was typed.

Each identity is erased through `UseCases.erase_identity` as the system principal
`system:identity-retention`, so the store's erasure, the crypto-shredding and the tombstone are
exactly those of an erasure by hand; the access log gets an `identity.retention` record per
client (pseudonymous client id, its last entry and the cutoff: no names). Idempotent: clients
that already have a tombstone and no data key are skipped, so a retried or repeated run erases
and logs nothing twice; a client erased earlier about whom text was typed since (a new data
key) is shredded again once past the cutoff.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import structlog
from temporalio import activity

from config.settings import Settings
from domain.access import Principal, Role
from domain.calendar import add_months
from workflows.messages import RetentionInput, RetentionResult

log = structlog.get_logger("retention")

SYSTEM = Principal(subject="system:identity-retention", roles=frozenset({Role.ADMIN.value}),
                   address="temporal-worker")
CLOSED = "closed"


def retention_cutoff(today: date, years: int) -> date:
    """The first day that still keeps an identity: a last entry before it is expired."""
    return add_months(today, -12 * years)


def expired_clients(view: Any, cutoff: date) -> dict[str, date]:
    """Client id → day of their last entry, for the clients whose every case and notice is
    closed and whose last entry is before `cutoff`."""
    latest: dict[str, date | None] = {}
    still_open: set[str] = set()
    cases = view.query(
        "SELECT c.client_id, c.stage, c.closed_day, "
        "(SELECT MAX(s.step_day) FROM rm_steps s WHERE s.case_uuid = c.case_uuid) AS last_day "
        "FROM rm_cases c")
    for row in cases:
        client = row["client_id"]
        if row["stage"] != CLOSED:
            still_open.add(client)
        days = [d for d in (row["last_day"], row["closed_day"]) if d is not None]
        _later(latest, client, date.fromordinal(max(days)) if days else None)
    for row in view.query("SELECT client_id, notice_date, closed_on FROM rm_notices"):
        client = row["client_id"]
        if row["closed_on"] is None:
            still_open.add(client)
            continue
        _later(latest, client, max(date.fromisoformat(str(v)[:10])
                                   for v in (row["closed_on"], row["notice_date"]) if v))
    return {client: last for client, last in sorted(latest.items())
            if client and client not in still_open and last is not None and last < cutoff}


def _later(latest: dict[str, date | None], client: str, day: date | None) -> None:
    known = latest.get(client)
    latest[client] = day if known is None else max(known, day or known)


class RetentionActivities:
    """The worker passes its own key ring: a data key destroyed here must not linger in the
    cache of the store that the case activities encrypt with."""

    def __init__(self, settings: Settings, keyring: Any = None,
                 catch_up_timeout: float = 120.0) -> None:
        self.settings = settings
        self.keyring = keyring
        self.catch_up_timeout = catch_up_timeout
        self._use_cases: Any = None
        self._lock = threading.Lock()

    def use_cases(self) -> Any:
        with self._lock:
            if self._use_cases is None:
                from application.use_cases import UseCases

                self._use_cases = UseCases(self.settings)
                if self.keyring is not None:
                    self._use_cases._keyring = self.keyring
            return self._use_cases

    @activity.defn(name="erase_expired_identities")
    def erase_expired_identities(self, req: RetentionInput) -> RetentionResult:
        """Erases the identities whose retention is over; returns their client ids. A read
        model that does not catch up in time raises, and Temporal retries."""
        uc = self.use_cases()
        years = uc.policy.identity_retention_years
        cutoff = retention_cutoff(req.today, years)
        due = expired_clients(uc.caught_up_view(wait=self.catch_up_timeout), cutoff)
        erased = []
        for client, last in due.items():
            # erased before: again only if text was typed about the client since (a new data
            # key), so a repeated run erases and logs nothing
            if (uc.identities.erased_on(client) is not None
                    and uc.keyring.store.get(client) is None):
                continue
            uc.erase_identity(SYSTEM, client, action="identity.retention", params={
                "last_entry": last.isoformat(), "cutoff": cutoff.isoformat(),
                "retention_years": str(years)})
            erased.append(client)
            if activity.in_activity():
                activity.heartbeat(client)
        log.info("identity retention", today=req.today.isoformat(), cutoff=cutoff.isoformat(),
                 erased=len(erased), already=len(due) - len(erased))
        return RetentionResult(today=req.today, cutoff=cutoff, erased=erased)
