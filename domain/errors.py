"""Domain refusals. Each message names the case (or apartment), where it stands and why."""


class DomainError(Exception):
    """A step the rules refuse. Nothing was recorded."""


class StepNotAllowed(DomainError):
    """The step does not follow from the case's current stage."""


class InvalidDate(DomainError):
    """The effective date is in the future or before the case's last step."""


class ApartmentUnavailable(DomainError):
    """The apartment is not in a state that allows the step."""
