"""A small but real OpenID provider process for tests: discovery, JWKS and the authorization code
flow with PKCE (S256) over HTTP on loopback.

The API meets an external identity provider over HTTP; a fake inside the test process would skip the parts
that go wrong in practice (discovery, fetching, caching, refetching after a key rotation). The provider only
publishes public keys: tests mint tokens in their own process with the same key files.

With `--users FILE` (JSON `{"name": {"roles": [...], "units": [...]}}`) it also signs people in:
`/authorize` shows a minimal form to pick the user (or, with `--auto-approve NAME`, redirects back at
once with a code), `/token` trades the code and its PKCE verifier for an access token (audience
`--audience`, with the user's roles and units claims) and an id_token (audience the client id, with
the nonce). Codes are single-use and live for 60 seconds in the provider's memory.

    python -m tests.oidc_provider --port N --key-dir DIR --issuer URL [--users FILE] [--auto-approve NAME]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from application.keys import create_once as write_private_file
from application.tokens import public_jwk

ALGORITHM = "ES256"
REPO_ROOT = Path(__file__).resolve().parents[1]


def add_key(key_dir: Path) -> Path:
    """A new signing key in key_dir; the file sorting last is the current one."""
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    number = len(key_files(key_dir)) + 1
    while not write_private_file(key_dir / f"key-{number:04d}.pem", pem):
        number += 1
    return key_dir / f"key-{number:04d}.pem"


def key_files(key_dir: Path) -> list[Path]:
    return sorted(key_dir.glob("key-*.pem"))


def load_key(path: Path) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return key, public_jwk(key.public_key(), ALGORITHM)["kid"]


def published_jwks(key_dir: Path) -> dict[str, Any]:
    """Every key in the directory, newest first: old keys stay published so their tokens still verify."""
    keys = [public_jwk(load_key(path)[0].public_key(), ALGORITHM) for path in reversed(key_files(key_dir))]
    return {"keys": keys}


def discovery_document(issuer: str, port: int) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "jwks_uri": f"http://127.0.0.1:{port}/.well-known/jwks.json",
        "authorization_endpoint": issuer.rstrip("/") + "/authorize",
        "token_endpoint": issuer.rstrip("/") + "/token",
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code", "id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
    }


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def serve(port: int, key_dir: Path, issuer: str, users: dict[str, dict[str, Any]] | None = None,
          auto_approve: str | None = None, audience: str = "housing-chain") -> None:
    if not key_files(key_dir):
        add_key(key_dir)
    users = users or {}
    codes: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def mint(claims: dict[str, Any]) -> str:
        key, kid = load_key(key_files(key_dir)[-1])
        now = int(time.time())
        return jwt.encode({"iss": issuer, "iat": now, "nbf": now, "exp": now + 3600,
                           "jti": os.urandom(8).hex(), **claims}, key, algorithm=ALGORITHM,
                          headers={"kid": kid})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            # Any path prefix is served, so an issuer URL with a path (as Keycloak's realms have) works too.
            if path.endswith("/.well-known/openid-configuration"):
                self._send(discovery_document(issuer, port))
            elif path.endswith("/.well-known/jwks.json"):
                self._send(published_jwks(key_dir))
            elif path.endswith("/authorize"):
                params = dict(parse_qsl(urlsplit(self.path).query))
                if auto_approve:
                    self._approve(params, auto_approve)
                else:
                    self._login_form(params)
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            if path.endswith("/authorize"):
                self._approve(form, form.get("username", ""))
            elif path.endswith("/token"):
                self._token(form)
            else:
                self.send_error(404)

        def _login_form(self, params: dict[str, str]) -> None:
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                             for k, v in params.items())
            body = (f'<!doctype html><html lang="en"><title>Test IdP</title><form method="post">'
                    f'{hidden}<label for="username">User</label><input id="username" name="username">'
                    f'<button type="submit">Sign in</button></form></html>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _approve(self, params: dict[str, str], username: str) -> None:
            redirect = params.get("redirect_uri", "")
            if params.get("response_type") != "code" or not redirect.startswith(("http://127.0.0.1", "http://localhost")):
                return self._send({"error": "invalid_request"}, 400)
            if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
                return self._send({"error": "invalid_request", "error_description": "PKCE S256"}, 400)
            if username not in users:
                return self._redirect(redirect, {"error": "access_denied", "state": params.get("state", "")})
            code = secrets.token_urlsafe(24)
            with lock:
                codes[code] = {"user": username, "client_id": params.get("client_id"),
                               "redirect_uri": redirect, "challenge": params["code_challenge"],
                               "nonce": params.get("nonce"), "expires": time.monotonic() + 60}
            self._redirect(redirect, {"code": code, "state": params.get("state", "")})

        def _token(self, form: dict[str, str]) -> None:
            with lock:
                grant = codes.pop(form.get("code", ""), None)
            if (form.get("grant_type") != "authorization_code" or grant is None
                    or grant["expires"] < time.monotonic()
                    or form.get("client_id") != grant["client_id"]
                    or form.get("redirect_uri") != grant["redirect_uri"]
                    or not hmac.compare_digest(_s256(form.get("code_verifier", "")), grant["challenge"])):
                return self._send({"error": "invalid_grant"}, 400)
            user = users[grant["user"]]
            claims = {"sub": grant["user"], "roles": list(user.get("roles", ())),
                      "units": list(user.get("units", ()))}
            access = mint({**claims, "aud": audience})
            id_token = mint({**claims, "aud": grant["client_id"],
                             **({"nonce": grant["nonce"]} if grant["nonce"] else {})})
            self._send({"access_token": access, "token_type": "Bearer", "expires_in": 3600,
                        "id_token": id_token})

        def _redirect(self, url: str, query: dict[str, str]) -> None:
            self.send_response(302)
            self.send_header("Location", url + ("&" if "?" in url else "?") + urlencode(query))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, document: dict[str, Any], status: int = 200) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", port), Handler) as server:
        print(f"serving {issuer} on http://127.0.0.1:{port}", flush=True)
        server.serve_forever()


class OidcProvider:
    """Runs the provider as a subprocess on a free loopback port and mints tokens with its current key."""

    def __init__(self, key_dir: Path, audience: str = "housing-chain", issuer_path: str = "",
                 users: Mapping[str, Mapping[str, Any]] | None = None,
                 auto_approve: str | None = None) -> None:
        self.key_dir = Path(key_dir)
        self.audience = audience
        self.issuer_path = issuer_path
        self.users = {k: dict(v) for k, v in (users or {}).items()}
        self.auto_approve = auto_approve
        self.port = _free_port()
        self._process: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.issuer_path}"

    @property
    def kid(self) -> str:
        return self._current()[1]

    def start(self, timeout: float = 15.0) -> OidcProvider:
        if not key_files(self.key_dir):
            add_key(self.key_dir)
        for _attempt in range(3):
            if self._launch(timeout):
                return self
            self.port = _free_port()  # someone took the port between choosing and binding it
        raise RuntimeError(f"the test OIDC provider did not start; see {self._log_path}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def rotate(self) -> str:
        """Make a new current key (the old one stays published) and return its kid."""
        return load_key(add_key(self.key_dir))[1]

    def mint(
        self,
        subject: str,
        roles: Iterable[str] = (),
        units: Iterable[str] = (),
        ttl_seconds: int = 300,
        extra_claims: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": os.urandom(8).hex(),
            "roles": list(roles),
            "units": list(units),
            **(extra_claims or {}),
            **overrides,
        }
        return self.sign(claims)

    def sign(self, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        key, kid = self._current()
        return jwt.encode(dict(claims), key, algorithm=ALGORITHM, headers={"kid": kid, **(headers or {})})

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def _log_path(self) -> Path:
        return self.key_dir / "provider.log"

    def _current(self) -> tuple[ec.EllipticCurvePrivateKey, str]:
        return load_key(key_files(self.key_dir)[-1])

    def _launch(self, timeout: float) -> bool:
        command = [sys.executable, "-m", "tests.oidc_provider", "--port", str(self.port)]
        command += ["--key-dir", str(self.key_dir), "--issuer", self.issuer, "--audience", self.audience]
        if self.users:
            self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            users_file = self.key_dir / "users.json"
            users_file.write_text(json.dumps(self.users), "utf-8")
            command += ["--users", str(users_file)]
        if self.auto_approve:
            command += ["--auto-approve", self.auto_approve]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        url = f"{self.issuer}/.well-known/openid-configuration"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            try:
                if httpx.get(url, timeout=0.5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.oidc_provider", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key-dir", type=Path, required=True)
    parser.add_argument("--issuer", help="default: http://127.0.0.1:PORT")
    parser.add_argument("--audience", default="housing-chain", help="the access tokens' audience")
    parser.add_argument("--users", type=Path, help="JSON: {name: {roles: [...], units: [...]}}")
    parser.add_argument("--auto-approve", help="sign this user in without a form")
    args = parser.parse_args(argv)
    users = json.loads(args.users.read_text("utf-8")) if args.users else None
    try:
        serve(args.port, args.key_dir, args.issuer or f"http://127.0.0.1:{args.port}", users,
              args.auto_approve, args.audience)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
