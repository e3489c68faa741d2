"""Sign-in tokens for the HTTP API: the embedded stack's own issuer and a verifier for any OpenID provider.

The API trusts a bearer token only after its signature, issuer, audience and lifetime are checked against
published public keys, so one verifier serves both the embedded stack (LocalIssuer) and a municipality's
identity provider. Only asymmetric algorithms are accepted: a verifier holding public keys must never be
talked into using one as an HMAC secret, nor into accepting an unsigned token.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.exceptions import InvalidSubjectError
from pydantic import TypeAdapter, ValidationError

from application.keys import create_once
from domain.commands import Actor
from domain.personal_number import find_personal_number

# the subject is kept in the append-only access log, beyond the reach of erasure
PERSONAL_SUBJECT = ("the token's subject contains a personal identity number: staff sign in "
                    "with a user id")

# the subject is the actor of every step the person takes: an id a step would refuse (a
# control character, a leading space, over 64 characters) is refused at sign-in instead
_SUBJECT: TypeAdapter[str] = TypeAdapter(Actor)


def unusable_subject(subject: str) -> str | None:
    """Why a subject cannot be a staff user id, or None."""
    if find_personal_number(subject):
        return PERSONAL_SUBJECT
    try:
        _SUBJECT.validate_python(subject)
    except ValidationError as exc:
        error = exc.errors()[0]
        why = ("it may not start with a space" if error["type"] == "string_pattern_mismatch"
               else error["msg"].removeprefix("Value error, "))
        return f"the token's subject is not a usable user id: {why}"
    return None


ACCEPTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")

# The key type (and curve) each accepted algorithm needs, so a key is only ever used the way it was meant.
_KEY_TYPE = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
}
# Algorithm names safe to repeat in a message; anything else from a token header is not echoed back.
_KNOWN_ALGORITHMS = {*ACCEPTED_ALGORITHMS, "HS256", "HS384", "HS512", "PS384", "PS512", "ES512", "ES256K"}
_PUBLIC_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
_MISSING_CLAIM = {
    "exp": "token has no expiry time",
    "nbf": "token has no not-before time",
    "iss": "token has no issuer",
    "aud": "token has no audience",
    "sub": "token has no subject",
}
_MAX_TOKEN_LENGTH = 16 * 1024
_REFETCH_INTERVAL_SECONDS = 30.0
_JWKS_CACHE_SECONDS = 300.0
_FETCH_TIMEOUT_SECONDS = 3.0
# A token verified once is taken again, unchanged, for a minute at most (its own expiry and the
# key it was signed with still checked on each use): a signed-in person's next requests skip
# the signature check and PyJWT's base64 validation, about a third of an API read's own time.
_VERIFIED_SECONDS = 60.0
_VERIFIED_MAX = 4096


@dataclass(frozen=True)
class VerifiedToken:
    subject: str
    roles: tuple[str, ...]
    units: tuple[str, ...]
    issuer: str
    expires_at: int
    claims: dict[str, Any] = field(repr=False, compare=False)


class TokenError(Exception):
    """A token was refused. The message is fit to show the caller and never holds the token."""


class IdentityProviderUnavailable(TokenError):
    """The provider's keys could not be had, so no token can be checked now (a 503 rather than a 401)."""


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    members = _PUBLIC_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(public_key: Any, algorithm: str) -> dict[str, Any]:
    """The public JWK of a key, with kid (its thumbprint), alg and use=sig; private members never included."""
    full = jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(public_key, as_dict=True)
    jwk = {name: full[name] for name in _PUBLIC_MEMBERS[full["kty"]]}
    return {**jwk, "kid": jwk_thumbprint(jwk), "alg": algorithm, "use": "sig"}


