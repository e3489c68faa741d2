"""A secured Temporal cluster (mTLS, or an API key as Temporal Cloud takes) is reached by
configuration alone. The dev server speaks no TLS, so a TLS-terminating proxy of the test
suite's own (`tests/tls_proxy.py`) stands in front of it and demands a client certificate
signed by its CA, as a cluster with `requireClientAuth` does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from application.gateway import Unreachable, temporal_security
from config.settings import Settings
from runtime.binaries import temporal_cli
from tests.stack import CLI, free_port
from tests.tls_proxy import Pki, TlsProxy, make_pki

ROOT = Path(__file__).resolve().parent.parent


# --- the one place that builds the TLS arguments ----------------------------------------------


def test_without_tls_settings_the_connection_is_plain_grpc_as_the_dev_server_speaks(tmp_path):
    assert temporal_security(Settings(data=tmp_path)) == {"tls": False}


def test_a_client_certificate_key_and_ca_make_an_mtls_config(tmp_path):
    pki = make_pki(tmp_path / "pki")
    options = temporal_security(Settings(
        data=tmp_path, temporal_tls_cert=pki.client_cert, temporal_tls_key=pki.client_key,
        temporal_tls_ca=pki.ca, temporal_tls_server_name="temporal.internal"))
    tls = options["tls"]
    assert tls.client_cert == pki.client_cert.read_bytes()
    assert tls.client_private_key == pki.client_key.read_bytes()
    assert tls.server_root_ca_cert == pki.ca.read_bytes()
    assert tls.domain == "temporal.internal"
    assert options["api_key"] is None


def test_an_api_key_implies_tls_with_the_systems_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("HOUSING_CHAIN_TEMPORAL_API_KEY", "k-secret")
    settings = Settings(data=tmp_path)
    options = temporal_security(settings)
    assert options["api_key"] == "k-secret"
    assert options["tls"].server_root_ca_cert is None and options["tls"].client_cert is None
    assert "k-secret" not in repr(settings)  # a secret: never in a log line of the settings


def test_a_certificate_without_its_key_is_refused_naming_both_settings(tmp_path):
    pki = make_pki(tmp_path / "pki")
    with pytest.raises(Unreachable, match="TLS_CERT and HOUSING_CHAIN_TEMPORAL_TLS_KEY go together"):
        temporal_security(Settings(data=tmp_path, temporal_tls_cert=pki.client_cert))


def test_an_unreadable_certificate_file_is_named(tmp_path):
    with pytest.raises(Unreachable, match=r"TEMPORAL_TLS_CA .*nope.pem: cannot read it"):
        temporal_security(Settings(data=tmp_path, temporal_tls_ca=tmp_path / "nope.pem"))


def test_every_client_connect_goes_through_the_one_place():
    """A `Client.connect` elsewhere would connect without the TLS settings."""
    sources = [p for d in ("application", "interfaces", "runtime", "activities", "projections")
               for p in (ROOT / d).rglob("*.py")] + [ROOT / "worker.py"]
    calls = [str(p.relative_to(ROOT)) for p in sources if "Client.connect(" in p.read_text()]
    assert calls == ["application/gateway.py"]


# --- a cluster that demands a client certificate ----------------------------------------------


@dataclass
class Secured:
    pki: Pki
    proxy: TlsProxy
    data: Path

    def env(self, cert: Path | None = None, key: Path | None = None,
            ca: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOUSING_CHAIN_TEMPORAL_")}
        env.update(TEMPORAL_ADDRESS=self.proxy.address, HOUSING_CHAIN_DATA=str(self.data),
                   HOUSING_CHAIN_LOG_FORMAT="json", COLUMNS="400", PYTHONUNBUFFERED="1")
        for name, value in (("CERT", cert), ("KEY", key), ("CA", ca)):
            if value is not None:
                env[f"HOUSING_CHAIN_TEMPORAL_TLS_{name}"] = str(value)
        return env

    @property
    def trusted(self) -> dict[str, str]:
        return self.env(self.pki.client_cert, self.pki.client_key, self.pki.ca)


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[Secured]:
    """The dev server on a loopback port, the TLS proxy in front of it, and a worker that
    reaches it only through the proxy, with the client certificate."""
    root = tmp_path_factory.mktemp("tls")
    port = free_port()
    server = subprocess.Popen(
        [temporal_cli(), "server", "start-dev", "--db-filename", str(root / "temporal.sqlite"),
         "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(free_port()),
         "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    pki = make_pki(root / "pki")
    try:
        with TlsProxy(pki, port) as proxy:
            yield from _with_worker(Secured(pki, proxy, root / "data"))
    finally:
        server.terminate()
        server.wait(timeout=30)


def _with_worker(secured: Secured) -> Iterator[Secured]:
    log = secured.data.parent / "worker.log"
    deadline = time.monotonic() + 60
    worker = None
    while time.monotonic() < deadline:  # the dev server takes a few seconds to listen
        with open(log, "ab") as out:
            worker = subprocess.Popen([sys.executable, "worker.py"], env=secured.trusted,
                                      cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        while worker.poll() is None and "worker started" not in log.read_text(errors="replace"):
            time.sleep(0.2)
        if worker.poll() is None:
            break
        time.sleep(1)
    assert worker is not None and worker.poll() is None, log.read_text(errors="replace")[-2000:]
    try:
        yield secured
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_with_the_client_certificate_a_step_goes_through_the_worker_and_the_cli(secured):
    applied = cli(secured.trusted, "apply", "tls-1", "--client", "p-tls1",
                  "--target-group", "young_adults", "--district", "Farsta")
    assert applied.returncode == 0, applied.stderr
    started = cli(secured.trusted, "start-assessment", "tls-1", "--json")
    assert started.returncode == 0, started.stderr
    answer = json.loads(started.stdout)
    assert answer["accepted"] and answer["stage"] == "assessment"
    assert secured.proxy.accepted >= 2


def one_line(said: str) -> str:
    assert "Traceback" not in said, said
    lines = [line for line in said.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, said
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("who", ["none", "a stranger's"])
def test_without_the_right_certificate_the_cli_is_refused_in_one_line_naming_tls(secured, who):
    pki = secured.pki
    env = (secured.env(ca=pki.ca) if who == "none"
           else secured.env(pki.stranger_cert, pki.stranger_key, pki.ca))
    refused = secured.proxy.refused
    answer = cli(env, "start-assessment", "tls-1")
    assert answer.returncode == 1
    said = one_line(answer.stderr)
    assert re.search(r"no TLS connection to Temporal at 127\.0\.0\.1:\d+: the TLS handshake "
                     r"failed or the server refused the client certificate", said), said
    assert "HOUSING_CHAIN_TEMPORAL_TLS_CERT" in said
    assert secured.proxy.refused > refused


@pytest.mark.slow
def test_a_worker_without_a_client_certificate_stops_with_one_line_naming_tls(secured):
    worker = subprocess.run([sys.executable, "worker.py"], env=secured.env(ca=secured.pki.ca),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert worker.returncode == 1
    said = one_line(worker.stderr + worker.stdout)
    assert said.startswith("worker: no TLS connection to Temporal at ")
    assert "client certificate" in said


@pytest.mark.slow
def test_a_plain_client_against_a_tls_port_is_told_to_set_the_tls_settings(secured):
    answer = cli(secured.env(), "start-assessment", "tls-1")
    assert answer.returncode == 1
    said = one_line(answer.stderr)
    assert "no Temporal server at" in said and "HOUSING_CHAIN_TEMPORAL_TLS_CERT" in said
