"""The domain's refusals in Swedish and bokmål: each template of the catalogues is found
again in the message it made, and filled in with its values translated in turn."""

from __future__ import annotations

import re
from datetime import date

import pytest
from babel.messages.pofile import read_po

from application.i18n import LOCALE_DIR
from domain.errors import DomainError
from domain.stages import STAGE_LABELS, Stage, check_step
from interfaces.web.refusals import templates, translate

FIELD = re.compile(r"\{(\w+)\}")


def catalogue(lang: str) -> dict[str, str]:
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id}


@pytest.mark.parametrize("lang", ["sv", "nb"])
def test_every_refusal_template_has_a_wording_with_the_same_fields(lang):
    wording = catalogue(lang)
    assert len(templates()) > 40
    for _, msgid in templates():
        assert sorted(FIELD.findall(wording[msgid])) == sorted(FIELD.findall(msgid)), msgid


@pytest.mark.parametrize("lang", ["sv", "nb"])
def test_every_template_filled_in_is_found_again_and_keeps_its_values(lang):
    """Values that are no words of their own (ids, dates) pass through as they are; the
    translation is the template's own wording, not another template's."""
    wording = catalogue(lang)
    for _, msgid in templates():
        values = {name: f"Q{n}x" for n, name in enumerate(dict.fromkeys(FIELD.findall(msgid)))}
        text, translated = translate(msgid.format(**values), lang)
        assert translated, msgid
        assert text == wording[msgid].format(**values), msgid


def refused(stage: Stage, command: str, on: date = date(2026, 1, 1), **kw) -> str:
    with pytest.raises(DomainError) as exc:
        check_step("c-1", stage, STAGE_LABELS[stage], command, on, date(2026, 2, 1), None, **kw)
    return str(exc.value)


def test_a_step_the_stage_does_not_allow_is_refused_in_swedish_with_the_steps_by_name():
    message = refused(Stage.ASSESSMENT, "offer")
    assert message == ("case c-1 is under assessment: offer needs a granted decision and no "
                       "open offer; allowed now: decide, assign, exit")
    assert translate(message, "sv") == (
        "ärende c-1 är under utredning: ”Erbjud lägenhet” kräver ett beviljat beslut och inget "
        "öppet erbjudande; tillåtet nu: ”Fatta beslut”, ”Tilldela”, ”Avsluta ärendet”", True)
    assert translate(message, "nb")[0].startswith("sak c-1 er under utredning: «Tilby bolig» krever")


def test_an_exit_and_a_date_are_refused_in_bokmal_with_the_values_translated():
    exit_ = refused(Stage.WAITING, "exit", destination="first_hand_lease")
    assert translate(exit_, "nb")[0] == (
        "sak c-1 er i påvente av en leilighet: «Avslutt saken» til førstehåndskontrakt krever en "
        "overtakelse som utleier har godkjent; mulige avslutninger nå: egen bolig, trukket, "
        "avdød, flyttet")
    late = refused(Stage.WAITING, "offer", on=date(2026, 3, 1))
    assert translate(late, "sv") == (
        "ärende c-1: ”Erbjud lägenhet” den 2026-03-01 ligger efter i dag (2026-02-01)", True)


def test_a_step_on_a_closed_case_is_refused_in_swedish_with_its_outcome():
    from domain.stages import closed_refusal

    assert translate(closed_refusal("c-1", "own_housing"), "sv") == (
        "ärende c-1 är avslutat (egen bostad): inga fler steg kan tas", True)


def test_an_apartment_refusal_translates_its_nested_parts(chain):
    chain.drive("a", Stage.OFFERED, apartment="A1")
    chain.drive("b", Stage.WAITING)
    message = chain.refuse(chain.step("offer", "b", apartment="A1"))
    assert message == "apartment A1 is offered: offer needs a vacant apartment"
    assert translate(message, "sv") == (
        "lägenhet A1 är erbjuden: ”Erbjud lägenhet” kräver en lägenhet som är ledig", True)


def test_text_made_from_no_template_stays_english_and_says_so():
    assert translate("the stack is away", "sv") == ("the stack is away", False)
    assert translate("case c-1 is under assessment", "en") == ("case c-1 is under assessment", True)
