"""The apartment stock (lägenhetsbank): apartments a landlord rents to the social services.

An apartment is vacant, offered to one case, occupied by it, taken over by its tenant (it
leaves the stock with the first-hand lease) or returned to the landlord. The case commands
that involve an apartment change both aggregates in one atomic save, so two cases can never
be offered the same apartment.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import N_, ApartmentUnavailable, InvalidDate

APARTMENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:housing-chain:apartment")


class Status(StrEnum):
    VACANT = "vacant"
    OFFERED = "offered"
    OCCUPIED = "occupied"
    UNDER_REPAIR = "under_repair"
    TAKEN_OVER = "taken_over"
    RETURNED = "returned"


class Apartment(Aggregate):
    @staticmethod
    def create_id(apartment_id: str) -> UUID:
        return apartment_uuid(apartment_id)

    @event("Registered")
    def __init__(
        self, apartment_id: str, landlord: str, rooms: int, on: date, actor: str, command_id: str,
        accessible: bool = False, landlord_type: str | None = None,  # absent from older events
    ) -> None:
        self.apartment_id = apartment_id
        self.landlord = landlord
        self.rooms = rooms
        self.accessible = accessible  # adapted for people with functional impairments
        self.landlord_type = landlord_type  # municipal_company | private
        self.status = Status.VACANT
        self.case: str | None = None
        self.last_on = on
        self.lettings = 0

    @classmethod
    def register(
        cls, apartment_id: str, landlord: str, rooms: int, *, on: date, actor: str,
        command_id: str, today: date, accessible: bool = False, landlord_type: str | None = None,
    ) -> Apartment:
        if on > today:
            raise InvalidDate(N_("apartment {apartment}: registered on {on} is after today").format(
                apartment=apartment_id, on=on))
        return cls(
            apartment_id=apartment_id, landlord=landlord, rooms=rooms, on=on, actor=actor,
            command_id=command_id, accessible=accessible, landlord_type=landlord_type,
        )

    def _check(self, step: str, needed: Status, on: date, case: str | None = None) -> None:
        """A refusal names the apartment's status, never the case holding it: that case may be
        another unit's, which the caller may not read. `case` is the step's own case, the one
        the caller named and was allowed to take the step on."""
        if self.status is not needed or (case is not None and self.case != case):
            an = needed.value[0] in "aeiou"
            if case and needed is not Status.VACANT:
                needs = (N_("needs an {needed} apartment held by case {case}") if an else
                         N_("needs a {needed} apartment held by case {case}"))
            else:
                needs = N_("needs an {needed} apartment") if an else N_("needs a {needed} apartment")
            raise ApartmentUnavailable(N_("apartment {apartment} is {status}: {command} {needs}")
                                       .format(apartment=self.apartment_id, status=self.status,
                                               command=step,
                                               needs=needs.format(needed=needed.value, case=case)))
        if on < self.last_on:
            raise InvalidDate(N_("apartment {apartment}: {command} on {on} is before its last "
                                 "change on {last_on}").format(apartment=self.apartment_id,
                                                               command=step, on=on,
                                                               last_on=self.last_on))

    def check_offer(self, case: str, on: date) -> None:
        self._check("offer", Status.VACANT, on)

    def check_held_by(self, step: str, case: str, on: date, status: Status) -> None:
        self._check(step, status, on, case)

    def check_move_into(self, on: date) -> None:
        self._check("move_apartment", Status.VACANT, on)

    def check_repair(self, step: str, on: date) -> None:
        """To repair: a vacant apartment; repaired: one under repair."""
        self._check(step, Status.VACANT if step == "apartment_to_repair" else Status.UNDER_REPAIR,
                    on)

    @event("ToRepair")
    def to_repair(self, on: date, actor: str, command_id: str) -> None:
        self.status = Status.UNDER_REPAIR
        self.last_on = on

    @event("Repaired")
    def repaired(self, on: date, actor: str, command_id: str) -> None:
        self.status = Status.VACANT
        self.last_on = on

    def check_return(self, on: date) -> None:
        self._check("return", Status.VACANT, on)

    @event("OfferedTo")
    def offer_to(self, case: str, on: date, actor: str, command_id: str) -> None:
        self.status = Status.OFFERED
        self.case = case
        self.last_on = on

    @event("OfferWithdrawn")
    def withdraw_offer(self, case: str, on: date, actor: str, command_id: str) -> None:
        self.status = Status.VACANT
        self.case = None
        self.last_on = on

    @event("Occupied")
    def occupy(self, case: str, on: date, actor: str, command_id: str) -> None:
        self.status = Status.OCCUPIED
        self.last_on = on
        self.lettings += 1

    @event("MovedInto")
    def move_into(self, case: str, from_apartment: str | None, on: date, actor: str,
                  command_id: str) -> None:
        """A tenant of the programme moves here from another of its apartments (omflyttning)."""
        self.status = Status.OCCUPIED
        self.case = case
        self.last_on = on
        self.lettings += 1

    @event("Vacated")
    def vacate(self, case: str, on: date, actor: str, command_id: str) -> None:
        self.status = Status.VACANT
        self.case = None
        self.last_on = on

    @event("TakenOver")
    def hand_over(self, case: str, on: date, actor: str, command_id: str) -> None:
        self.status = Status.TAKEN_OVER
        self.last_on = on

    @event("Returned")
    def return_to_landlord(self, on: date, actor: str, command_id: str) -> None:
        self.status = Status.RETURNED
        self.last_on = on


def apartment_uuid(apartment_id: str) -> UUID:
    return uuid5(APARTMENT_NAMESPACE, apartment_id)
