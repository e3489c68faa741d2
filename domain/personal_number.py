"""Swedish and Norwegian personal identity numbers: what makes one valid, and finding one.

Two jobs. `parse_personal_number` checks a number a caseworker typed for a client's identity
(Swedish personnummer or samordningsnummer, Norwegian fødselsnummer or D-number), so the
identity store holds one normalized, checked form. `find_personal_number` tells whether a
free identifier (case id, actor, district, ...) carries one, so personal data cannot slip
into case histories and Temporal through a field meant to be pseudonymous.

Pure: no clock, no I/O. Where the century of a 10-digit Swedish number must be inferred, the
caller passes `today`; detection needs no date at all (it accepts any century that fits).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from domain.errors import DomainError


class InvalidPersonalNumber(DomainError):
    """The text is not a valid personal identity number. The message says what is wrong."""


class Country(StrEnum):
    SWEDEN = "SE"
    NORWAY = "NO"


class RegisteredSex(StrEnum):
    """The sex the population register encodes in the number (odd = male, even = female).

    This is the register's legal convention and nothing more: it says nothing about a
    person's gender, and it is wrong for anyone whose registered sex changed without a new
    number. Do not use it to address or categorize a client.
    """

    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True, repr=False)
class PersonalNumber:
    """A checked number in its normalized form: 12 digits (Swedish) or 11 digits (Norwegian)."""

    normalized: str
    country: Country
    birth_date: date
    is_coordination: bool  # Swedish samordningsnummer (day + 60) or Norwegian D-number (day + 40)
    sex: RegisteredSex

    def masked(self) -> str:
        """The date part with the serial digits starred: safe for messages and logs."""
        if self.country is Country.SWEDEN:
            return f"{self.normalized[:8]}-****"
        return f"{self.normalized[:6]}*****"

    def __repr__(self) -> str:
        # masked, so a stray log line or assertion message never prints the whole number
        return f"PersonalNumber({self.masked()})"


_SWEDISH = re.compile(r"(?P<date>[0-9]{8}|[0-9]{6})(?P<sep>[-+]?)(?P<serial>[0-9]{4})")
_NORWEGIAN = re.compile(r"[0-9]{11}")


def parse_personal_number(text: str, today: date | None = None) -> PersonalNumber:
    """Check and normalize a Swedish (10 or 12 digits) or Norwegian (11 digits) number.

    Accepted Swedish forms: YYYYMMDD-NNNN, YYYYMMDDNNNN, YYMMDD-NNNN, YYMMDD+NNNN, YYMMDDNNNN.
    Checked: the date (day + 60 for a samordningsnummer), the birth number (001–999, as
    Skatteverket issues them) and the Luhn check digit over the 10-digit form.
    A 10-digit form needs `today` to place its century: `-` (or no separator) means born in
    one of the last 100 calendar years, `+` means the person turns 100 or more this year
    (Skatteverket switches the separator at the start of the year the person turns 100).
    With `today`, a birth date after it is refused. Raises InvalidPersonalNumber.
    """
    text = text.strip()
    if _NORWEGIAN.fullmatch(text):
        return _parse_norwegian(text)
    m = _SWEDISH.fullmatch(text)
    if not m:
        raise InvalidPersonalNumber(
            "not 10 or 12 digits (a Swedish number, optionally with - or + before the last four) "
            "or 11 digits (a Norwegian fødselsnummer)"
        )
    digits, sep = m["date"] + m["serial"], m["sep"]
    if set(digits) == {"0"}:
        raise InvalidPersonalNumber("all zeros is not a personal identity number")
    if len(digits) == 12:
        if sep == "+":
            raise InvalidPersonalNumber("the + separator belongs only to the 10-digit form YYMMDD+NNNN")
        year = int(digits[:4])
    else:
        if today is None:
            raise ValueError("a 10-digit personal number needs `today` to infer its century")
        year = _century_year(int(digits[:2]), sep == "+", today)
    ten = digits[-10:]
    birth, is_coordination = _swedish_birth_date(year, int(ten[2:4]), int(ten[4:6]))
    if ten[6:9] == "000":
        raise InvalidPersonalNumber("birth number 000 is never issued (it runs 001–999)")
    expected = luhn_check_digit(ten[:9])
    if int(ten[9]) != expected:
        raise InvalidPersonalNumber(f"check digit is {ten[9]}, should be {expected}")
    if today is not None and birth > today:
        raise InvalidPersonalNumber(f"the date part {birth.isoformat()} is in the future")
    return PersonalNumber(
        normalized=f"{year:04d}{ten[2:]}",
        country=Country.SWEDEN,
        birth_date=birth,
        is_coordination=is_coordination,
        sex=_sex(int(ten[8])),
    )


def luhn_check_digit(nine: str) -> int:
    """Skatteverket's check digit: Luhn (weights 2, 1, 2, ...) over YYMMDDNNN."""
    total = 0
    for i, ch in enumerate(nine):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def _century_year(yy: int, hundred_or_older: bool, today: date) -> int:
    """The latest year ending in `yy` at or before this year (`-`) or 100 years back (`+`)."""
    base = today.year - 100 if hundred_or_older else today.year
    return base - (base - yy) % 100


