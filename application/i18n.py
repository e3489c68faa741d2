"""The message catalogues, for every interface and for what the engine sends (reminder
mails): Swedish by default, English and Norwegian bokmål. Babel catalogues in
application/locale, filled from locale/translations.tsv and compiled to .mo by
`python -m interfaces.web.catalogues` (the .mo files are committed too)."""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("sv", "en", "nb")
DEFAULT = "sv"


def N_(message: str) -> str:
    """Marks a message id for extraction; translated when shown."""
    return message


@cache
def translations(lang: str) -> gettext.NullTranslations:
    return gettext.translation("messages", LOCALE_DIR, languages=[lang], fallback=lang == "en")
