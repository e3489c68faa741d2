"""Personal identity numbers: which are valid, how they normalize, and finding one in an id.

The Swedish numbers are Skatteverket's published examples (19121212-1212, coordination number
701063-2391); their Luhn digits are worked by hand in the comments. Norwegian numbers are
worked by hand too (mod 11, weights 3 7 6 1 8 9 4 5 2 and 5 4 3 2 7 6 5 4 3 2).
"""

from __future__ import annotations

from datetime import date

import pytest

from domain.errors import DomainError
from domain.personal_number import (
    Country,
    InvalidPersonalNumber,
    RegisteredSex,
    find_personal_number,
    luhn_check_digit,
    parse_personal_number,
)

TODAY = date(2025, 6, 1)


def refusal(text: str, today: date | None = TODAY) -> str:
    with pytest.raises(InvalidPersonalNumber) as exc:
        parse_personal_number(text, today)
    return str(exc.value)


# --- Swedish ---------------------------------------------------------------------------------


def test_luhn_check_digit_of_skatteverkets_examples():
    # 1 2 1 2 1 2 1 2 1 × 2 1 2 1 ... → 2+2+2+2+2+2+2+2+2 = 18 → 10 - 8 = 2
    assert luhn_check_digit("121212121") == 2
    # 7 0 1 0 6 3 2 3 9 → 14 0 2 0 12 3 4 3 18 → 5+0+2+0+3+3+4+3+9 = 29 → 1
    assert luhn_check_digit("701063239") == 1


@pytest.mark.parametrize("text", ["19121212-1212", "191212121212", "121212+1212"])
def test_every_written_form_of_the_same_number_normalizes_to_twelve_digits(text):
    number = parse_personal_number(text, TODAY)
    assert number.normalized == "191212121212"
    assert number.country is Country.SWEDEN
    assert number.birth_date == date(1912, 12, 12)
    assert not number.is_coordination


def test_ten_digits_with_dash_or_no_separator_mean_born_within_the_last_hundred_years():
    assert parse_personal_number("121212-1212", TODAY).normalized == "201212121212"
    assert parse_personal_number("1212121212", TODAY).normalized == "201212121212"
    # 2 6 0 1 0 1 1 2 3 → 4 6 0 1 0 1 2 2 6 = 22 → 8
    assert parse_personal_number("260101-1238", TODAY).birth_date == date(1926, 1, 1)


def test_plus_means_the_person_turns_a_hundred_or_more_this_year():
    # 2 5 0 1 0 1 1 2 3 → 4 5 0 1 0 1 2 2 6 = 21 → 9
    assert parse_personal_number("250101-1239", TODAY).birth_date == date(2025, 1, 1)
    assert parse_personal_number("250101+1239", TODAY).birth_date == date(1925, 1, 1)


def test_ten_digit_form_without_today_is_a_programming_error_not_a_refusal():
    with pytest.raises(ValueError, match="needs `today`"):
        parse_personal_number("121212-1212")


def test_twelve_digit_form_needs_no_today():
    assert parse_personal_number("19121212-1212").normalized == "191212121212"


def test_coordination_number_has_day_plus_sixty():
    number = parse_personal_number("19701063-2391", TODAY)
    assert number.is_coordination
    assert number.birth_date == date(1970, 10, 3)
    assert number.normalized == "197010632391"
    assert parse_personal_number("701063-2391", TODAY).normalized == "197010632391"


def test_registered_sex_is_odd_male_even_female_from_the_second_to_last_digit():
    assert parse_personal_number("19121212-1212", TODAY).sex is RegisteredSex.MALE
    # 1 2 1 2 1 2 1 2 2 → 2 2 2 2 2 2 2 2 4 = 20 → 0
    assert parse_personal_number("19121212-1220", TODAY).sex is RegisteredSex.FEMALE


def test_personal_number_with_bad_check_digit_is_refused():
    assert refusal("19121212-1213") == "check digit is 3, should be 2"
    assert refusal("701063-2392") == "check digit is 2, should be 1"


