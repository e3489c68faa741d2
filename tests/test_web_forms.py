"""The case page's step forms: every step a case allows has a form, and what the form posts is
the step the domain takes (the import-line shape), repeated parts (sub-goals, reviews) too."""

from __future__ import annotations

import re

import pytest

from config.settings import Settings
from domain.commands import import_line_adapter
from domain.stages import ALLOWED
from interfaces.web import labels


def test_every_step_a_case_allows_has_a_form():
    allowed = {step for steps in ALLOWED.values() for step in steps}
    assert allowed - set(labels.STEP_FORMS) == set()


FILLED = {  # what a caseworker types into each case-file form
    "plan": {"goal": "eget boende", "sub_goals-0-id": "hyra", "sub_goals-0-goal": "betala hyran",
             "sub_goals-0-responsible": "handlaggare.lind", "sub_goals-0-follow_up": "2027-01-15",
             "sub_goals-1-id": "  ", "sub_goals-2-goal": ""},
    "plan_review": {"reviews-0-sub_goal": "hyra", "reviews-0-result": "partly",
                    "reviews-0-next_follow_up": "2027-03-01", "reviews-1-sub_goal": "jobb",
                    "reviews-1-result": ""},
    "temporary_placement": {"placement": "tp-1", "kind": "hotel", "start": "2026-11-02",
                            "cost_per_night": "950"},
    "placement_ended": {"placement": "tp-1"},
    "support_interrupted": {"kind": "hospital"},
    "support_resumed": {},
    "support_level": {"level": "3"},
    "rent_payment": {"amount": "1200.50"},
    "move_apartment": {"apartment": "SH-2001"},
}


@pytest.mark.parametrize("step", sorted(FILLED))
def test_a_filled_in_case_file_form_posts_the_step_the_domain_takes(step):
    fields = labels.step_fields(step, {**FILLED[step], "on": "2026-11-20"})
    line = import_line_adapter.validate_python(
        {**fields, "case": "c-1", "actor": "handlaggare.lind", "id": "f-1"})
    assert (line.type, line.on.isoformat()) == (step, "2026-11-20")
    if step == "plan":  # the empty rows are no sub-goals
        assert [(g.id, g.goal, g.follow_up.isoformat()) for g in line.sub_goals] == [
            ("hyra", "betala hyran", "2027-01-15")]
    if step == "plan_review":  # a sub-goal without a result is not reviewed now
        assert [(r.sub_goal, r.result) for r in line.reviews] == [("hyra", "partly")]


def test_a_half_filled_sub_goal_is_refused_naming_the_field():
    fields = labels.step_fields("plan", {"sub_goals-0-id": "hyra", "sub_goals-0-goal": "x"})
    with pytest.raises(ValueError, match=r"sub_goals\.0\.responsible"):
        import_line_adapter.validate_python({**fields, "case": "c-1", "actor": "a", "id": "f"})


def test_the_case_page_has_the_fields_of_each_allowed_step(tmp_path):
    """Rendered for a tenancy with an individual plan and an open placement: the plan form
    has its sub-goal rows, the review a row per open sub-goal, the placement's end a choice of
    the open placements; every step of the stage has its form with its fields."""
    from fastapi import Request

    from interfaces.api.app import create_app

    web = create_app(Settings(data=tmp_path)).state.web
    request = Request({"type": "http", "method": "GET", "path": "/cases/c-1", "headers": [],
                       "query_string": b"", "scheme": "http", "server": ("testserver", 80)})
    steps = sorted({*ALLOWED[next(s for s in ALLOWED if s.value == "training")],
                    "temporary_placement"})
    case = {"case": "c-1", "stage": "training", "client": "kl-1", "district": "Farsta",
            "target_group": "elderly", "household": {"adults": 1, "children": 0},
            "programme": "training_apartment", "exits": ["terminated", "own_housing"],
            "apartment": "SH-1", "caseworker": "handlaggare.lind", "housing_pilot": None,
            "applied_on": "2026-01-05", "decision_date": "2026-01-20",
            "move_in_date": "2026-03-01",
            "due": [], "case_file": {
                "plan": {"made_on": "2026-10-01", "open_sub_goals": [
                    {"id": "hyra", "follow_up": "2027-01-15"},
                    {"id": "jobb", "follow_up": "2027-02-01"}]},
                "open_placements": [{"id": "tp-1", "start": "2026-09-01"}]}}
    page = web.render(request, "case.html", c=case, history=[], steps=steps, error=None,
                      identity=None, done=None, values={}, today="2026-11-24",
                      can_reveal=True, can_log=False).body.decode()
    forms = dict(re.findall(r'<form[^>]*id="step-([a-z_]+)"(.*?)</form>', page, re.S))
    assert sorted(forms) == steps
    for step in steps:
        names = set(re.findall(r'name="([^"]+)"', forms[step]))
        for name, kind, _ in labels.STEP_FORMS[step]:
            if kind not in ("sub_goals", "reviews"):
                assert name in names, (step, name)
    assert {f"sub_goals-{i}-{f}" for i in range(labels.SUB_GOAL_ROWS)
            for f in labels.SUB_GOAL_FIELDS} <= set(re.findall(r'name="([^"]+)"', forms["plan"]))
    review = forms["plan_review"]
    assert re.findall(r'name="(reviews-\d-sub_goal)" value="([^"]+)"', review) == [
        ("reviews-0-sub_goal", "hyra"), ("reviews-1-sub_goal", "jobb")]
    assert re.findall(r'<option value="(tp-[^"]+)"', forms["placement_ended"]) == ["tp-1"]
    # every field has its label (no form control without one)
    for control in re.findall(r'<(?:input|select)[^>]*id="([^"]+)"', page):
        assert f'for="{control}"' in page, control


def test_a_refused_step_whose_form_is_not_on_the_page_shows_its_reason_at_the_top(tmp_path):
    """A step on a case closed meanwhile (another tab, a colleague): no step's form is left
    to show the refusal beside, so the notice at the top says why."""
    from fastapi import Request

    from domain.stages import closed_refusal
    from interfaces.api.app import create_app

    web = create_app(Settings(data=tmp_path)).state.web
    request = Request({"type": "http", "method": "POST", "path": "/cases/c-1/steps",
                       "headers": [], "query_string": b"", "scheme": "http",
                       "server": ("testserver", 80)})
    case = {"case": "c-1", "stage": "closed", "client": "kl-1", "district": "Farsta",
            "target_group": "elderly", "household": {"adults": 1, "children": 0},
            "programme": "training_apartment", "exits": [], "apartment": None,
            "caseworker": "handlaggare.lind", "housing_pilot": None,
            "applied_on": "2026-01-05", "decision_date": "2026-01-20", "move_in_date": None,
            "due": [], "case_file": {}}
    page = web.render(request, "case.html", 409, c=case, history=[], steps=[],
                      error=("record_visit", closed_refusal("c-1", "own_housing")),
                      identity=None, done=None, values={}, today="2026-11-24",
                      can_reveal=True, can_log=False).body.decode()
    notice = re.search(r'<p class="notice error"[^>]*>(.*?)</p>', page, re.S).group(1)
    assert "ärende c-1 är avslutat (egen bostad): inga fler steg kan tas" in notice, notice
