"""The reports' options by the API's names. The report layer's messages name the CLI's
options (`--by must be one of ...`, `report kpis needs --year`); through the API they name
the query parameters instead (`` `by` must be one of ...``), and the CLI working through the
API turns them back, so that each reader is told the name they typed.

No FastAPI here: the CLI imports this without the web stack.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from application.reporting import OPTION_NAMES, QUERY_NAMES

_QUERY_OF_OPTION = {OPTION_NAMES[field]: query for field, query in QUERY_NAMES.items()}
_OPTION_OF_QUERY = {query: OPTION_NAMES[field] for field, query in QUERY_NAMES.items()}

_EXAMPLE = re.compile(r"e\.g\. (--[a-z][a-z-]*) (\S+)")  # `e.g. --year 2026`
_OPTION = re.compile(r"--[a-z][a-z-]*")
_QUERY = re.compile(r"`([a-z_]+)(?:=([^`]*))?`")
_LEADING = re.compile(r"^`([a-z_]+)`:")
_BARE = re.compile(r"^([a-z_]+):")


def query_wording(message: str) -> str:
    """A report's message with the CLI's options as the API's query parameters, in
    backticks (`by` alone is a common word): `e.g. --year 2026` as `` e.g. `year=2026` ``."""
    def example(m: re.Match[str]) -> str:
        query = _QUERY_OF_OPTION.get(m[1])
        return f"e.g. `{query}={m[2]}`" if query else m[0]

    def option(m: re.Match[str]) -> str:
        query = _QUERY_OF_OPTION.get(m[0])
        return f"`{query}`" if query else m[0]

    worded = _outside_quotes(message,
                             lambda part: _OPTION.sub(option, _EXAMPLE.sub(example, part)))
    # a message about one parameter starts with its bare name, as the API's other 422s do
    return _LEADING.sub(r"\1:", worded, count=1)


def option_wording(message: str) -> str:
    """`query_wording` undone: the API's message as the CLI says it."""
    def option(m: re.Match[str]) -> str:
        name = _OPTION_OF_QUERY.get(m[1])
        if name is None:
            return m[0]
        return f"{name} {m[2]}" if m[2] is not None else name

    leading = _BARE.match(message)
    if leading and leading[1] in _OPTION_OF_QUERY:
        message = f"{_OPTION_OF_QUERY[leading[1]]}:{message[leading.end():]}"
    return _outside_quotes(message, lambda part: _QUERY.sub(option, part))


_QUOTED = re.compile(r"('[^']*')")  # a value the reader gave, echoed as its repr


def _outside_quotes(message: str, change: Callable[[str], str]) -> str:
    """`change` applied to the message but not to the values it quotes (`not '--district'`
    keeps what the reader typed)."""
    return "".join(part if k % 2 else change(part)
                   for k, part in enumerate(_QUOTED.split(message)))