def test_personal_number_whose_date_part_is_not_a_date_is_refused():
    assert refusal("19851345-1230") == "the date part 1985-13-45 is not a date"
    assert refusal("19850230-1230") == "the date part 1985-02-30 is not a date"
    assert refusal("19850100-1230") == "the date part 1985-01-00 is not a date"
    assert refusal("19000229-1235") == "the date part 1900-02-29 is not a date"
    assert refusal("19850291-1230") == "the date part 1985-02-31 (coordination number day 91) is not a date"


def test_day_outside_date_and_coordination_ranges_is_refused():
    assert refusal("19850195-1230") == "coordination number day must be 61–91, not 95"
    assert refusal("19850145-1230") == (
        "day 45 is neither a date (01–31) nor a coordination number day (61–91)"
    )


@pytest.mark.parametrize("text", ["00000000-0000", "000000000000", "000000-0000", "00000000000"])
def test_all_zeros_is_refused_although_its_check_digit_fits(text):
    assert refusal(text) == "all zeros is not a personal identity number"


@pytest.mark.parametrize(
    "text", ["", "1912121212123", "19121212-12", "191212-121", "19121212 1212", "abc", "19121212--1212"]
)
def test_text_of_the_wrong_shape_is_refused_as_not_10_or_12_digits(text):
    assert refusal(text).startswith("not 10 or 12 digits")


def test_birth_number_000_is_refused_because_it_is_never_issued():
    # 2 4 0 1 0 1 0 0 0 → 4 4 0 1 0 1 0 0 0 = 10 → 0: the check digit fits
    assert luhn_check_digit("240101000") == 0
    assert refusal("20240101-0000") == "birth number 000 is never issued (it runs 001–999)"


def test_plus_on_the_twelve_digit_form_is_refused():
    assert "only to the 10-digit form" in refusal("19121212+1212")


def test_birth_date_after_today_is_refused():
    # 3 0 0 1 0 1 1 2 3 → 6 0 0 1 0 1 2 2 6 = 18 → 2
    assert refusal("20300101-1232") == "the date part 2030-01-01 is in the future"
    # 2 5 0 7 0 1 1 2 3 → 4 5 0 7 0 1 2 2 6 = 27 → 3
    assert refusal("250701-1233") == "the date part 2025-07-01 is in the future"


def test_invalid_personal_number_is_a_domain_error():
    assert issubclass(InvalidPersonalNumber, DomainError)


def test_repr_of_a_personal_number_masks_the_serial_digits():
    number = parse_personal_number("19121212-1212", TODAY)
    assert repr(number) == "PersonalNumber(19121212-****)"
    assert "1212121212" not in repr(number)


# --- Norwegian ------------------------------------------------------------------------------

# 0 1 0 1 9 0 1 2 4: 0+7+0+1+72+0+4+10+8 = 102, 102 mod 11 = 3 → k1 = 8;
# 0 1 0 1 9 0 1 2 4 8: 0+4+0+2+63+0+5+8+12+16 = 110 → k2 = 0
FNR = "01019012480"
# day + 40: 4·3 more for k1 (114 mod 11 = 4 → 7), then 20+4+0+2+63+0+5+8+12+14 = 128 → k2 = 4
D_NUMBER = "41019012474"


def test_norwegian_fodselsnummer_with_valid_check_digits_is_kept_as_eleven_digits():
    number = parse_personal_number(FNR)
    assert number.country is Country.NORWAY
    assert number.normalized == FNR
    assert number.birth_date == date(1990, 1, 1)
    assert number.sex is RegisteredSex.FEMALE
    assert not number.is_coordination


def test_norwegian_d_number_has_day_plus_forty():
    number = parse_personal_number(D_NUMBER)
    assert number.is_coordination and number.birth_date == date(1990, 1, 1)


def test_norwegian_century_follows_from_the_individual_number():
    # 010105 500 → 2005: 0+7+0+1+0+45+20+0+0 = 73, 73 mod 11 = 7 → k1 4;
    # 0+4+0+2+0+30+25+0+0+8 = 69, 69 mod 11 = 3 → k2 8
    assert parse_personal_number("01010550048").birth_date == date(2005, 1, 1)


