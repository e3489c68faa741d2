"""Rules for sign-in tokens: who may mint them, and which ones the API refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import subprocess
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from application.tokens import (
    IdentityProviderUnavailable,
    LocalIssuer,
    TokenError,
    TokenVerifier,
    jwk_thumbprint,
)
from tests.oidc_provider import REPO_ROOT, OidcProvider


@pytest.fixture
def issuer(tmp_path):
    return LocalIssuer(tmp_path / "data")


@pytest.fixture
def provider(tmp_path):
    with OidcProvider(tmp_path / "idp") as running:
        yield running


def claims_for(issuer: LocalIssuer, **changes) -> dict:
    now = int(time.time())
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "sub": "anna", "iat": now, "nbf": now}
    claims |= {"exp": now + 600, "roles": ["caseworker"], "units": ["north"]}
    claims |= changes
    return {name: value for name, value in claims.items() if value is not None}


def sign_locally(issuer: LocalIssuer, claims: dict, key=None, **headers) -> str:
    kid = issuer.kid  # makes the key on first use
    key = key or serialization.load_pem_private_key(issuer.key_path.read_bytes(), password=None)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, **headers})


def unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), signature]
    return ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in parts)


def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    return str(caught.value)


def test_local_issuer_key_file_is_private_and_reused_across_instances(issuer):
    first_kid = issuer.kid
    assert stat.S_IMODE(issuer.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(issuer.data_dir.stat().st_mode) == 0o700
    again = LocalIssuer(issuer.data_dir)
    assert again.jwks() == issuer.jwks()
    assert again.kid == first_kid
    assert again.verifier().verify(issuer.mint("anna", ["caseworker"])).subject == "anna"


def test_concurrent_first_use_by_several_processes_yields_one_key(tmp_path):
    start_at = time.time() + 1.5  # every process generates its key at about the same moment
    script = (
        "import sys, time; from pathlib import Path; from application.tokens import LocalIssuer\n"
        f"time.sleep(max(0, {start_at} - time.time())); print(LocalIssuer(Path(sys.argv[1])).kid)"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "shared")],
            cwd=REPO_ROOT,
            text=True,
            stdout=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    kids = {process.communicate(timeout=30)[0].strip() for process in processes}
    assert len(kids) == 1 and "" not in kids
    assert kids == {LocalIssuer(tmp_path / "shared").kid}
    assert [path.name for path in (tmp_path / "shared").iterdir()] == ["issuer-key.pem"]


def test_key_file_readable_by_others_is_refused(issuer):
    issuer.jwks()
    issuer.key_path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        LocalIssuer(issuer.data_dir).jwks()


def test_kid_is_the_rfc7638_thumbprint(issuer):
    rfc_example = {
        "kty": "RSA",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWK"
            "RXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMic"
            "AtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3"
            "XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
    }
    assert jwk_thumbprint(rfc_example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    [published] = issuer.jwks()["keys"]
    assert published["kid"] == jwk_thumbprint(published) == issuer.kid
    assert {published["alg"], published["use"]} == {"RS256", "sig"}
    assert not {"d", "p", "q", "dp", "dq", "qi"} & published.keys()


def test_minted_token_verifies_and_carries_subject_roles_and_units(issuer):
    token = issuer.mint("anna", ["caseworker", "reviewer"], units=["north"], extra_claims={"name": "Anna"})
    verified = issuer.verifier().verify(token)
    assert (verified.subject, verified.roles, verified.units) == (
        "anna",
        ("caseworker", "reviewer"),
        ("north",),
    )
    assert verified.issuer == "urn:housing-chain:local"
    assert verified.expires_at == verified.claims["exp"] and verified.claims["name"] == "Anna"
    assert verified.expires_at - time.time() == pytest.approx(3600, abs=60)


def test_minting_refuses_extra_claims_that_override_registered_ones(issuer):
    with pytest.raises(ValueError, match="aud"):
        issuer.mint("anna", ["caseworker"], extra_claims={"aud": "elsewhere"})


def test_local_discovery_document_points_at_the_jwks(issuer):
    document = issuer.openid_configuration("http://127.0.0.1:8000/")
    assert document["issuer"] == issuer.issuer
    assert document["jwks_uri"] == "http://127.0.0.1:8000/.well-known/jwks.json"


def test_expired_token_is_refused(issuer):
    now = int(time.time())
    token = sign_locally(issuer, claims_for(issuer, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    assert refused(issuer.verifier(), token) == "token expired"


def test_token_expired_within_the_leeway_is_accepted(issuer):
    token = sign_locally(issuer, claims_for(issuer, exp=int(time.time()) - 10))
    assert issuer.verifier(leeway_seconds=30).verify(token).subject == "anna"
    assert refused(issuer.verifier(leeway_seconds=0), token) == "token expired"


def test_token_not_yet_valid_is_refused(issuer):
    token = sign_locally(issuer, claims_for(issuer, nbf=int(time.time()) + 3600))
    assert refused(issuer.verifier(), token) == "token is not valid yet"


def test_token_from_another_issuer_is_refused(issuer):
    token = sign_locally(issuer, claims_for(issuer, iss="urn:somewhere-else"))
    assert refused(issuer.verifier(), token) == "token issuer is not the configured one"


def test_token_for_another_audience_is_refused(issuer):
    token = sign_locally(issuer, claims_for(issuer, aud="another-service"))
    assert refused(issuer.verifier(), token).startswith("token audience")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iss", "aud"])
def test_token_missing_a_required_claim_is_refused(issuer, claim):
    token = sign_locally(issuer, claims_for(issuer, **{claim: None}))
    assert refused(issuer.verifier(), token).startswith("token has no ")


@pytest.mark.parametrize("subject", [None, "", "  ", 42])
def test_token_without_a_subject_is_refused(issuer, subject):
    token = sign_locally(issuer, claims_for(issuer, sub=subject))
    assert refused(issuer.verifier(), token) == "token has no subject"


def test_forged_signature_by_another_key_with_the_same_kid_is_refused(issuer):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = sign_locally(issuer, claims_for(issuer, roles=["admin"]), key=other_key)
    assert refused(issuer.verifier(), token) == "token signature is not valid"


def test_tampered_claims_are_refused(issuer):
    header, _, signature = issuer.mint("anna", ["caseworker"]).split(".")
    payload = unsigned({}, claims_for(issuer, roles=["admin"])).split(".")[1]
    assert refused(issuer.verifier(), f"{header}.{payload}.{signature}") == "token signature is not valid"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_token_with_alg_none_is_refused(issuer, alg):
    token = unsigned({"alg": alg, "typ": "JWT", "kid": issuer.kid}, claims_for(issuer))
    assert refused(issuer.verifier(), token) == "token algorithm none is not accepted"


@pytest.mark.parametrize(
    "pem_format", [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1]
)
def test_hs256_token_signed_with_the_public_key_as_secret_is_refused(issuer, pem_format):
    header_and_claims = unsigned({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}, claims_for(issuer))
    public_key = serialization.load_pem_private_key(issuer.key_path.read_bytes(), password=None).public_key()
    secret = public_key.public_bytes(serialization.Encoding.PEM, pem_format)
    signing_input = header_and_claims.rsplit(".", 1)[0]
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    assert refused(issuer.verifier(), token) == "token algorithm HS256 is not accepted"


def test_symmetric_keys_in_a_key_set_are_never_used(issuer):
    secret = b"a-shared-secret-that-is-long-enough-for-hs256"
    oct_jwk = {"kty": "oct", "kid": "shared", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    verifier = TokenVerifier(issuer.issuer, issuer.audience, jwks=lambda: {"keys": [oct_jwk]})
    token = jwt.encode(claims_for(issuer), secret, algorithm="HS256", headers={"kid": "shared"})
    assert refused(verifier, token) == "token algorithm HS256 is not accepted"


def test_token_signed_with_an_unpublished_kid_is_refused(issuer):
    token = sign_locally(issuer, claims_for(issuer), kid="somebody-elses-key")
    assert refused(issuer.verifier(), token) == "token key id is not known to the issuer"


@pytest.mark.parametrize("garbage", ["not-a-token", "a.b.c", "Bearer x.y.z", "x" * 20_000])
def test_malformed_token_is_refused_with_a_plain_message(issuer, garbage):
    assert refused(issuer.verifier(), garbage).startswith("token is ")


@pytest.mark.parametrize(
    ("role_claim", "claims", "roles"),
    [
        ("roles", {"roles": "caseworker reviewer"}, ("caseworker", "reviewer")),
        ("roles", {"roles": "caseworker"}, ("caseworker",)),
        ("roles", {}, ()),
        (
            "realm_access.roles",
            {"realm_access": {"roles": ["caseworker", "offline_access"]}},
            ("caseworker", "offline_access"),
        ),
        ("https://kommun.example/roles", {"https://kommun.example/roles": ["reviewer"]}, ("reviewer",)),
    ],
)
def test_roles_are_read_from_a_list_a_space_separated_string_or_a_nested_claim(
    issuer, role_claim, claims, roles
):
    token = sign_locally(issuer, claims_for(issuer, roles=None) | claims)
    assert issuer.verifier(role_claim=role_claim).verify(token).roles == roles


def test_roles_claim_that_is_not_strings_is_refused(issuer):
    token = sign_locally(issuer, claims_for(issuer, roles=[{"name": "admin"}]))
    assert refused(issuer.verifier(), token) == "token claim roles is not a list of strings"


def test_external_provider_token_verifies_via_discovery_and_jwks_over_http(provider):
    verifier = TokenVerifier.from_issuer(provider.issuer, provider.audience)
    verified = verifier.verify(provider.mint("bo", ["reviewer"], units=["south", "east"]))
    assert (verified.subject, verified.roles, verified.units) == ("bo", ("reviewer",), ("south", "east"))
    assert verified.issuer == provider.issuer
    assert refused(verifier, provider.mint("bo", aud="another-service")).startswith("token audience")


def test_discovery_is_lazy_so_the_api_starts_before_the_provider(tmp_path):
    provider = OidcProvider(tmp_path / "idp")
    verifier = TokenVerifier.from_issuer(provider.issuer, provider.audience)
    with pytest.raises(IdentityProviderUnavailable):
        verifier.verify(LocalIssuer(tmp_path / "data").mint("bo", []))
    with provider:
        assert verifier.verify(provider.mint("bo", ["reviewer"])).subject == "bo"


def test_provider_discovery_naming_another_issuer_is_refused(provider):
    verifier = TokenVerifier(
        "https://idp.example",
        provider.audience,
        discovery_url=provider.issuer + "/.well-known/openid-configuration",
    )
    with pytest.raises(IdentityProviderUnavailable, match="another issuer"):
        verifier.verify(provider.mint("bo"))


def test_after_the_provider_rotates_its_key_a_token_with_the_new_kid_verifies(provider):
    verifier = TokenVerifier.from_issuer(provider.issuer, provider.audience)
    old_token = provider.mint("bo", ["reviewer"])
    assert verifier.verify(old_token).subject == "bo"
    old_kid, new_kid = provider.kid, provider.rotate()
    assert new_kid != old_kid
    assert verifier.verify(provider.mint("cem", ["caseworker"])).subject == "cem"
    assert verifier.verify(old_token).subject == "bo"


def test_unknown_kids_refetch_the_key_set_at_most_once_per_30_seconds(provider):
    verifier = TokenVerifier.from_issuer(provider.issuer, provider.audience)
    assert verifier.verify(provider.mint("bo")).subject == "bo"
    bogus = provider.sign({"sub": "bo"}, headers={"kid": "no-such-key"})
    assert refused(verifier, bogus) == "token key id is not known to the issuer"  # this one refetched
    provider.rotate()
    assert refused(verifier, provider.mint("cem")) == "token key id is not known to the issuer"


def test_jwks_over_plain_http_is_accepted_only_from_loopback():
    with pytest.raises(ValueError, match="https"):
        TokenVerifier("https://idp.example", "housing-chain", jwks_url="http://idp.example/jwks.json")
    with pytest.raises(ValueError, match="https"):
        TokenVerifier.from_issuer("http://idp.example", "housing-chain")
    TokenVerifier("https://idp.example", "housing-chain", jwks_url="https://idp.example/jwks.json")
    TokenVerifier("http://localhost:8080", "housing-chain", jwks_url="http://[::1]:8080/jwks.json")


def test_token_error_messages_never_contain_the_token(issuer):
    now = int(time.time())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_tokens = [
        sign_locally(issuer, claims_for(issuer, exp=now - 3600)),
        sign_locally(issuer, claims_for(issuer, nbf=now + 3600)),
        sign_locally(issuer, claims_for(issuer, iss="urn:elsewhere")),
        sign_locally(issuer, claims_for(issuer, aud="elsewhere")),
        sign_locally(issuer, claims_for(issuer, sub=None)),
        sign_locally(issuer, claims_for(issuer, roles=[1, 2])),
        sign_locally(issuer, claims_for(issuer), key=other_key),
        sign_locally(issuer, claims_for(issuer), kid="unknown-kid-0123456789"),
        unsigned({"alg": "none", "kid": issuer.kid}, claims_for(issuer)),
        unsigned({"alg": "HS256", "kid": issuer.kid}, claims_for(issuer), b"x" * 32),
        unsigned({"alg": "A" * 40}, claims_for(issuer), b"x" * 32),
        "eyJhbGciOiJSUzI1NiJ9.not-base64-json-at-all.c2lnbmF0dXJl",
    ]
    for token in bad_tokens:
        with pytest.raises(TokenError) as caught:
            issuer.verifier().verify(token)
        message = str(caught.value)
        assert not any(piece in message for piece in [token, *token.split(".")] if len(piece) >= 8), message
        assert message.startswith("token ") and len(message) < 80 and "\n" not in message
        assert caught.value.__cause__ is None and (
            caught.value.__context__ is None or caught.value.__suppress_context__
        )


def test_a_token_whose_subject_carries_a_personal_number_is_refused(issuer):
    """The subject goes into the append-only access log, which erasure cannot reach."""
    token = sign_locally(issuer, claims_for(issuer, sub="19811218-9876"))
    assert "personal identity number" in refused(issuer.verifier(), token)
    with pytest.raises(ValueError, match="personal identity number"):
        issuer.mint("198112189876", ["caseworker"])
    assert issuer.verifier().verify(issuer.mint("anna.lind", ["caseworker"])).subject == "anna.lind"


# --- a token checked once, taken again for a minute at most --------------------------------

def test_a_token_checked_once_is_taken_again_without_its_signature_checked_again(issuer, monkeypatch):
    verifier = issuer.verifier()
    token = issuer.mint("anna", ["caseworker"], ["north"])
    first = verifier.verify(token)

    def no_second_check(*args, **kwargs):
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr(jwt, "decode", no_second_check)
    assert verifier.verify(token) == first
    # a token differing in one character is not that token: checked in full (here: refused)
    altered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(AssertionError, match="checked again"):
        verifier.verify(altered)


def test_a_remembered_token_is_refused_once_it_expires(issuer):
    verifier = issuer.verifier(leeway_seconds=0)
    token = sign_locally(issuer, claims_for(issuer, exp=int(time.time()) + 2))
    assert verifier.verify(token).subject == "anna"
    time.sleep(2.2)
    assert refused(verifier, token) == "token expired"


def test_a_remembered_token_is_refused_as_soon_as_its_key_is_no_longer_published(issuer):
    published = {"keys": issuer.jwks()["keys"]}
    verifier = TokenVerifier(issuer.issuer, issuer.audience, jwks=lambda: published)
    token = issuer.mint("anna", ["caseworker"])
    assert verifier.verify(token).subject == "anna"
    other = LocalIssuer(issuer.key_path.parent.parent / "other")
    published["keys"] = other.jwks()["keys"]  # the issuer took its key out of the key set
    assert refused(verifier, token) == "token key id is not known to the issuer"


def test_a_refused_token_is_not_remembered_and_the_memory_is_bounded(issuer, monkeypatch):
    import application.tokens as tokens

    monkeypatch.setattr(tokens, "_VERIFIED_MAX", 3)
    verifier = issuer.verifier()
    forged = sign_locally(issuer, claims_for(issuer), key=rsa.generate_private_key(
        public_exponent=65537, key_size=2048))
    for _ in range(2):
        assert refused(verifier, forged) == "token signature is not valid"
    tokens_ = [issuer.mint(f"person-{k}", ["caseworker"]) for k in range(5)]
    for token in tokens_:
        verifier.verify(token)
    assert list(verifier._verified) == tokens_[-3:]


@pytest.mark.parametrize("subject,why", [
    ("anna\nlind", "control character"),
    ("anna\x00lind", "control character"),
    (" anna.lind", "may not start with a space"),
    ("a" * 65, "at most 64 characters"),
], ids=["a newline", "a NUL", "a leading space", "too long"])
def test_a_token_whose_subject_no_step_would_take_as_its_actor_is_refused(issuer, subject, why):
    """The subject is the actor of every step the person takes and is written into the
    append-only access log: such a person could read, but every step was a 422 naming
    fields they never sent."""
    token = sign_locally(issuer, claims_for(issuer, sub=subject))
    message = refused(issuer.verifier(), token)
    assert message.startswith("the token's subject is not a usable user id") and why in message
    with pytest.raises(ValueError, match="not a usable user id"):
        issuer.mint(subject, ["caseworker"])
