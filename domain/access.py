"""Who may do what to which record: roles × actions, and the scope of a record.

A person signs in with one or more roles and the units (districts) they work in; a housing
pilot reaches the cases assigned to them, a landlord only its own apartments' decisions.
Pure rules: the application layer asks them before every use case and records the answer
in the access log (the reader's relation to the case at that moment goes with it, for the
monthly log review).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from domain.steps import BY_TYPE


class Role(StrEnum):
    CASEWORKER = "caseworker"
    HOUSING_PILOT = "housing_pilot"
    SUPERVISOR = "supervisor"
    LANDLORD = "landlord"
    ADMIN = "admin"


ROLE_NAMES = tuple(r.value for r in Role)


class Forbidden(Exception):
    """The signed-in person may not do this; the message says why, never what the record holds."""


@dataclass(frozen=True)
class Principal:
    """The signed-in person: the token's subject, their roles and their units."""

    subject: str
    roles: frozenset[str]
    units: frozenset[str] = frozenset()
    address: str | None = None

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


@dataclass(frozen=True)
class CaseScope:
    """What the rules need to know of a case: its unit and who is assigned to it."""

    case: str
    district: str | None = None
    client: str | None = None  # the pseudonymous client id: whose key seals the case's text
    caseworker: str | None = None
    housing_pilot: str | None = None
    landlord: str | None = None  # the landlord of the apartment offered or lived in
    exists: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def relation(who: Principal, scope: CaseScope) -> str:
    """How the person relates to the case now: `assigned`, `unit`, `landlord` or `none`."""
    if who.subject in (scope.caseworker, scope.housing_pilot):
        return "assigned"
    if scope.district is not None and scope.district in who.units and who.has(
            Role.CASEWORKER, Role.SUPERVISOR):
        return "unit"
    if owns_apartment(who, scope.landlord):
        return "landlord"
    return "none"


def check_read_case(who: Principal, scope: CaseScope, kind: str = "case") -> None:
    """Caseworkers and supervisors read the cases of their units, a caseworker also the cases
    assigned to them, a housing pilot the cases assigned to them; landlords read no case."""
    if who.is_admin:
        return
    rel = relation(who, scope)
    if who.has(Role.CASEWORKER, Role.SUPERVISOR) and rel in ("unit", "assigned"):
        return
    if who.has(Role.HOUSING_PILOT) and who.subject == scope.housing_pilot:
        return
    raise Forbidden(f"{who.subject} may not read {kind} {scope.case}: "
                    f"{_why_not(who, scope, kind)}")


def check_step(who: Principal, step_type: str, scope: CaseScope | None, *,
               shown_as: str | None = None, target: str = "case") -> None:
    """Steps: caseworkers on the cases of their units (or assigned to them), housing pilots
    their visits and course sessions on the cases assigned to them, landlords their decisions
    on their own apartments; supervisors take no steps; the admin may take any."""
    if who.is_admin:
        return
    spec = BY_TYPE.get(step_type)
    allowed_roles = set(spec.roles) if spec else {Role.CASEWORKER.value}
    if not who.roles & allowed_roles:
        roles = ", ".join(sorted(who.roles)) or "no role"
        raise Forbidden(f"{who.subject} ({roles}) may not take the step {shown_as or step_type}")
    if scope is None:  # a stock step: no case to scope it
        return
    rel = relation(who, scope)
    if who.has(Role.CASEWORKER) and Role.CASEWORKER in allowed_roles and rel in ("unit", "assigned"):
        return
    if (who.has(Role.HOUSING_PILOT) and Role.HOUSING_PILOT in allowed_roles
            and who.subject == scope.housing_pilot):
        return
    if who.has(Role.LANDLORD) and Role.LANDLORD in allowed_roles and rel == "landlord":
        return
    raise Forbidden(f"{who.subject} may not take the step {shown_as or step_type} on {target} "
                    f"{scope.case}: {_why_not(who, scope, target)}")


