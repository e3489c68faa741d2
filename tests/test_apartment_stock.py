"""The apartment stock, through the application service: a case step that involves an
apartment changes the case and the apartment together, or neither.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.apartment import Status
from domain.errors import DomainError
from domain.stages import Stage


def status(chain, apartment: str = "apt-1") -> tuple[Status, str | None]:
    a = chain.app.get_apartment(apartment)
    return a.status, a.case


def assert_nothing_stored(chain, step) -> str:
    before = chain.stored()
    reason = chain.refuse(step)
    assert chain.stored() == before
    return reason


# --- registering and returning ------------------------------------------------------------


def test_a_registered_apartment_is_vacant(chain):
    chain.register("apt-1", landlord="Järfällahus", rooms=3)
    apartment = chain.app.get_apartment("apt-1")
    assert (apartment.status, apartment.case, apartment.lettings) == (Status.VACANT, None, 0)
    assert (apartment.landlord, apartment.rooms) == ("Järfällahus", 3)


def test_an_apartment_cannot_be_registered_twice(chain):
    chain.register("apt-1")
    reason = assert_nothing_stored(
        chain, chain.line("register_apartment", on=chain.day, apartment="apt-1",
                          landlord="Framtiden", rooms=1),
    )
    assert reason == "apartment apt-1 is already registered"


def test_an_apartment_registered_after_today_is_refused(chain):
    reason = assert_nothing_stored(
        chain, chain.line("register_apartment", on=chain.today + timedelta(days=1),
                          apartment="apt-1", landlord="Framtiden", rooms=1),
    )
    assert reason == "apartment apt-1: registered on 2027-07-01 is after today"


def test_an_unknown_apartment_is_not_in_the_stock(chain):
    with pytest.raises(DomainError, match="apartment apt-404 is not registered"):
        chain.app.get_apartment("apt-404")


def test_a_vacant_apartment_can_be_returned_to_the_landlord(chain):
    chain.register("apt-1")
    [result] = chain.accept(chain.line("return_apartment", on=chain.next_day(), apartment="apt-1"))
    assert (result.stage, result.events) == ("returned", ["Returned"])
    assert status(chain) == (Status.RETURNED, None)


def test_a_returned_apartment_cannot_be_offered(chain):
    chain.register("apt-1")
    chain.accept(chain.line("return_apartment", on=chain.next_day(), apartment="apt-1"))
    chain.drive("c-1", Stage.WAITING)
    reason = assert_nothing_stored(chain, chain.step("offer", "c-1", apartment="apt-1"))
    assert reason == "apartment apt-1 is returned: offer needs a vacant apartment"
    assert chain.app.get_case("c-1").stage is Stage.WAITING


def test_an_occupied_apartment_cannot_be_returned(chain):
    chain.drive("c-1", Stage.TRAINING)
    reason = assert_nothing_stored(
        chain, chain.line("return_apartment", on=chain.next_day(), apartment="apt-1")
    )
    assert reason == "apartment apt-1 is occupied: return needs a vacant apartment"


def test_returning_an_unregistered_apartment_names_it(chain):
    reason = assert_nothing_stored(
        chain, chain.line("return_apartment", on=chain.day, apartment="apt-404")
    )
    assert reason == "apartment apt-404 is not registered in the stock"


# --- offers --------------------------------------------------------------------------------


def test_an_offer_reserves_the_apartment_for_the_case(chain):
    chain.register("apt-1")
    chain.drive("c-1", Stage.WAITING)
    [result] = chain.accept(chain.step("offer", "c-1", apartment="apt-1"))
    assert result.stage == "offered"
    assert sorted(result.events) == ["Offered", "OfferedTo"]
    assert status(chain) == (Status.OFFERED, "c-1")


def test_offering_an_unregistered_apartment_is_refused_with_its_id(chain):
    chain.drive("c-1", Stage.WAITING)
    reason = assert_nothing_stored(chain, chain.step("offer", "c-1", apartment="apt-404"))
    assert reason == "apartment apt-404 is not registered in the stock"
    assert chain.app.get_case("c-1").stage is Stage.WAITING


def test_offering_an_offered_apartment_is_refused(chain):
    chain.drive("c-1", Stage.OFFERED)
    chain.drive("c-2", Stage.WAITING)
    reason = assert_nothing_stored(chain, chain.step("offer", "c-2", apartment="apt-1"))
    assert reason == "apartment apt-1 is offered: offer needs a vacant apartment"
    assert chain.app.get_case("c-2").stage is Stage.WAITING
    assert status(chain) == (Status.OFFERED, "c-1")


def test_a_refused_offer_of_an_occupied_apartment_names_no_other_case(chain):
    """c-1 may be another unit's case, which the caseworker offering to c-2 may not read."""
    chain.drive("c-1", Stage.TRAINING)
    chain.drive("c-2", Stage.WAITING)
    reason = assert_nothing_stored(chain, chain.step("offer", "c-2", apartment="apt-1"))
    assert reason == "apartment apt-1 is occupied: offer needs a vacant apartment"


