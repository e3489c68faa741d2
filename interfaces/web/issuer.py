"""The local issuer's authorization code flow (embedded stack only): /oidc/authorize shows
a sign-in form for the users of `<data>/users.json`, /oidc/token trades a code and its PKCE
verifier (S256) for an access token minted by `LocalIssuer.mint`.

Codes are single-use and expire after CODE_SECONDS. They are kept in a small SQLite table
in the data directory (`<data>/web-codes.sqlite`), so any API process sharing the data
directory redeems a code another one issued; taking a code deletes its row in the same
statement, so it is redeemed once across all processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path

from application.auth_codes import CodeStore as SharedCodes
from application.tokens import LocalIssuer
from interfaces.web.users import User

CODE_SECONDS = 60
TOKEN_SECONDS = 8 * 3600


class OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class Grant:
    user: User
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires: float


class CodeStore:
    """Grants by code, kept by `application.auth_codes.CodeStore` in the data directory."""

    def __init__(self, data: Path) -> None:
        self.shared = SharedCodes(data)

    def issue(self, grant: Grant) -> str:
        return self.shared.issue({
            "user": [grant.user.name, list(grant.user.roles), list(grant.user.units)],
            "client_id": grant.client_id, "redirect_uri": grant.redirect_uri,
            "challenge": grant.challenge, "nonce": grant.nonce}, grant.expires)

    def take(self, code: str) -> Grant | None:
        found = self.shared.take(code)
        if found is None:
            return None
        g, expires = found
        name, roles, units = g.pop("user")
        return Grant(user=User(name, tuple(roles), tuple(units)), expires=expires, **g)


class LocalAuthorization:
    """The authorize and token endpoints' logic over a LocalIssuer."""

    def __init__(self, issuer: LocalIssuer, client_id: str) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.codes = CodeStore(issuer.data_dir)

    def check_request(self, params: dict[str, str], base_url: str) -> None:
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code")
        if params.get("client_id") != self.client_id:
            raise OAuthError("unauthorized_client", "unknown client_id")
        if params.get("redirect_uri") != base_url.rstrip("/") + "/callback":
            raise OAuthError("invalid_request", "redirect_uri is not registered for the client")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            raise OAuthError("invalid_request", "PKCE with code_challenge_method S256 is required")
        if not params.get("state"):
            raise OAuthError("invalid_request", "state is required")

    def grant(self, user: User, params: dict[str, str]) -> str:
        return self.codes.issue(Grant(user=user, client_id=params["client_id"],
                                      redirect_uri=params["redirect_uri"],
                                      challenge=params["code_challenge"],
                                      nonce=params.get("nonce") or None,
                                      expires=time.time() + CODE_SECONDS))

    def token(self, form: dict[str, str]) -> dict[str, object]:
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "grant_type must be authorization_code")
        grant = self.codes.take(form.get("code", ""))
        if grant is None:
            raise OAuthError("invalid_grant", "the code is unknown, used or expired")
        if form.get("client_id") != grant.client_id or form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError("invalid_grant", "client_id or redirect_uri does not match the code")
        verifier = form.get("code_verifier", "")
        if not (43 <= len(verifier) <= 128) or not hmac.compare_digest(s256(verifier), grant.challenge):
            raise OAuthError("invalid_grant", "the code verifier does not match the challenge")
        u = grant.user
        access = self.issuer.mint(u.name, u.roles, u.units, ttl_seconds=TOKEN_SECONDS)
        id_token = self.issuer.mint(u.name, u.roles, u.units, ttl_seconds=TOKEN_SECONDS,
                                    extra_claims={"nonce": grant.nonce} if grant.nonce else None)
        return {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_SECONDS,
                "id_token": id_token}