class LocalIssuer:
    """The embedded stack's own token issuer, with an RSA key kept in the data directory.

    API processes sharing a data directory share the key, so any of them verifies what another minted.
    """

    algorithm = "RS256"

    def __init__(
        self, data_dir: Path, issuer: str = "urn:housing-chain:local", audience: str = "housing-chain"
    ) -> None:
        self.data_dir = Path(data_dir)
        self.issuer = issuer
        self.audience = audience
        self.key_path = self.data_dir / "issuer-key.pem"
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None
        self._jwk: dict[str, Any] = {}

    @property
    def kid(self) -> str:
        self._signing_key()
        return self._jwk["kid"]

    def jwks(self) -> dict[str, Any]:
        self._signing_key()
        return {"keys": [dict(self._jwk)]}

    def mint(
        self,
        subject: str,
        roles: Iterable[str],
        units: Iterable[str] = (),
        ttl_seconds: int = 3600,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        if not isinstance(subject, str) or not subject.strip():
            raise ValueError("subject must be a non-empty string")
        if why := unusable_subject(subject):
            raise ValueError(why)
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        claims = dict(extra_claims or {})
        registered = {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "roles", "units"}
        if clash := sorted(registered & claims.keys()):
            raise ValueError(f"extra_claims may not set {', '.join(clash)}")
        now = int(time.time())
        claims.update(
            iss=self.issuer,
            aud=self.audience,
            sub=subject,
            iat=now,
            nbf=now,
            exp=now + int(ttl_seconds),
            jti=secrets.token_urlsafe(16),
            roles=_string_list(roles, "roles"),
            units=_string_list(units, "units"),
        )
        key = self._signing_key()
        headers = {"kid": self._jwk["kid"], "typ": "JWT"}
        return jwt.encode(claims, key, algorithm=self.algorithm, headers=headers)

    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": base_url.rstrip("/") + "/.well-known/jwks.json",
            # the web's authorization code flow with PKCE (interfaces/web/issuer.py)
            "authorization_endpoint": base_url.rstrip("/") + "/oidc/authorize",
            "token_endpoint": base_url.rstrip("/") + "/oidc/token",
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code", "id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.algorithm],
            "claims_supported": ["iss", "aud", "sub", "iat", "nbf", "exp", "jti", "roles", "units"],
        }

    def verifier(self, **options: Any) -> TokenVerifier:
        """A verifier for this issuer's tokens that reads the keys directly, without HTTP."""
        return TokenVerifier(self.issuer, self.audience, jwks=self.jwks, **options)

    def _signing_key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                self._key = self._load_or_create_key()
                self._jwk = public_jwk(self._key.public_key(), self.algorithm)
            return self._key

    def _load_or_create_key(self) -> rsa.RSAPrivateKey:
        if not self.key_path.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            # Another process may have won the race: either way the file on disk is the key.
            create_once(self.key_path, pem)
        if os.name == "posix" and self.key_path.stat().st_mode & 0o077:
            raise PermissionError(f"{self.key_path} is readable by other users; make it private (chmod 600)")
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise ValueError(f"{self.key_path} does not hold an RSA key of at least 2048 bits")
        return key


