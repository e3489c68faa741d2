"""A small but real OpenID provider process for tests: discovery and JWKS over HTTP on loopback.

The API meets an external identity provider over HTTP; a fake inside the test process would skip the parts
that go wrong in practice (discovery, fetching, caching, refetching after a key rotation). The provider only
publishes public keys: tests mint tokens in their own process with the same key files.

    python -m tests.oidc_provider --port N --key-dir DIR --issuer URL
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from application.tokens import public_jwk, write_private_file

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
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
    }


def serve(port: int, key_dir: Path, issuer: str) -> None:
    if not key_files(key_dir):
        add_key(key_dir)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # Any path prefix is served, so an issuer URL with a path (as Keycloak's realms have) works too.
            if self.path.endswith("/.well-known/openid-configuration"):
                self._send(discovery_document(issuer, port))
            elif self.path.endswith("/.well-known/jwks.json"):
                self._send(published_jwks(key_dir))
            else:
                self.send_error(404)

        def _send(self, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
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

    def __init__(self, key_dir: Path, audience: str = "housing-chain", issuer_path: str = "") -> None:
        self.key_dir = Path(key_dir)
        self.audience = audience
        self.issuer_path = issuer_path
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
        command += ["--key-dir", str(self.key_dir), "--issuer", self.issuer]
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
    args = parser.parse_args(argv)
    try:
        serve(args.port, args.key_dir, args.issuer or f"http://127.0.0.1:{args.port}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
