"""What a use case answers when it does not do what was asked, one class per kind of answer.

Every interface maps them the same way: the CLI to exit codes (1 refused or not found,
2 bad input), the API to problem details (409, 404, 422, 403, 503), the web pages to a
message beside the form. The message is always the domain's own words.
"""

from __future__ import annotations

from domain.access import Forbidden


class UseCaseError(Exception):
    """Base: the message is for the person who asked."""

    status = 400
    title = "Bad request"


class Refused(UseCaseError):
    """The case (or the stock, or a notice) refuses the step; nothing was recorded."""

    status = 409
    title = "Step refused"


class NotFound(UseCaseError):
    status = 404
    title = "Not found"


class BadInput(UseCaseError):
    """Malformed input; the message names the field, option or line."""

    status = 422
    title = "Invalid input"


class Unavailable(UseCaseError):
    """The stack (Temporal, the event store, the read models) cannot answer now."""

    status = 503
    title = "Service unavailable"


class Unauthenticated(UseCaseError):
    status = 401
    title = "Not signed in"


__all__ = ["BadInput", "Forbidden", "NotFound", "Refused", "Unauthenticated", "Unavailable",
           "UseCaseError"]
