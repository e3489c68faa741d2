"""The CLI's words in the language of the terminal's locale (LC_ALL, LC_MESSAGES, LANG:
`sv_SE.UTF-8` is Swedish, `nb_NO`/`no`/`nn` bokmål, anything else English): the stage names
and the report tables' column headers, from the catalogues the pages and mails use. In
English the column headers stay the report's keys, as the JSON and the CSV have them."""

from __future__ import annotations

import os
from collections.abc import Mapping

from application.i18n import N_, translations
from application.labels import COLUMNS, STAGES

_LANGUAGE = {"sv": "sv", "nb": "nb", "no": "nb", "nn": "nb"}
GROUP = N_("Group")  # a report's group column: a period, or a district, a programme, …


def terminal_language(env: Mapping[str, str] = os.environ) -> str:
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return _LANGUAGE.get(value.split(".")[0].split("_")[0].lower(), "en")
    return "en"


def stage_name(stage: str, english: str, lang: str) -> str:
    """A stage's name (the domain's English one, e.g. "in a training apartment")."""
    if lang == "en" or stage not in STAGES:
        return english
    return translations(lang).gettext(STAGES[stage])


def column(key: str, lang: str) -> str:
    """A report table's header: `mean_days` → "Medel (dagar)"; a flattened key
    (`exits.own_housing`) and an unknown one stay as they are."""
    if lang == "en":
        return key
    label = GROUP if key == "group" else COLUMNS.get(key)
    return translations(lang).gettext(label) if label else key
