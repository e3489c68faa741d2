"""A client's identity, kept apart from the case history.

Cases carry only the pseudonymous client id. Name and personal identity number live here,
in their own store, so they can be encrypted (eventsourcing's cipher) or erased (their rows
deleted, see IdentityRegistry.erase) without rewriting any case's history.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

IDENTITY_NAMESPACE = uuid5(NAMESPACE_URL, "urn:housing-chain:client")


class ClientIdentity(Aggregate):
    @staticmethod
    def create_id(client_id: str) -> UUID:
        return identity_uuid(client_id)

    @event("Recorded")
    def __init__(self, client_id: str, name: str | None, personal_number: str | None) -> None:
        self.client_id = client_id
        self.name = name
        self.personal_number = personal_number

    @event("Corrected")
    def correct(self, name: str | None, personal_number: str | None) -> None:
        self.name = name
        self.personal_number = personal_number


def identity_uuid(client_id: str) -> UUID:
    return uuid5(IDENTITY_NAMESPACE, client_id)
