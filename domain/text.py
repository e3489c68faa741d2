"""Text hygiene: what a stored text field may contain, and how old text is shown safely.

Every text field ends up in case histories, reports and terminals. Invisible characters make
two ids that look equal differ (a zero-width space in a case id), bidirectional controls make
a text read differently from how it is stored (U+202E reverses what follows), and control
characters drive the terminal that displays them (ESC starts an escape sequence). So input is
refused when it holds any of these, with a message that names the character, and it is stored
NFC-normalized so that "å" typed as a + ring compares equal to the precomposed "å".

Refusal depends only on the value and the Unicode database of the running Python, never on
a clock, so it is safe inside Temporal workflows, where commands are re-validated on replay.
"""

from __future__ import annotations

import re
import unicodedata

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f" + "".join(map(chr, range(0x202A, 0x202F))) + "".join(map(chr, range(0x2066, 0x206A)))
)
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
MULTILINE_CONTROLS = frozenset("\n\t")

_KINDS = {
    "Cc": "a control character",
    "Cf": "a format character",
    "Cn": "an unassigned code point",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def refused_kind(char: str, *, multiline: bool = False) -> str | None:
    """What kind of refused character `char` is ("a control character", ...), or None if allowed."""
    if multiline and char in MULTILINE_CONTROLS:
        return None
    if char in BIDI_CONTROLS:
        return "a bidirectional control"
    if char in ZERO_WIDTH:
        return "a zero-width character"
    return _KINDS.get(unicodedata.category(char))


def clean_text(value: str, field: str, *, multiline: bool = False) -> str:
    """`value` NFC-normalized, or ValueError naming the first refused character and where it is.

    Refused: C0 and C1 controls (`\\n` and `\\t` are allowed when `multiline`), bidirectional
    controls, zero-width characters, other format (Cf) characters, unassigned code points
    (noncharacters included), surrogates, private-use characters, and U+2028/U+2029.
    """
    normalized = unicodedata.normalize("NFC", value)
    for position, char in enumerate(normalized, start=1):
        kind = refused_kind(char, multiline=multiline)
        if kind:
            raise ValueError(f"{field} contains {kind} {_describe(char)} at position {position}")
    return normalized


def terminal_safe(value: str, *, multiline: bool = False) -> str:
    """`value` with every refused character escaped (`\\x1b`, `\\u202e`), for display.

    For text stored before the rules above existed: it is shown as written, but an ESC can no
    longer drive the terminal and a bidi override can no longer reorder what follows it.
    Backslashes are left as they are, so ordinary text reads unchanged.
    """
    return "".join(_escape(c) if refused_kind(c, multiline=multiline) else c for c in value)


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "")
    return f"{code} ({name})" if name else code


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


# -- sealed text: free text already encrypted with its client's data key ---------------------

SEALED_PREFIX = "enc:v1:"
SEALED_MAX_CHARS = 4096  # a 500-character text in any script, sealed, fits with room to spare
_SEALED = re.compile(r"enc:v1:[A-Za-z0-9_-]{12}:[A-Za-z0-9_-]{38,4000}")


def is_sealed(value: object) -> bool:
    """Whether `value` has the shape of a sealed text (`enc:v1:<key id>:<base64url>`).

    A typed text is sealed at the front door before it goes to Temporal, so the workflow and
    the activity see only this shape; whether it opens under the case's client key is checked
    where the key is (the store)."""
    return (isinstance(value, str) and len(value) <= SEALED_MAX_CHARS
            and _SEALED.fullmatch(value) is not None)
