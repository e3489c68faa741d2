"""Text hygiene, on its own and on every command model's text fields.

The models are validated again inside Temporal workflows (update arguments), so the checks
here must read no clock: the last tests validate every step with the clock made unreadable.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

import domain.commands as commands
from domain.commands import ApplyLine, ClientWithIdentity, import_line_adapter
from domain.text import clean_text, terminal_safe

DECOMPOSED_A_RING = "a\u030a"  # a + COMBINING RING ABOVE
COMPOSED_A_RING = "\u00e5"

# --- clean_text -----------------------------------------------------------------------------


def test_clean_text_stores_the_nfc_form_of_a_decomposed_a_ring():
    cleaned = clean_text(f"Sm{DECOMPOSED_A_RING}land", "district")
    assert cleaned == f"Sm{COMPOSED_A_RING}land" and len(cleaned) == 7
    assert unicodedata.is_normalized("NFC", cleaned)


def test_ordinary_nordic_text_passes_unchanged():
    text = "Åsa Öberg-Ærø, Čáhppesjávri 12\u00a0000 kr 🏠"
    assert clean_text(text, "note") == text


@pytest.mark.parametrize(
    ("char", "kind"),
    [
        ("\x1b", "a control character U+001B"),
        ("\x00", "a control character U+0000"),
        ("\x7f", "a control character U+007F"),
        ("\x9b", "a control character U+009B"),  # C1: CSI
        ("\r", "a control character U+000D"),
        ("\u202e", "a bidirectional control U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("\u2066", "a bidirectional control U+2066"),
        ("\u200f", "a bidirectional control U+200F"),
        ("\u061c", "a bidirectional control U+061C"),
        ("\u200b", "a zero-width character U+200B (ZERO WIDTH SPACE)"),
        ("\u200d", "a zero-width character U+200D"),
        ("\ufeff", "a zero-width character U+FEFF"),
        ("\u00ad", "a format character U+00AD (SOFT HYPHEN)"),
        ("\U000e0041", "a format character U+E0041"),  # tag character
        ("\u0378", "an unassigned code point U+0378"),
        ("\uffff", "an unassigned code point U+FFFF"),  # a noncharacter
        ("\ud800", "a surrogate U+D800"),
        ("\ue000", "a private-use character U+E000"),
        ("\u2028", "a line separator U+2028"),
        ("\u2029", "a paragraph separator U+2029"),
    ],
)
def test_clean_text_refuses_a_hidden_or_unassigned_character_by_code_point_and_kind(char, kind):
    with pytest.raises(ValueError) as exc:
        clean_text(f"ab{char}c", "note")
    assert str(exc.value).startswith(f"note contains {kind}")
    assert str(exc.value).endswith("at position 3")


def test_newline_and_tab_are_allowed_only_in_multiline_text():
    assert clean_text("first\n\tsecond", "note", multiline=True) == "first\n\tsecond"
    for char in "\n\t":
        with pytest.raises(ValueError, match="control character"):
            clean_text(f"a{char}b", "actor")


def test_carriage_return_is_refused_even_in_multiline_text():
    with pytest.raises(ValueError, match="U\\+000D"):
        clean_text("first\r\nsecond", "note", multiline=True)


# --- terminal_safe --------------------------------------------------------------------------


def test_terminal_safe_escapes_an_esc_sequence_so_it_shows_instead_of_acting():
    assert terminal_safe("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert terminal_safe("\x1b]0;owned\x07") == "\\x1b]0;owned\\x07"


def test_terminal_safe_escapes_bidi_zero_width_and_astral_format_characters():
    assert terminal_safe("abc\u202edef") == "abc\\u202edef"
    assert terminal_safe("a\u200bb") == "a\\u200bb"
    assert terminal_safe("a\U000e0041") == "a\\U000e0041"


def test_terminal_safe_leaves_printable_text_and_allowed_newlines_alone():
    text = "Åsa Öberg, Norrmalm\u00a012 🏠 C:\\tmp"
    assert terminal_safe(text) == text
    assert terminal_safe("a\nb") == "a\\x0ab"
    assert terminal_safe("a\nb", multiline=True) == "a\nb"


# --- the command models ---------------------------------------------------------------------

CLIENT = {"id": "kl-7f3a", "target_group": "other", "district": "Norrmalm"}
STEPS: dict[str, dict[str, Any]] = {
    "apply": {"case": "BO-2024-0014", "client": CLIENT},
    "start_assessment": {"case": "BO-2024-0014"},
    "decide": {"case": "BO-2024-0014", "outcome": "granted", "reason": "ok"},
    "offer": {"case": "BO-2024-0014", "apartment": "SH-1042"},
    "landlord_decision": {"case": "BO-2024-0014", "approved": True},
    "move_in": {"case": "BO-2024-0014", "apartment": "SH-1042"},
    "record_visit": {"case": "BO-2024-0014"},
    "course_session": {"case": "BO-2024-0014", "session": 1},
    "rent_arrears": {"case": "BO-2024-0014", "amount": "100.00"},
    "repayment_plan": {"case": "BO-2024-0014"},
    "complaint": {"case": "BO-2024-0014", "note": "noise"},
    "refer_takeover": {"case": "BO-2024-0014"},
    "takeover_decision": {"case": "BO-2024-0014", "approved": False},
    "assign": {"case": "BO-2024-0014", "role": "caseworker", "to": "cw-anna"},
    "exit": {"case": "BO-2024-0014", "destination": "own_housing"},
    "register_apartment": {"apartment": "SH-1042", "landlord": "Stockholmshem", "rooms": 2},
    "return_apartment": {"apartment": "SH-1042"},
    "plan": {"case": "BO-2024-0014"},
    "plan_review": {"case": "BO-2024-0014",
                    "reviews": [{"sub_goal": "g-1", "result": "partly", "note": "on track"}]},
    "temporary_placement": {"case": "BO-2024-0014", "placement": "tp-1", "kind": "hotel"},
    "placement_ended": {"case": "BO-2024-0014", "placement": "tp-1"},
    "support_interrupted": {"case": "BO-2024-0014", "kind": "hospital"},
    "support_resumed": {"case": "BO-2024-0014"},
    "move_apartment": {"case": "BO-2024-0014", "apartment": "SH-1043"},
    "rent_payment": {"case": "BO-2024-0014", "amount": "50.00"},
    "apartment_to_repair": {"apartment": "SH-1042"},
    "apartment_repaired": {"apartment": "SH-1042"},
    "support_level": {"case": "BO-2024-0014", "level": 2},
    "renew_lease": {"case": "BO-2024-0014", "lease_end": "2027-06-30"},
}
CASE_STEPS = [t for t, fields in STEPS.items() if "case" in fields]


def line(step_type: str, **fields: Any) -> dict[str, Any]:
    return {"type": step_type, "actor": "cw-anna", "id": "demo-municipality:12:ab12cd34ef56",
            **STEPS[step_type], **fields}


def refusal(data: dict[str, Any]) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as exc:
        import_line_adapter.validate_python(data)
    [error] = exc.value.errors()
    return error["loc"][1:], error["msg"]


def test_the_step_table_here_covers_every_import_step_type():
    assert set(STEPS) == set(import_line_adapter.json_schema()["discriminator"]["mapping"])


@pytest.mark.parametrize("step_type", list(STEPS))
def test_every_step_with_ordinary_ids_is_accepted_and_dumps_to_the_same_json(step_type):
    data = line(step_type)
    step = import_line_adapter.validate_python(data)
    again = import_line_adapter.validate_json(import_line_adapter.dump_json(step))
    assert again == step


@pytest.mark.parametrize("step_type", list(STEPS))
def test_every_step_refuses_an_esc_in_the_actor_naming_the_field(step_type):
    loc, msg = refusal(line(step_type, actor="cw-anna\x1b[2J"))
    assert loc == ("actor",)
    assert "actor contains a control character U+001B" in msg


@pytest.mark.parametrize("step_type", list(STEPS))
def test_every_step_refuses_a_zero_width_space_in_the_command_id(step_type):
    loc, msg = refusal(line(step_type, id="import.jsonl:3:\u200bab12"))
    assert loc == ("id",)
    assert "command id contains a zero-width character U+200B" in msg


@pytest.mark.parametrize("step_type", CASE_STEPS)
def test_every_case_step_refuses_a_zero_width_space_in_the_case_id_naming_the_field(step_type):
    loc, msg = refusal(line(step_type, case="BO-2024\u200b-0014"))
    assert loc == ("case",)
    assert "case id contains a zero-width character U+200B" in msg


@pytest.mark.parametrize("step_type", ["offer", "move_in", "register_apartment", "return_apartment"])
def test_every_apartment_step_refuses_a_zero_width_space_in_the_apartment_id(step_type):
    loc, msg = refusal(line(step_type, apartment="\u200bSH-1042"))
    assert loc == ("apartment",)
    assert "apartment id contains a zero-width character U+200B" in msg


def test_apply_refuses_a_right_to_left_override_in_the_district_naming_the_field():
    loc, msg = refusal(line("apply", client={**CLIENT, "district": "Norr\u202emalm"}))
    assert loc == ("client", "district")
    assert "district contains a bidirectional control U+202E" in msg


def test_assign_refuses_a_bidi_control_in_the_assignee():
    loc, msg = refusal(line("assign", to="cw-\u2067anna"))
    assert loc == ("to",)
    assert "actor contains a bidirectional control U+2067" in msg


def test_register_apartment_refuses_a_control_character_in_the_landlord():
    loc, msg = refusal(line("register_apartment", landlord="Stockholms\x1bhem"))
    assert loc == ("landlord",)
    assert "landlord contains a control character U+001B" in msg


def test_free_text_allows_newlines_but_refuses_an_esc():
    step = import_line_adapter.validate_python(line("complaint", note="loud music\n\tat night"))
    assert step.note == "loud music\n\tat night"
    loc, msg = refusal(line("decide", reason="ok\x1b[8m"))
    assert loc == ("reason",)
    assert "contains a control character U+001B" in msg


def test_text_fields_store_the_nfc_form():
    step = import_line_adapter.validate_python(
        line("complaint", actor=f"cw-{DECOMPOSED_A_RING}sa", note=f"tv{DECOMPOSED_A_RING}ttstuga")
    )
    assert step.actor == f"cw-{COMPOSED_A_RING}sa"
    assert step.note == f"tv{COMPOSED_A_RING}ttstuga"
    apply = import_line_adapter.validate_python(line("apply", client={
        **CLIENT, "district": f"Sm{DECOMPOSED_A_RING}land", "name": f"{DECOMPOSED_A_RING.upper()}sa"}))
    assert isinstance(apply, ApplyLine)
    assert apply.client.district == f"Sm{COMPOSED_A_RING}land"
    assert apply.client.name == f"{COMPOSED_A_RING.upper()}sa"


def test_length_limits_count_the_nfc_form():
    district = "x" * 63 + DECOMPOSED_A_RING  # 65 code points as typed, 64 once composed
    step = import_line_adapter.validate_python(line("apply", client={**CLIENT, "district": district}))
    assert len(step.client.district) == 64


def test_client_name_refuses_a_bidi_control():
    with pytest.raises(ValidationError, match="name contains a bidirectional control U\\+202E"):
        ClientWithIdentity.model_validate({**CLIENT, "name": "Anna \u202eson"})


# --- personal identity numbers in identifiers -----------------------------------------------


@pytest.mark.parametrize(
    ("step_type", "fields", "loc", "label"),
    [
        ("start_assessment", {"case": "case-19121212-1212"}, ("case",), "case id"),
        ("offer", {"apartment": "apt191212121212"}, ("apartment",), "apartment id"),
        ("apply", {"client": {**CLIENT, "id": "kl-1212121212"}}, ("client", "id"), "client id"),
        ("exit", {"id": "import-19121212-1212.jsonl:3:ab12"}, ("id",), "command id"),
        ("repayment_plan", {"actor": "anna 121212+1212"}, ("actor",), "actor"),
        ("assign", {"to": "pilot-19701063-2391"}, ("to",), "actor"),
        ("apply", {"client": {**CLIENT, "district": "Norrmalm 19121212-1212"}}, ("client", "district"),
         "district"),
        ("register_apartment", {"landlord": "Privat 19121212-1212"}, ("landlord",), "landlord"),
    ],
)
def test_identifier_carrying_a_personal_number_is_refused_with_the_number_masked(
    step_type, fields, loc, label
):
    got_loc, msg = refusal(line(step_type, **fields))
    assert got_loc == loc
    assert f"{label} must not contain a " in msg
    assert "****" in msg and "1212121212" not in msg.replace("-", "").replace("+", "")


def test_case_id_with_a_personal_number_says_to_use_a_pseudonymous_id():
    _, msg = refusal(line("start_assessment", case="case-19121212-1212"))
    assert msg == (
        "Value error, case id must not contain a personal identity number (19121212-****): "
        "use a pseudonymous id"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"case": "BO-2024-0014"},
        {"case": "SH-1042"},
        {"case": "20240101-0001"},
        {"id": "demo-municipality:12:ab12cd34ef56"},
        {"actor": "handlaggare.lind"},
        {"client": {**CLIENT, "id": "kl-7f3a", "district": "Skärholmen 2024-01-01"}},
    ],
)
def test_ordinary_ids_that_only_look_like_numbers_are_accepted(fields):
    import_line_adapter.validate_python(line("apply", **fields))


# --- the identity's personal number ---------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("19121212-1212", "191212121212"),
        ("191212121212", "191212121212"),
        ("121212+1212", "191212121212"),
        ("701063-2391", "197010632391"),
        ("01019012480", "01019012480"),
    ],
)
def test_client_personal_number_is_stored_normalized(given, stored):
    client = ClientWithIdentity.model_validate({**CLIENT, "personal_number": given})
    assert client.personal_number == stored


@pytest.mark.parametrize(
    ("given", "msg"),
    [
        ("19121212-1213", "check digit is 3, should be 2"),
        ("00000000-0000", "all zeros is not a personal identity number"),
        ("19851345-1230", "the date part 1985-13-45 is not a date"),
        ("01019012481", "second check digit is 1, should be 0"),
    ],
)
def test_client_personal_number_that_is_not_valid_is_refused_naming_the_field(given, msg):
    loc, got = refusal(line("apply", client={**CLIENT, "personal_number": given}))
    assert loc == ("client", "personal_number")
    assert got == f"Value error, {msg}"


def test_without_identity_still_drops_the_normalized_personal_number():
    apply = import_line_adapter.validate_python(
        line("apply", client={**CLIENT, "name": "Tolvan Tolvansson", "personal_number": "121212+1212"})
    )
    assert isinstance(apply, ApplyLine)
    assert "191212121212" not in apply.without_identity().model_dump_json()


# --- deterministic inside workflows ---------------------------------------------------------


class _NoClock(date):
    @classmethod
    def today(cls) -> date:
        raise AssertionError("a command model read the clock")


@pytest.mark.parametrize("step_type", list(STEPS))
def test_validating_a_step_reads_no_clock(step_type, monkeypatch):
    monkeypatch.setattr(commands, "date", _NoClock)
    import_line_adapter.validate_python(line(step_type, actor="cw-1212121213"))
    with pytest.raises(ValidationError, match="personal identity number"):
        import_line_adapter.validate_python(line(step_type, actor="cw-121212-1212"))