def _swedish_birth_date(year: int, month: int, day: int) -> tuple[date, bool]:
    """The birth date, and whether the day says coordination number (day + 60)."""
    shown = f"{year:04d}-{month:02d}-{day:02d}"
    if not 1 <= month <= 12:
        raise InvalidPersonalNumber(f"the date part {shown} is not a date")
    if day > 91:
        raise InvalidPersonalNumber(f"coordination number day must be 61–91, not {day}")
    if 31 < day < 61:
        raise InvalidPersonalNumber(
            f"day {day} is neither a date (01–31) nor a coordination number day (61–91)"
        )
    is_coordination = day > 60
    try:
        return date(year, month, day - 60 if is_coordination else day), is_coordination
    except ValueError:
        note = f" (coordination number day {day})" if is_coordination else ""
        actual = f"{year:04d}-{month:02d}-{day - 60 if is_coordination else day:02d}"
        raise InvalidPersonalNumber(f"the date part {actual}{note} is not a date") from None


# --- Norway ---------------------------------------------------------------------------------

_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _parse_norwegian(digits: str) -> PersonalNumber:
    """DDMMYY III K1 K2: the century follows from the individual number III, no clock needed."""
    if set(digits) == {"0"}:
        raise InvalidPersonalNumber("all zeros is not a personal identity number")
    day, month, yy, individual = int(digits[:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6:9])
    is_d_number = day > 40
    if not 1 <= month <= 12:
        raise InvalidPersonalNumber(f"the date part {digits[:6]} (DDMMYY) is not a date")
    if day > 71 or 31 < day < 41:
        raise InvalidPersonalNumber(f"day {day} is neither a date (01–31) nor a D-number day (41–71)")
    year = _norwegian_year(yy, individual)
    if year is None:
        raise InvalidPersonalNumber(f"individual number {individual:03d} is not issued for year {yy:02d}")
    try:
        birth = date(year, month, day - 40 if is_d_number else day)
    except ValueError:
        raise InvalidPersonalNumber(f"the date part {digits[:6]} (DDMMYY, {year}) is not a date") from None
    for position, weights in ((9, _K1_WEIGHTS), (10, _K2_WEIGHTS)):
        expected = _mod11_check_digit(digits[:position], weights)
        which = "first" if position == 9 else "second"
        if expected is None:
            raise InvalidPersonalNumber(f"no {which} check digit fits these digits (mod 11 gives 10)")
        if int(digits[position]) != expected:
            raise InvalidPersonalNumber(f"{which} check digit is {digits[position]}, should be {expected}")
    return PersonalNumber(
        normalized=digits,
        country=Country.NORWAY,
        birth_date=birth,
        is_coordination=is_d_number,
        sex=_sex(int(digits[8])),
    )


