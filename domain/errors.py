"""Domain refusals. Each message names the case (or apartment), where it stands and why.

A refusal's words are an English template marked with `N_` (placeholders `{name}`), filled
in where it is raised. The message catalogues hold the templates with their Swedish and
bokmål wording, and the web pages translate a refusal by finding the template it was made
from (interfaces/web/refusals.py): the words are written once, here in the domain.
"""


def N_(template: str) -> str:
    """Marks a refusal's template for the message catalogues."""
    return template


class DomainError(Exception):
    """A step the rules refuse. Nothing was recorded."""


class StepNotAllowed(DomainError):
    """The step does not follow from the case's current stage."""


class InvalidDate(DomainError):
    """The effective date is in the future or before the case's last step."""


class ApartmentUnavailable(DomainError):
    """The apartment is not in a state that allows the step."""