def test_norwegian_number_with_bad_check_digit_is_refused():
    assert refusal("01019012481") == "second check digit is 1, should be 0"
    assert refusal("01017512345") == "first check digit is 4, should be 3"
    assert refusal("01019012345") == "no first check digit fits these digits (mod 11 gives 10)"


def test_norwegian_number_with_bad_date_or_unissued_individual_number_is_refused():
    assert refusal("31029012480").startswith("the date part 310290 (DDMMYY, 1990) is not a date")
    assert refusal("01139012480") == "the date part 011390 (DDMMYY) is not a date"
    assert refusal("35019012480") == "day 35 is neither a date (01–31) nor a D-number day (41–71)"
    assert refusal("01014580012") == "individual number 800 is not issued for year 45"


# --- finding one inside an identifier -------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "found"),
    [
        ("case-19121212-1212", "a personal identity number (19121212-****)"),
        ("kl191212121212", "a personal identity number (19121212-****)"),
        ("BO-121212-1212", "a personal identity number (121212-****)"),
        ("x1212121212y", "a personal identity number (121212-****)"),
        ("121212+1212", "a personal identity number (121212+****)"),
        ("coord:701063-2391", "a coordination number (701063-****)"),
        ("no-" + FNR, "a Norwegian national identity number (010190*****)"),
        ("d" + D_NUMBER, "a Norwegian D-number (410190*****)"),
        ("Anna １９１２１２１２-１２１２", "a personal identity number (19121212-****)"),
    ],
)
def test_identifier_that_carries_a_personal_number_is_found_and_described_masked(identifier, found):
    assert find_personal_number(identifier) == found


@pytest.mark.parametrize(
    "identifier",
    [
        "BO-2024-0014",
        "kl-7f3a",
        "SH-1042",
        "demo-municipality:12:ab12cd34ef56",
        "20240101-0000",  # its check digit fits, but birth number 000 is never issued
        "20240101-0001",  # check digit should be 0
        "20240101",
        "19121212-1213",
        "19851345-1230",
        "1191212121212",  # 13 digits: a longer run, not a personal number
        "19121212-12121",
        "01019012481",  # Norwegian, second check digit should be 0
    ],
)
def test_look_alike_identifier_is_not_flagged(identifier):
    assert find_personal_number(identifier) is None


def test_a_message_echoing_what_was_typed_has_every_number_in_it_masked_and_nothing_else():
    from domain.personal_number import mask_personal_numbers

    assert mask_personal_numbers(
        "/api/cases/19121212-1212, 121212+1212, no-" + FNR + ", BO-2024-0014 and kl-7f3a") == (
        "/api/cases/19121212-****, 121212+****, no-" + FNR[:6] + "*****, BO-2024-0014 and kl-7f3a")
    assert mask_personal_numbers("Anna １９１２１２１２-１２１２") == "Anna １９１２１２１２-****"
    assert mask_personal_numbers("20240101-0001 19121212-1213") == "20240101-0001 19121212-1213"


def test_ten_digit_form_counts_when_either_century_makes_it_valid():
    # 0 0 0 2 2 9 1 2 3 → 0 0 0 2 4 9 2 2 6 = 25 → 5; only 2000 (not 1900) has 29 February
    assert find_personal_number("x-000229-1235") == "a personal identity number (000229-****)"
    assert find_personal_number("x-19000229-1235") is None


def test_found_description_never_repeats_the_serial_digits():
    found = find_personal_number("case-19121212-1212")
    assert found is not None and "1212121212" not in found.replace("-", "")


def test_a_personal_number_written_with_a_space_before_the_last_four_is_found_in_an_id():
    from domain.personal_number import find_personal_number
    assert find_personal_number("Farsta 19811218 9876") == "a personal identity number (19811218-****)"
    assert find_personal_number("hl 811218 9876") is not None
    assert find_personal_number("BO-2024 0014") is None  # a date-like case number stays an id