def test_two_cases_cannot_hold_one_apartment(chain):
    chain.register("apt-1")
    chain.drive("c-1", Stage.WAITING)
    chain.drive("c-2", Stage.WAITING)
    first, second = chain.run(
        chain.step("offer", "c-1", apartment="apt-1"),
        chain.step("offer", "c-2", apartment="apt-1"),
    )
    assert first.accepted
    assert not second.accepted
    assert second.reason == "apartment apt-1 is offered: offer needs a vacant apartment"
    assert status(chain) == (Status.OFFERED, "c-1")
    assert chain.app.get_case("c-1").apartment == "apt-1"
    assert chain.app.get_case("c-2").apartment is None
    assert chain.app.get_case("c-2").stage is Stage.WAITING


def test_offer_dated_before_the_apartments_last_change_is_refused(chain):
    chain.drive("c-1", Stage.WAITING)
    offer_day = chain.day + timedelta(days=1)
    chain.day += timedelta(days=10)
    chain.register("apt-1")
    reason = assert_nothing_stored(
        chain, chain.line("offer", on=offer_day, case="c-1", apartment="apt-1")
    )
    assert reason == (
        f"apartment apt-1: offer on {offer_day} is before its last change on {chain.day}"
    )


# --- the landlord's decision ----------------------------------------------------------------


def test_landlord_approval_keeps_the_apartment_reserved(chain):
    chain.drive("c-1", Stage.OFFERED)
    [result] = chain.accept(chain.step("landlord_decision", "c-1", approved=True))
    assert result.events == ["LandlordApproved"]
    assert status(chain) == (Status.OFFERED, "c-1")


def test_landlord_refusal_returns_the_apartment_to_vacant(chain):
    chain.drive("c-1", Stage.OFFERED)
    [result] = chain.accept(
        chain.step("landlord_decision", "c-1", approved=False, reason="earlier arrears")
    )
    assert sorted(result.events) == ["LandlordRefused", "OfferWithdrawn"]
    assert status(chain) == (Status.VACANT, None)
    assert chain.app.get_case("c-1").stage is Stage.WAITING
    chain.drive("c-2", Stage.WAITING)
    chain.accept(chain.step("offer", "c-2", apartment="apt-1"))
    assert status(chain) == (Status.OFFERED, "c-2")


# --- move-in and exits ----------------------------------------------------------------------


def test_move_in_occupies_the_apartment(chain):
    chain.drive("c-1", Stage.APPROVED)
    [result] = chain.accept(chain.step("move_in", "c-1", apartment="apt-1"))
    assert sorted(result.events) == ["MovedIn", "Occupied"]
    apartment = chain.app.get_apartment("apt-1")
    assert (apartment.status, apartment.case, apartment.lettings) == (Status.OCCUPIED, "c-1", 1)


def test_move_in_to_another_apartment_than_the_one_offered_is_refused(chain):
    chain.drive("c-1", Stage.APPROVED)
    chain.register("apt-2")
    reason = assert_nothing_stored(chain, chain.step("move_in", "c-1", apartment="apt-2"))
    assert reason == (
        "apartment apt-2 is vacant: move_in needs an offered apartment held by case c-1"
    )
    assert status(chain, "apt-2") == (Status.VACANT, None)


def test_a_refused_move_in_names_only_the_steps_own_case(chain):
    """apt-2 is offered to c-2; the refusal to move c-1 in names c-1, the case the step is on,
    and not c-2."""
    chain.drive("c-1", Stage.APPROVED)
    chain.register("apt-2")
    chain.drive("c-2", Stage.WAITING)
    chain.accept(chain.step("offer", "c-2", apartment="apt-2"))
    reason = assert_nothing_stored(chain, chain.step("move_in", "c-1", apartment="apt-2"))
    assert reason == "apartment apt-2 is offered: move_in needs an offered apartment held by case c-1"


