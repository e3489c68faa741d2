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


class IdentityTombstone(Aggregate):
    """That a client's identity was erased, and when: without it, the next import of an old
    file would record the name again."""

    @staticmethod
    def create_id(client_id: str) -> UUID:
        return uuid5(IDENTITY_NAMESPACE, f"erased:{client_id}")

    @event("Erased")
    def __init__(self, client_id: str, erased_at: str) -> None:
        self.client_id = client_id
        self.erased_at = erased_at


class PersonalNumberClaim(Aggregate):
    """A personal number (by its blind index, never in the clear) is registered under one client
    id: the same person under two ids would split their history."""

    @staticmethod
    def create_id(blind_index: str) -> UUID:
        return uuid5(IDENTITY_NAMESPACE, f"personal-number:{blind_index}")

    @event("Claimed")
    def __init__(self, blind_index: str, client_id: str) -> None:
        self.blind_index = blind_index
        self.client_id = client_id
