"""Free text is sealed with its client's data key at the front door, before Temporal sees it.

The PayloadCodec keeps Temporal's copy of a step unreadable to whoever reaches its database or
its UI, but under the installation's codec key: anyone holding that key, or a supervisor
decoding a history through the codec endpoint, would still read what a caseworker typed, years
after the client was erased. So the free text of a step (`commands.FREE_TEXT`) leaves the front
door sealed with the client's own key, the token the event store keeps too: erasing the client's
key erases the text in the workflow's update arguments as well as in the events.

The store still seals a text that arrives in the clear (histories recorded before this, or a
Temporal client of one's own), and checks that a sealed one opens under the case's client key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from application.keys import DecryptionError, KeyRing
from domain.errors import DomainError


def text_context(case_id: str) -> str:
    """What a case's text token is bound to (its AAD): moved to another case, it does not open."""
    return f"case/{case_id}/text"


def note_context(notice_id: str) -> str:
    return f"notice/{notice_id}/text"


def seal_fields(step: Any, paths: tuple[str, ...], seal: Callable[[str], str]) -> Any:
    """`step` with the text at each path sealed (`reviews.note`: in every review); empty text
    stays empty, so "a denial needs a reason" still sees whether there is one."""
    nested: dict[str, list[str]] = {}
    update: dict[str, Any] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, []).append(rest)
            continue
        value = getattr(step, head)
        if value:
            update[head] = seal(value)
    for head, rests in nested.items():
        update[head] = [seal_fields(item, tuple(rests), seal) for item in getattr(step, head)]
    return step.model_copy(update=update) if update else step


def has_text(step: Any, paths: tuple[str, ...]) -> bool:
    """Whether any of the paths holds text (most steps that may carry a note carry none)."""
    for path in paths:
        head, _, rest = path.partition(".")
        value = getattr(step, head)
        if rest:
            if any(has_text(item, (rest,)) for item in value):
                return True
        elif value:
            return True
    return False


def sealer_for(keyring: KeyRing, owner: str, context: str,
               erased: bool) -> Callable[[str], str]:
    """How a text of `owner` is sealed: with their data key, or, when the client is erased,
    with a key thrown away at once (the text is erased as it arrives, and erasure is not
    undone by a new key)."""
    if erased:
        return KeyRing.shredded
    return lambda text: keyring.encrypt(owner, text, context)


def check_sealed(keyring: KeyRing, owner: str, token: str, context: str, where: str) -> str:
    """A sealed text kept as it came, once it is shown to open under `owner`'s key for this
    context. A token of another client or case, or altered, is refused, and so is one for a
    client who has no key; a text erased as it arrived (its client erased already) is kept."""
    if KeyRing.is_shredded(token):
        return token
    try:
        if keyring.decrypt(owner, token, context) is None:
            raise DecryptionError("the client has no data key")
    except DecryptionError:
        raise DomainError(f"{where}: a sealed text that does not open with this client's key "
                          "is refused") from None
    return token