class TokenVerifier:
    """Checks bearer tokens against an issuer's published keys and returns who the caller is.

    Keys come from `jwks` (a callable, asked on every check), from `jwks_url` (fetched and cached), or from
    the jwks_uri of a discovery document read on first use, so the API can start before the provider answers.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks: Callable[[], dict] | None = None,
        jwks_url: str | None = None,
        role_claim: str = "roles",
        unit_claim: str = "units",
        leeway_seconds: int = 30,
        *,
        discovery_url: str | None = None,
        require_nbf: bool = True,
    ) -> None:
        if sum(source is not None for source in (jwks, jwks_url, discovery_url)) != 1:
            raise ValueError("give exactly one of jwks, jwks_url or discovery_url (or use from_issuer)")
        for url in (jwks_url, discovery_url):
            if url is not None:
                _check_url(url)
        self.issuer = issuer
        self.audience = audience
        self.role_claim = role_claim
        self.unit_claim = unit_claim
        self.leeway_seconds = leeway_seconds
        self._required = ["exp", "iss", "aud", "sub"] + (["nbf"] if require_nbf else [])
        self._jwks_source = jwks
        self._jwks_url = jwks_url
        self._discovery_url = discovery_url
        self._lock = threading.Lock()
        self._cached: dict[str | None, dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._last_refetch: float | None = None
        # token -> (checked until, monotonic; the answer; its header's kid; the JWK that verified it)
        self._verified: OrderedDict[str, tuple[float, VerifiedToken, Any, dict[str, Any]]] = (
            OrderedDict())
        self._verified_lock = threading.Lock()

    @classmethod
    def from_issuer(cls, issuer: str, audience: str, **options: Any) -> TokenVerifier:
        """A verifier that finds the keys through `{issuer}/.well-known/openid-configuration`, lazily."""
        discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        return cls(issuer, audience, discovery_url=discovery_url, **options)

    def verify(self, token: str) -> VerifiedToken:
        if not isinstance(token, str) or not token:
            raise TokenError("token is missing")
        if len(token) > _MAX_TOKEN_LENGTH:
            raise TokenError("token is too large")
        earlier = self._verified_before(token)
        if earlier is not None:
            return earlier
        verified, kid, jwk = self._verify(token)
        # never past the token's own expiry (and leeway), so a hit needs no clock but this one
        lifetime = min(_VERIFIED_SECONDS, verified.expires_at + self.leeway_seconds - time.time())
        if lifetime > 0:
            with self._verified_lock:
                self._verified[token] = (time.monotonic() + lifetime, verified, kid, jwk)
                if len(self._verified) > _VERIFIED_MAX:
                    self._verified.popitem(last=False)
        return verified

    def _verified_before(self, token: str) -> VerifiedToken | None:
        """The answer of an earlier full check of this very token, while it holds: within its
        minute and its expiry, and signed with a key the issuer still publishes (a key taken
        out of the JWKS refuses its tokens at once, not a minute later)."""
        with self._verified_lock:
            hit = self._verified.get(token)
            if hit is None:
                return None
            # its minute, and its expiry on the wall clock too (which may have been set since)
            if time.monotonic() >= hit[0] or time.time() >= hit[1].expires_at + self.leeway_seconds:
                del self._verified[token]
                return None
            self._verified.move_to_end(token)
        _, verified, kid, jwk = hit
        if self._find_jwk(kid) != jwk:
            with self._verified_lock:
                self._verified.pop(token, None)
            return None
        return verified

    def _verify(self, token: str) -> tuple[VerifiedToken, Any, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in ACCEPTED_ALGORITHMS:
            if algorithm is None or (isinstance(algorithm, str) and algorithm.lower() == "none"):
                raise TokenError("token algorithm none is not accepted")
            if algorithm in _KNOWN_ALGORITHMS:
                raise TokenError(f"token algorithm {algorithm} is not accepted")
            raise TokenError("token algorithm is not accepted")
        kid = header.get("kid")
        jwk, key = self._key_for(kid, algorithm)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": self._required, "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as error:
            raise TokenError(_message_for(error)) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise TokenError("token has no subject")
        if why := unusable_subject(subject):  # it would be written to the access log, and refused
            raise TokenError(why)
        return VerifiedToken(
            subject=subject,
            roles=_strings_at(claims, self.role_claim),
            units=_strings_at(claims, self.unit_claim),
            issuer=claims["iss"],
            expires_at=int(claims["exp"]),
            claims=claims,
        ), kid, jwk

    def _key_for(self, kid: Any, algorithm: str) -> tuple[dict[str, Any], jwt.PyJWK]:
        jwk = self._find_jwk(kid)
        if jwk is None:
            raise TokenError("token key id is not known to the issuer")
        key_type, curve = _KEY_TYPE[algorithm]
        if jwk.get("alg", algorithm) != algorithm or jwk["kty"] != key_type or jwk.get("crv", curve) != curve:
            raise TokenError("token algorithm does not match its signing key")
        try:
            return jwk, jwt.PyJWK(jwk, algorithm=algorithm)
        except jwt.PyJWTError:
            raise TokenError("token signing key published by the issuer is not usable") from None

    def _find_jwk(self, kid: Any) -> dict[str, Any] | None:
        if self._jwks_source is not None:
            return _pick(_signing_keys(self._jwks_source()), kid)
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._fetched_at > _JWKS_CACHE_SECONDS:
                self._refresh(now)
            found = _pick(self._cached, kid)
            recently = self._last_refetch is not None and now - self._last_refetch < _REFETCH_INTERVAL_SECONDS
            if found is None and not recently:
                # An unknown kid usually means the provider rotated its key since the last fetch.
                self._last_refetch = now
                self._refresh(now)
                found = _pick(self._cached, kid)
            return found

    def _refresh(self, now: float) -> None:
        try:
            if self._jwks_url is None:
                self._jwks_url = self._discover()
            self._cached = _signing_keys(_fetch_json(self._jwks_url))
            self._fetched_at = now
        except IdentityProviderUnavailable:
            if self._cached is None:
                raise
            # Keep the keys we had through a provider outage, and try again after a short while.
            self._fetched_at = now - _JWKS_CACHE_SECONDS + _REFETCH_INTERVAL_SECONDS

    def _discover(self) -> str:
        document = _fetch_json(self._discovery_url)
        if document.get("issuer") != self.issuer:
            raise IdentityProviderUnavailable("the identity provider's discovery names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IdentityProviderUnavailable("the identity provider's discovery document has no jwks_uri")
        try:
            _check_url(jwks_uri)
        except ValueError:
            raise IdentityProviderUnavailable("the identity provider's jwks_uri is not accepted") from None
        return jwks_uri


def _message_for(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return _MISSING_CLAIM.get(error.claim, "token lacks a required claim")
    if isinstance(error, InvalidSubjectError):
        return "token has no subject"
    for kind, message in (
        (jwt.ExpiredSignatureError, "token expired"),
        (jwt.ImmatureSignatureError, "token is not valid yet"),
        (jwt.InvalidIssuerError, "token issuer is not the configured one"),
        (jwt.InvalidAudienceError, "token audience is not this service"),
        (jwt.InvalidSignatureError, "token signature is not valid"),
        (jwt.InvalidAlgorithmError, "token algorithm does not match its signing key"),
        (jwt.InvalidKeyError, "token signing key is not strong enough"),
        (jwt.InvalidIssuedAtError, "token issue time is not valid"),
        (jwt.DecodeError, "token is malformed"),
    ):
        if isinstance(error, kind):
            return message
    return "token is not valid"


def _signing_keys(jwks: Any) -> dict[str | None, dict[str, Any]]:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise IdentityProviderUnavailable("the identity provider's key set is not valid")
    usable = {}
    for jwk in keys:
        # Symmetric (oct) keys are left out: nothing published may ever serve as an HMAC secret.
        if isinstance(jwk, dict) and jwk.get("kty") in _PUBLIC_MEMBERS and jwk.get("use", "sig") == "sig":
            usable[jwk.get("kid")] = jwk
    return usable


def _pick(keys: dict[str | None, dict[str, Any]] | None, kid: Any) -> dict[str, Any] | None:
    if not keys:
        return None
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid) if isinstance(kid, str) else None


def _fetch_json(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=_FETCH_TIMEOUT_SECONDS, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError):
        raise IdentityProviderUnavailable(f"the identity provider did not answer usefully at {url}") from None
    if not isinstance(document, dict):
        raise IdentityProviderUnavailable(f"the identity provider sent no JSON object at {url}")
    return document


def _check_url(url: str) -> None:
    """Keys decide whom the API trusts, so they come over https; plain http only from this machine."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ValueError(f"{url} is not accepted: use https (plain http only on loopback)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _strings_at(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    value: Any = claims.get(path)
    if path not in claims and "." in path:
        value = claims
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(dict.fromkeys(value.split()))
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(dict.fromkeys(value))
    raise TokenError(f"token claim {path} is not a list of strings")


def _string_list(values: Iterable[str], name: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a collection of strings, not one string")
    values = list(values)
    if not all(isinstance(value, str) and value for value in values):
        raise TypeError(f"{name} must hold non-empty strings")
    return values


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
