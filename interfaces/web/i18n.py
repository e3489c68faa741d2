"""Languages: Swedish by default, English and Norwegian bokmål; the user's choice (a cookie)
wins over Accept-Language. The catalogues are the application's (application/i18n.py);
dates and numbers are formatted per locale here."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.core import negotiate_locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

from application.i18n import DEFAULT, LANGUAGES, N_, translations

__all__ = ["DEFAULT", "LANGUAGES", "N_", "translations"]

LANGUAGE_NAMES = {"sv": "Svenska", "en": "English", "nb": "Norsk bokmål"}
_ALIASES = {"no": "nb", "nn": "nb", "nb": "nb", "sv": "sv", "en": "en"}


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    wanted = []
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().replace("_", "-").lower()
        if tag:
            wanted.append(_ALIASES.get(tag.split("-")[0], tag.split("-")[0]))
    return negotiate_locale(wanted, LANGUAGES) or DEFAULT




def fmt_date(value: Any, lang: str) -> str:
    if value in (None, ""):
        return "–"
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    return format_date(value, "medium" if lang == "en" else "short", locale=Locale.parse(lang))


def fmt_datetime(value: Any, lang: str, time_zone: str | None = None) -> str:
    """A stored moment (UTC) as the wall-clock time of the municipality's time zone."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if time_zone and value.tzinfo is not None:
        value = value.astimezone(ZoneInfo(time_zone))
    if lang == "sv":
        return value.strftime("%Y-%m-%d %H:%M")
    return format_datetime(value, "short", locale=Locale.parse(lang))


def fmt_number(value: Any, lang: str) -> str:
    if value in (None, ""):
        return "–"
    return format_decimal(value, locale=Locale.parse(lang))