def _norwegian_year(yy: int, individual: int) -> int | None:
    """Skatteetaten's allocation of individual numbers to centuries."""
    if individual <= 499:
        return 1900 + yy
    if individual <= 749 and yy >= 54:
        return 1800 + yy
    if yy <= 39:
        return 2000 + yy
    if individual >= 900:
        return 1900 + yy
    return None


def _mod11_check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    check = (11 - remainder) % 11
    return None if check == 10 else check


def _sex(digit: int) -> RegisteredSex:
    return RegisteredSex.MALE if digit % 2 else RegisteredSex.FEMALE


# --- detection ------------------------------------------------------------------------------

# Every start of a digit run, looked ahead from, so overlapping candidates are all seen.
_CANDIDATE = re.compile(
    r"(?<![0-9])(?=([0-9]{8}[-+ ][0-9]{4}|[0-9]{6}[-+ ][0-9]{4}|[0-9]{12}|[0-9]{11}|[0-9]{10})"
    r"(?![0-9]))"
)


def find_personal_number(text: str) -> str | None:
    """A masked description of the first valid personal identity number inside `text`, or None.

    Looks for a run of digits not part of a longer run: 12 or 10 digits, with or without a
    `-`/`+` (or a space, as people write them) before the last four (Swedish personnummer or
    samordningsnummer), or 11 digits (Norwegian fødselsnummer or D-number), with a valid date
    part and valid check digits. Date-like look-alikes (`BO-2024-0014`, `20240101`,
    `20240101-0000` with a wrong check digit) are not flagged: ordinary ids must keep working.

    Deterministic by design, because these checks run inside Temporal workflows when update
    arguments are deserialized: a 10-digit form counts when *any* century makes it valid, so
    no `today` is needed. Unicode digits (e.g. fullwidth) count as the digits they stand for.
    The description never repeats the serial digits.
    """
    ascii_digits = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
    for m in _CANDIDATE.finditer(ascii_digits):
        found = _describe(m[1])
        if found:
            return found
    return None


def mask_personal_numbers(text: str) -> str:
    """`text` with the serial digits of every valid personal identity number in it starred,
    as `find_personal_number` finds them: for messages that echo what a person typed (a
    field's name, a path) back to them and into logs."""
    ascii_digits = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
    out, at = [], 0
    for m in _CANDIDATE.finditer(ascii_digits):
        start, end = m.start(1), m.end(1)
        if start < at or not _describe(m[1]):
            continue
        serial = 5 if len(re.sub(r"[-+ ]", "", m[1])) == 11 else 4
        out += [text[at:end - serial], "*" * serial]
        at = end
    return "".join(out) + text[at:]


def _describe(candidate: str) -> str | None:
    digits = candidate.replace("-", "").replace("+", "").replace(" ", "")
    if len(digits) == 11:
        try:
            number = _parse_norwegian(digits)
        except InvalidPersonalNumber:
            return None
        kind = "a Norwegian D-number" if number.is_coordination else "a Norwegian national identity number"
        return f"{kind} ({number.masked()})"
    sep = "+" if "+" in candidate else "-"
    years = [int(digits[:4])] if len(digits) == 12 else [1900 + int(digits[:2]), 2000 + int(digits[:2])]
    ten = digits[-10:]
    if ten[6:9] == "000" or luhn_check_digit(ten[:9]) != int(ten[9]):
        return None  # 000 is never issued: a made-up number, not someone's
    for year in years:
        try:
            _, is_coordination = _swedish_birth_date(year, int(ten[2:4]), int(ten[4:6]))
        except InvalidPersonalNumber:
            continue
        kind = "a coordination number" if is_coordination else "a personal identity number"
        return f"{kind} ({digits[:-4]}{sep}****)"
    return None
