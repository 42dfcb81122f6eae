"""The pki tests judge our certificates with the real `openssl` command line, not with our own code.

The CA core's tests make keys and CSRs with `openssl` too and need no servers; the service's tests run
pki in this process on the session's real PostgreSQL and NATS and talk to it over real TLS with grpc.aio.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.db import create_engine
from gpulab_core.rpc import RpcClient
from gpulab_core.runtime import Runtime
from gpulab_devstack.servers import free_port
from gpulab_devstack.testing import Stack
from gpulab_pki.ca import certificate_pem, create_root
from gpulab_pki.config import Settings
from gpulab_pki.main import spec

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
# `openssl genpkey` arguments for every key the tests need.
KEY_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "p384": ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"),
    "p256": ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
    "p521": ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"),
    "rsa2048": ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
    "ed25519": ("-algorithm", "ED25519"),
}
EVIL_SUBJECT = "/CN=evil/O=Evil Corp"


@dataclass(frozen=True)
class OpenSsl:
    """The openssl CLI working in one folder: every input and output is a file there."""

    folder: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([OPENSSL, *args], cwd=self.folder, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done

    def write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def key(self, name: str, algorithm: str = "p384") -> Path:
        """A private key file made by `openssl genpkey`, cached by name."""
        path = self.folder / f"{name}.key"
        if not path.exists():
            self.run("genpkey", *KEY_ALGORITHMS[algorithm], "-out", path.name)
        return path

    def csr(self, key: Path, *extra: str, subject: str | None = EVIL_SUBJECT, name: str = "req") -> bytes:
        """A PEM CSR made by `openssl req` for `key`; `extra` adds e.g. -addext or a digest option.
        No subject: it comes from a -config in `extra` (with -subj, openssl skips the config's attributes)."""
        out = self.folder / f"{name}.csr"
        subj = ("-subj", subject) if subject is not None else ()
        self.run("req", "-new", "-key", key.name, *subj, *extra, "-out", out.name)
        return out.read_bytes()

    def text(self, cert: Path) -> str:
        return self.run("x509", "-in", cert.name, "-noout", "-text").stdout

    def verify(self, ca: Path, cert: Path, purpose: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """`openssl verify` with -x509_strict, which also checks RFC 5280 details (key ids, encodings)."""
        return self.run(
            "verify", "-x509_strict", "-CAfile", ca.name, "-purpose", purpose, *extra, cert.name, check=False
        )

    def dates(self, cert: Path) -> tuple[datetime, datetime]:
        """notBefore and notAfter as openssl reads them."""
        out = self.run("x509", "-in", cert.name, "-noout", "-startdate", "-enddate").stdout
        fields = dict(line.split("=", 1) for line in out.splitlines())
        return _openssl_time(fields["notBefore"]), _openssl_time(fields["notAfter"])


def _openssl_time(value: str) -> datetime:
    return datetime.strptime(value.strip(), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem: Path  # the certificate, where openssl can read it


def save_cert(openssl: OpenSsl, name: str, cert: x509.Certificate) -> Path:
    return openssl.write(name, certificate_pem(cert))


def save_key(openssl: OpenSsl, name: str, key: ec.EllipticCurvePrivateKey) -> Path:
    """A key in clear, for openssl and Python's ssl module in the tests only."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return openssl.write(name, pem)


@pytest.fixture(scope="session")
def openssl(tmp_path_factory: pytest.TempPathFactory) -> OpenSsl:
    return OpenSsl(tmp_path_factory.mktemp("openssl"))


@pytest.fixture(scope="session")
def ca(openssl: OpenSsl) -> Ca:
    key, cert = create_root()
    return Ca(key=key, cert=cert, pem=save_cert(openssl, "ca.pem", cert))


@pytest.fixture(scope="session")
def other_ca(openssl: OpenSsl) -> Ca:
    """A second root with the very same name as ours: only the signature tells them apart."""
    key, cert = create_root()
    return Ca(key=key, cert=cert, pem=save_cert(openssl, "other-ca.pem", cert))


# ---- the pki service running for real (in this process) on the session's PostgreSQL and NATS ----

PASSPHRASE = "test-passphrase-4f1c9a7e2b6d"
# A lifetime short enough that the renewal window (2/3 of notBefore..notAfter, notBefore backdated by
# 5 minutes) is already open when the certificate is issued.
SHORT_LIFETIME_HOURS = 60 / 3600


@dataclass
class PkiService:
    runtime: Runtime
    rpc: RpcClient
    port: int
    ca_pem: bytes

    async def call(self, operation: str, payload: dict[str, Any] | None = None) -> Any:
        return await self.rpc.call("pki", operation, payload or {})

    def channel(self, client_key: bytes | None = None, client_cert: bytes | None = None) -> grpc.aio.Channel:
        """A channel that pins our CA, as the agent does with the fingerprint from the install command."""
        creds = grpc.ssl_channel_credentials(self.ca_pem, client_key, client_cert)
        return grpc.aio.secure_channel(f"127.0.0.1:{self.port}", creds)


async def start_pki(stack: Stack, data_dir: Path, **overrides: Any) -> PkiService:
    port = free_port()
    values: dict[str, Any] = {
        "database_url": stack.service_database_url("pki"),
        "nats_url": stack.nats_url,
        "metrics_port": 0,
        "data_dir": data_dir,
        "ca_passphrase": PASSPHRASE,
        "enroll_port": port,
        "heartbeat_endpoint": "nodes.example.org:50052",
    }
    values.update(overrides)
    runtime = Runtime(spec, Settings(**values))
    await runtime.start()
    rpc = RpcClient(runtime.nc, timeout_s=30)
    info = await rpc.call("pki", "ca.get", {})
    return PkiService(runtime, rpc, port, info["certificate_pem"].encode())


@pytest.fixture(scope="session")
async def pki(migrated: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PkiService]:
    service = await start_pki(migrated, tmp_path_factory.mktemp("pki-data"))
    try:
        yield service
    finally:
        await service.runtime.stop()


@pytest.fixture(scope="session")
async def pki_short(migrated: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PkiService]:
    """A second replica on the same database, issuing certificates that are renewable at once."""
    service = await start_pki(
        migrated, tmp_path_factory.mktemp("pki-short"), node_cert_lifetime_hours=SHORT_LIFETIME_HOURS
    )
    try:
        yield service
    finally:
        await service.runtime.stop()


@pytest.fixture
async def db(migrated: Stack) -> AsyncIterator[AsyncEngine]:
    """The superuser's view, to look at rows and to age a token."""
    engine = create_engine(migrated.database_url, schema=None, app_name="pki-tests")
    yield engine
    await engine.dispose()


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str = "evil") -> str:
    """A bare CSR, as the agent's Go x509 makes it, asking for a CN that is not the node's."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA384())
    return csr.public_bytes(serialization.Encoding.PEM).decode()
