"""Free text leaves the front door sealed with its client's key (application/free_text.py):
what the store does with a sealed text, and what a person may type."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from application.free_text import seal_fields, sealer_for, text_context
from application.keys import KeyRing, open_keyring
from application.store import ERASED
from domain import commands, notice_commands
from domain.case import case_uuid
from domain.commands import FREE_TEXT, TYPED, import_line_adapter
from domain.notice_commands import NOTICE_FREE_TEXT
from tests.builders import Chain, client

REASON = "Bertil Berg har inte lämnat läkarintyg"


def chain_at_decision(tmp_path: Path, case: str = "st-1", owner: str = "k-1") -> Chain:
    chain = Chain(tmp_path / "events.sqlite")
    chain.app.keyring = open_keyring(tmp_path)
    chain.accept(chain.line("apply", on=chain.next_day(), case=case, client=client(owner)))
    chain.accept(chain.step("start_assessment", case))
    return chain


def sealed(chain: Chain, owner: str, case: str, text: str = REASON) -> str:
    return sealer_for(chain.app.keyring, owner, text_context(case), erased=False)(text)


def test_a_text_sealed_at_the_front_door_is_stored_as_it_came_and_reads_in_the_history(tmp_path):
    chain = chain_at_decision(tmp_path)
    token = sealed(chain, "k-1", "st-1")
    chain.accept(chain.step("decide", "st-1", outcome="denied", reason_code="other", reason=token))
    [event] = [e for e in chain.app.events.get(case_uuid("st-1")) if hasattr(e, "reason")]
    assert event.reason == token  # not sealed twice
    assert chain.app.history("st-1")[-1]["details"]["reason"] == REASON


def test_a_sealed_text_of_another_client_or_another_case_is_refused(tmp_path):
    chain = chain_at_decision(tmp_path)
    for owner, case in (("k-2", "st-1"), ("k-1", "st-2")):
        reason = chain.refuse(chain.step("decide", "st-1", outcome="denied", reason_code="other",
                                         reason=sealed(chain, owner, case)))
        assert "sealed text that does not open with this client's key" in reason


def test_an_altered_sealed_text_is_refused(tmp_path):
    chain = chain_at_decision(tmp_path)
    token = sealed(chain, "k-1", "st-1")
    altered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    reason = chain.refuse(chain.step("decide", "st-1", outcome="denied", reason_code="other",
                                     reason=altered))
    assert "does not open" in reason


def test_a_text_for_a_client_erased_already_is_erased_as_it_arrives(tmp_path):
    chain = chain_at_decision(tmp_path)
    chain.app.keyring.data_key("k-1")
    assert chain.app.keyring.destroy("k-1")
    token = sealer_for(chain.app.keyring, "k-1", text_context("st-1"), erased=True)(REASON)
    chain.accept(chain.step("decide", "st-1", outcome="denied", reason_code="other", reason=token))
    assert chain.app.history("st-1")[-1]["details"]["reason"] == ERASED
    assert chain.app.keyring.data_key("k-1", create=False) is None  # no new key for them


def test_a_person_cannot_hand_in_a_sealed_text_of_more_than_500_characters(tmp_path):
    keyring = open_keyring(tmp_path)
    token = keyring.encrypt("k-1", "å" * 500, text_context("st-1"))
    assert len(token) > 500
    line = {"type": "decide", "case": "st-1", "on": "2026-01-02", "actor": "cw",
            "outcome": "denied", "reason_code": "other", "reason": token}
    assert import_line_adapter.validate_python(line).reason == token  # behind the front door
    with pytest.raises(ValidationError, match="at most 500 characters"):
        import_line_adapter.validate_python(line, context=TYPED)


def test_typed_text_is_held_to_its_rules_on_both_sides_of_the_front_door():
    line = {"type": "complaint", "case": "st-1", "on": "2026-01-02", "actor": "cw",
            "note": "enc:v1:clears\x1b[2Jthe screen"}
    for context in (None, TYPED):
        with pytest.raises(ValidationError, match="a control character"):
            import_line_adapter.validate_python(line, context=context)


def test_seal_fields_seals_every_path_and_leaves_empty_text_empty(tmp_path):
    keyring = KeyRing.shredded  # any str -> str will do
    plan = import_line_adapter.validate_python({
        "type": "plan", "case": "st-1", "on": "2026-01-02", "actor": "cw",
        "sub_goals": [{"id": "g1", "goal": "Betala hyran", "responsible": "cw",
                       "follow_up": "2026-03-01"},
                      {"id": "g2", "goal": "", "responsible": "cw", "follow_up": "2026-03-01"}]})
    out = seal_fields(plan, FREE_TEXT["plan"], keyring)
    assert out.goal.startswith("enc:v1:") and out.sub_goals[0].goal.startswith("enc:v1:")
    assert out.sub_goals[1].goal == "" and out.sub_goals[0].id == "g1"
    assert plan.goal == "own housing"  # the step itself is left as it was


def _free_text_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, info in model.model_fields.items():
        if any(_is_text(m) for m in info.metadata) or _mentions_text(info.annotation):
            found.add(prefix + name)
        for inner in _models_in(info.annotation):
            found |= _free_text_paths(inner, f"{prefix}{name}.")
    return found


def _is_text(meta: object) -> bool:
    return getattr(getattr(meta, "func", None), "__name__", "") == "_free_text"


def _mentions_text(annotation: object) -> bool:
    if hasattr(annotation, "__metadata__") and any(map(_is_text, annotation.__metadata__)):
        return True
    return any(_mentions_text(a) for a in typing.get_args(annotation))


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def _steps(union: object) -> list[type[BaseModel]]:
    return [m for m in _models_in(union)]


@pytest.mark.parametrize("union, table", [(commands.ImportLine, FREE_TEXT),
                                          (notice_commands.NoticeStep, NOTICE_FREE_TEXT)])
def test_every_free_text_field_of_every_step_is_sealed_at_the_front_door(union, table):
    found = {}
    for model in _steps(union):
        paths = _free_text_paths(model)
        if paths:
            found[model.model_fields["type"].default] = tuple(sorted(paths))
    assert found == {k: tuple(sorted(v)) for k, v in table.items()}


def test_a_note_on_a_granted_decision_or_an_approval_is_kept_and_stored_sealed(tmp_path):
    chain = chain_at_decision(tmp_path)
    notes = {"decide": "Beviljas: Bertil Berg har ett kontrakt på gång",
             "landlord_decision": "Hyresvärden godkänner Bertil Berg efter intervju"}
    chain.accept(chain.step("decide", "st-1", outcome="granted", programme="training_apartment",
                            reason=notes["decide"]))
    chain.register("apt-n")
    chain.accept(chain.step("offer", "st-1", apartment="apt-n"))
    chain.accept(chain.step("landlord_decision", "st-1", approved=True,
                            reason=notes["landlord_decision"]))
    rows = {r["event"]: r["details"] for r in chain.app.history("st-1")}
    assert rows["Granted"]["reason"] == notes["decide"]
    assert rows["LandlordApproved"]["reason"] == notes["landlord_decision"]
    chain.accept(chain.line("apply", on=chain.next_day(), case="st-2", client=client("k-2")))
    chain.accept(chain.step("start_assessment", "st-2"))
    chain.accept(chain.step("decide", "st-2", outcome="granted", programme="housing_first"))
    assert "reason" not in chain.app.history("st-2")[-1]["details"]  # nothing noted, none shown
    stored = b"".join(Path(p).read_bytes() for p in tmp_path.glob("events.sqlite*"))
    assert all(note.encode() not in stored for note in notes.values())


def test_only_a_step_that_carries_text_is_sealed_or_looks_the_client_up():
    from application.free_text import has_text

    def line(**fields):
        return import_line_adapter.validate_python(
            {"case": "st-1", "on": "2026-01-02", "actor": "cw", **fields}, context=TYPED)

    assert not has_text(line(type="decide", outcome="granted", programme="housing_first"),
                        FREE_TEXT["decide"])
    assert has_text(line(type="decide", outcome="denied", reason="x"), FREE_TEXT["decide"])
    assert not has_text(line(type="plan_review", reviews=[{"sub_goal": "g1", "result": "met"}]),
                        FREE_TEXT["plan_review"])
    assert has_text(line(type="plan_review", reviews=[{"sub_goal": "g1", "result": "met"},
                                                      {"sub_goal": "g2", "result": "met",
                                                       "note": "klart"}]),
                    FREE_TEXT["plan_review"])
