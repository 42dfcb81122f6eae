"""The CA's tests judge our certificates with the real `openssl` command line, not with our own code.

Keys and CSRs are made by `openssl` too, as a node's tooling would; nothing here needs PostgreSQL or NATS.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gpulab_pki.ca import certificate_pem, create_root

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
