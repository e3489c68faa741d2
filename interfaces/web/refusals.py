"""A refusal in the reader's language.

The domain words each refusal once, as an English template marked `N_` ("case {case} is
{stage}: {command} {why}; allowed now: {allowed}"), and sends it filled in, through Temporal
and the application layer, as text. The catalogues hold every template with its Swedish and
bokmål wording, so a refusal is translated here by finding the template it was made from:
each template becomes a pattern whose fields catch the values, the values are translated in
turn (a stage's words, a step's name, a nested reason), and the translated template is
filled in with them. Text made from no template stays as it came, marked English.
"""

from __future__ import annotations

import re
from functools import cache

from babel.messages.pofile import read_po

from application.i18n import LOCALE_DIR, translations
from interfaces.web import labels

_FIELD = re.compile(r"\{(\w+)\}")
# fields whose values are step names or lists of them, or the stock's and exits' values
_STEP_FIELDS = {"command"}
_VALUE_FIELDS = {"status", "needed", "destination", "kind", "role", "outcome", "outcomes",
                 "last_outcome"}
_QUOTES = {"sv": ("”", "”"), "nb": ("«", "»")}


@cache
def templates() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Every refusal template of the catalogues as a pattern, the most specific first (the
    most literal text), so that a general template never takes a message a longer one fits."""
    with (LOCALE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        ids = [m.id for m in read_po(f) if isinstance(m.id, str) and _FIELD.search(m.id)]
    found = []
    for msgid in ids:
        pattern, seen, at = [], set(), 0
        for m in _FIELD.finditer(msgid):
            pattern.append(re.escape(msgid[at:m.start()]))
            name = m.group(1)
            pattern.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
            seen.add(name)
            at = m.end()
        pattern.append(re.escape(msgid[at:]))
        literal = len(_FIELD.sub("", msgid))
        found.append((literal, re.compile("".join(pattern), re.S), msgid))
    found.sort(key=lambda x: -x[0])
    return tuple((p, msgid) for _, p, msgid in found)


def translate(text: str, lang: str) -> tuple[str, bool]:
    """`text` in `lang`, and whether it is translated (False: it stays in English)."""
    if lang == "en" or not text:
        return text, lang == "en"
    result = _translate(text, lang, 0)
    return (text, False) if result is None else (result, True)


def _translate(text: str, lang: str, depth: int) -> str | None:
    g = translations(lang).gettext
    if g(text) != text:
        return g(text)
    if depth > 4:
        return None
    for pattern, msgid in templates():
        m = pattern.fullmatch(text)
        if m is None:
            continue
        wording = g(msgid)
        if wording == msgid:
            return None
        values = {name: _value(name, value, lang, depth) for name, value in m.groupdict().items()}
        return wording.format(**values)
    return None


def _value(name: str, value: str, lang: str, depth: int) -> str:
    g = translations(lang).gettext
    if name in _STEP_FIELDS:
        return _step(value, lang)
    if name == "allowed":
        return g(value) if g(value) != value else ", ".join(_step(v, lang) for v in value.split(", "))
    if name in _VALUE_FIELDS or name == "exits":
        return ", ".join(g(labels.VALUES[v]) if v in labels.VALUES else v for v in value.split(", "))
    return _translate(value, lang, depth + 1) or value


def _step(step: str, lang: str) -> str:
    label = labels.STEPS.get(step) or labels.NOTICE_STEPS.get(step)
    if label is None:
        return step
    left, right = _QUOTES.get(lang, ('"', '"'))
    return f"{left}{translations(lang).gettext(label)}{right}"
