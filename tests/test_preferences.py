"""A person's own language: kept for them wherever they sign in, and the language of the
reminder mails they get."""

from __future__ import annotations

import pytest

from application.preferences import Preferences


def test_a_chosen_language_is_kept_per_person_and_can_be_changed(backend, tmp_path):
    env, _ = backend
    prefs = Preferences(env, tmp_path / "preferences.sqlite")
    assert prefs.language("bolots.ahmed") is None
    prefs.choose_language("bolots.ahmed", "nb")
    prefs.choose_language("handlaggare.lind", "en")
    again = Preferences(env, tmp_path / "preferences.sqlite")  # another process, say
    assert (again.language("bolots.ahmed"), again.language("handlaggare.lind")) == ("nb", "en")
    again.choose_language("bolots.ahmed", "sv")
    assert prefs.language("bolots.ahmed") == "sv"


def test_a_language_the_pages_do_not_have_is_refused_and_changes_nothing(tmp_path):
    prefs = Preferences({}, tmp_path / "preferences.sqlite")
    prefs.choose_language("bolots.ahmed", "nb")
    with pytest.raises(ValueError, match="language must be one of sv, en, nb, not 'de'"):
        prefs.choose_language("bolots.ahmed", "de")
    assert prefs.language("bolots.ahmed") == "nb"
