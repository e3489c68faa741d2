"""Sign-in for the API: a bearer token (an OIDC access token, a JWT) becomes a `Principal`.

Tokens are checked against the configured issuer's keys (`HOUSING_CHAIN_OIDC_ISSUER`, its
discovery document and JWKS), or, on the embedded stack, against the local issuer whose key
lives in the data directory. A municipal identity provider (SITHS, Freja, Azure AD through
OIDC) plugs in by those settings alone; the claims that carry roles and units are settings
too.
"""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from application.errors import Unauthenticated, Unavailable
from application.tokens import IdentityProviderUnavailable, LocalIssuer, TokenError, TokenVerifier
from config.settings import Settings
from domain.access import ROLE_NAMES, Principal


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.local: LocalIssuer | None = None
        self._inline = False  # verify on the event loop: the local issuer, its key loaded
        if settings.oidc_issuer:
            self.verifier = TokenVerifier.from_issuer(
                settings.oidc_issuer, settings.oidc_audience,
                role_claim=settings.oidc_role_claim, unit_claim=settings.oidc_unit_claim)
        else:
            self.local = LocalIssuer(settings.data, audience=settings.oidc_audience)
            self.verifier = self.local.verifier(role_claim=settings.oidc_role_claim,
                                                unit_claim=settings.oidc_unit_claim)

    def principal(self, token: str, address: str | None) -> Principal:
        try:
            verified = self.verifier.verify(token)
        except IdentityProviderUnavailable as exc:
            raise Unavailable(str(exc)) from None
        except TokenError as exc:
            raise Unauthenticated(str(exc)) from None
        roles = frozenset(r for r in verified.roles if r in ROLE_NAMES)
        return Principal(subject=verified.subject, roles=roles, units=frozenset(verified.units),
                         address=address)

    async def __call__(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("sign in: send `Authorization: Bearer <token>`")
        address = request.client.host if request.client else None
        if self._inline:
            # the local issuer's key is in memory by now: a signature check (well under a
            # millisecond) costs less inline than the hop to a thread and back
            return self.principal(token.strip(), address)
        # an OIDC issuer's keys may have to be fetched (JWKS), and the local issuer reads (or
        # makes) its key on first use: not on the event loop
        principal = await run_in_threadpool(self.principal, token.strip(), address)
        self._inline = self.local is not None
        return principal
