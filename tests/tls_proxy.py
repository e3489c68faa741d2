"""A TLS-terminating proxy in front of the Temporal dev server, for tests only.

The dev server speaks plain gRPC; a secured cluster or Temporal Cloud speaks it inside TLS and
(with mTLS) demands a client certificate. This proxy plays that part on loopback: it accepts
TLS (ALPN `h2`, the way gRPC negotiates HTTP/2), refuses a handshake without a certificate
signed by its CA, and forwards the decrypted bytes to the dev server unchanged. It needs no
understanding of HTTP/2: the stream inside TLS is exactly what the dev server expects.

`make_pki` writes a throw-away CA, a server certificate for 127.0.0.1/localhost and a client
certificate (the `cryptography` package), so that a test needs no files of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate signed by another CA: must be refused
    stranger_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool = False,
                 server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    paths: dict[str, Path] = {"ca": directory / "ca.pem"}
    other_key = ec.generate_private_key(ec.SECP256R1())
    for role, issuer, issuer_key, server in (("server", "test CA", ca_key, True),
                                             ("client", "test CA", ca_key, False),
                                             ("stranger", "other CA", other_key, False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"{role}.test", key, issuer, issuer_key, server=server)
        (directory / f"{role}.pem").write_bytes(cert.public_bytes(pem))
        _write_key(directory / f"{role}-key.pem", key)
        paths[f"{role}_cert"] = directory / f"{role}.pem"
        paths[f"{role}_key"] = directory / f"{role}-key.pem"
    return Pki(**paths)


class TlsProxy:
    """`with TlsProxy(pki, upstream_port) as proxy:` listens on `proxy.port` (127.0.0.1)."""

    def __init__(self, pki: Pki, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
        self.context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self.context.verify_mode = ssl.CERT_REQUIRED  # mTLS: no certificate, no connection
        self.context.set_alpn_protocols(["h2"])
        self.port = 0
        self.refused = 0  # handshakes that failed (no certificate, a stranger's)
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tls-proxy")
        self._server: asyncio.Server | None = None

    def __enter__(self) -> TlsProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(self._server.wait_closed())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The handshake here rather than in `start_server`, so that a refused one is seen
        (and counted) instead of being logged away by asyncio."""
        # `loop.start_tls` itself: Python 3.11's `StreamWriter.start_tls` takes a server's
        # connection for a client's once the connected callback runs
        loop = asyncio.get_running_loop()
        plain = writer.transport
        try:
            writer._transport = await loop.start_tls(  # noqa: SLF001 - see above
                plain, writer._protocol, self.context, server_side=True,  # noqa: SLF001
                ssl_handshake_timeout=10)
        except (ssl.SSLError, ConnectionError, TimeoutError):
            self.refused += 1
            plain.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    sink.close()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except asyncio.CancelledError:  # the proxy stops: asyncio's callback would report it
            writer.transport.abort()
            up_writer.transport.abort()