@pytest.mark.parametrize("destination", ["terminated", "own_housing", "deceased", "moved_away",
                                         "withdrawn"])
def test_exit_from_training_vacates_the_apartment(chain, destination):
    chain.drive("c-1", Stage.TRAINING)
    [result] = chain.accept(chain.step("exit", "c-1", destination=destination))
    assert sorted(result.events) == ["Exited", "Vacated"]
    assert status(chain) == (Status.VACANT, None)


def test_a_vacated_apartment_can_be_let_again(chain):
    chain.drive("c-1", Stage.TRAINING)
    chain.accept(chain.step("exit", "c-1", destination="own_housing"))
    chain.drive("c-2", Stage.TRAINING)
    apartment = chain.app.get_apartment("apt-1")
    assert (apartment.status, apartment.case, apartment.lettings) == (Status.OCCUPIED, "c-2", 2)


@pytest.mark.parametrize("stage", [Stage.TAKEOVER_REVIEW, Stage.TAKEOVER_APPROVED])
def test_exit_during_the_takeover_vacates_the_apartment_unless_it_is_taken_over(chain, stage):
    chain.drive("c-1", stage)
    chain.accept(chain.step("exit", "c-1", destination="terminated"))
    assert status(chain) == (Status.VACANT, None)


def test_exit_to_first_hand_lease_hands_the_apartment_over(chain):
    chain.drive("c-1", Stage.TAKEOVER_APPROVED)
    [result] = chain.accept(chain.step("exit", "c-1", destination="first_hand_lease"))
    assert sorted(result.events) == ["Exited", "TakenOver"]
    assert status(chain) == (Status.TAKEN_OVER, "c-1")


def test_an_apartment_taken_over_leaves_the_stock(chain):
    chain.drive("c-1", Stage.TAKEOVER_APPROVED)
    chain.accept(chain.step("exit", "c-1", destination="first_hand_lease"))
    chain.drive("c-2", Stage.WAITING)
    reason = assert_nothing_stored(chain, chain.step("offer", "c-2", apartment="apt-1"))
    assert reason == "apartment apt-1 is taken_over: offer needs a vacant apartment"
    reason = assert_nothing_stored(
        chain, chain.line("return_apartment", on=chain.next_day(), apartment="apt-1")
    )
    assert reason.startswith("apartment apt-1 is taken_over: return needs a vacant")


def test_takeover_refusal_keeps_the_apartment_occupied(chain):
    chain.drive("c-1", Stage.TAKEOVER_REVIEW)
    chain.accept(chain.step("takeover_decision", "c-1", approved=False, reason="credit check"))
    assert status(chain) == (Status.OCCUPIED, "c-1")


@pytest.mark.parametrize("stage", [Stage.OFFERED, Stage.APPROVED])
def test_exit_while_offered_withdraws_the_offer(chain, stage):
    chain.drive("c-1", stage)
    [result] = chain.accept(chain.step("exit", "c-1", destination="own_housing"))
    assert sorted(result.events) == ["Exited", "OfferWithdrawn"]
    assert status(chain) == (Status.VACANT, None)
    assert chain.app.get_apartment("apt-1").lettings == 0


def test_exit_while_waiting_touches_no_apartment(chain):
    chain.register("apt-1")
    chain.drive("c-1", Stage.WAITING)
    before = chain.app.get_apartment("apt-1").version
    [result] = chain.accept(chain.step("exit", "c-1", destination="withdrawn"))
    assert result.events == ["Exited"]
    assert chain.app.get_apartment("apt-1").version == before


def test_refused_exit_leaves_the_apartment_alone(chain):
    chain.drive("c-1", Stage.TRAINING)
    reason = assert_nothing_stored(chain, chain.step("exit", "c-1", destination="first_hand_lease"))
    assert "exit to first_hand_lease needs a takeover approved by the landlord" in reason
    assert status(chain) == (Status.OCCUPIED, "c-1")


def test_the_case_and_its_apartment_change_in_the_same_save(chain):
    chain.register("apt-1")
    chain.drive("c-1", Stage.WAITING)
    before = chain.stored()
    chain.accept(chain.step("offer", "c-1", apartment="apt-1"))
    new = chain.notifications()[before:]
    assert sorted(n.topic.rsplit(".", 1)[-1] for n in new) == ["Offered", "OfferedTo", "Processed"]
    assert [n.id for n in new] == list(range(before + 1, before + 4))