def owns_apartment(who: Principal, landlord: str | None) -> bool:
    """A landlord's own apartment: its landlord is one of the person's units (the company)
    or the person."""
    return landlord is not None and who.has(Role.LANDLORD) and (
        landlord in who.units or landlord == who.subject)


def check_stock_step(who: Principal, step_type: str, apartment: str,
                     landlord: str | None) -> None:
    """Steps on the stock: caseworkers (and the admin) on any apartment, a landlord only on
    its own. `landlord`: the apartment's, None when it is not registered; a landlord is then
    refused as for another's, so that a refusal tells nothing of other landlords' stock."""
    check_step(who, step_type, None)
    if who.is_admin or (who.has(Role.CASEWORKER) and Role.CASEWORKER in BY_TYPE[step_type].roles):
        return
    if not owns_apartment(who, landlord):
        raise Forbidden(f"{who.subject} may not take the step {step_type} on apartment "
                        f"{apartment}: landlords take steps on their own apartments only")


def check_apply(who: Principal, case: str, district: str) -> None:
    """A new application: a caseworker opens cases in their own units."""
    if who.is_admin:
        return
    if not who.has(Role.CASEWORKER):
        raise Forbidden(f"{who.subject} may not register applications (caseworkers do)")
    if district not in who.units:
        raise Forbidden(f"{who.subject} may not open case {case} in district {district}: "
                        f"not one of their units ({', '.join(sorted(who.units)) or 'none'})")


def check_reveal(who: Principal, scope: CaseScope) -> None:
    """Name and personal identity number: only caseworkers of the case's unit (or the
    caseworker assigned to it), and only on an explicit, logged reveal."""
    if who.has(Role.CASEWORKER) and relation(who, scope) in ("unit", "assigned"):
        return
    raise Forbidden(f"{who.subject} may not see the identity of the client of case {scope.case}: "
                    "only caseworkers of the case's unit may")


REPORT_READERS = (Role.SUPERVISOR, Role.ADMIN)
# the queue, the stock and the eviction notices are caseworkers' daily tools too
CASEWORKER_REPORTS = ("queue", "stock", "evictions")


def check_report(who: Principal, name: str) -> None:
    if who.has(*REPORT_READERS):
        return
    if name in CASEWORKER_REPORTS and who.has(Role.CASEWORKER):
        return
    raise Forbidden(f"{who.subject} may not read the report {name}: supervisors read reports")


def reviews(who: Principal, case_unit: str | None, reader_units: Iterable[str]) -> bool:
    """Whether a record is in `who`'s monthly review of the access log: the admin reviews
    every record; a supervisor those about the cases of their units and, for the records of
    no case (a refused report, say), those of readers from their units."""
    if who.is_admin:
        return True
    if case_unit is not None:
        return case_unit in who.units
    return bool(who.units & set(reader_units))


def report_lists_every_case(who: Principal) -> bool:
    """Reports list, case by case, only the cases the reader may read (`check_read_case`):
    the admin every case; a caseworker or supervisor those of their units and those assigned
    to them. Figures of the whole municipality (counts, waiting times) are no case's."""
    return who.is_admin


def check_role(who: Principal, action: str, *roles: Role) -> None:
    """Actions of whole roles: import, erasure, projections (admin), the audit (supervisor)."""
    if who.is_admin or who.has(*roles):
        return
    needed = ", ".join(r.value for r in (*roles, Role.ADMIN))
    raise Forbidden(f"{who.subject} may not {action}: needs the role {needed}")


def _why_not(who: Principal, scope: CaseScope, kind: str = "case") -> str:
    if who.has(Role.HOUSING_PILOT) and not who.has(Role.CASEWORKER, Role.SUPERVISOR):
        return f"the {kind} is not assigned to them"
    if who.has(Role.LANDLORD):
        return "landlords see only the decisions on their own apartments"
    return f"the {kind} is not in their units and not assigned to them"
