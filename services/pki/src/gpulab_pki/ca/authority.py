"""The internal CA's root: its creation, its key at rest, and the fingerprint agents pin.

One self-signed EC P-384 root signs every certificate directly (pathlen:0: there are no
intermediates to compromise or rotate). Its key is only ever written encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gpulab_pki.ca.errors import CaKeyError

# P-384 with SHA-384 is CNSA's choice for TLS and what the agent's CSR must use (issue 4).
CURVE_NAME = ec.SECP384R1.name
SIGNATURE_HASH = hashes.SHA384
# Certificates start this far in the past so that a peer whose clock is a little behind accepts them.
CLOCK_SKEW = timedelta(minutes=5)
DEFAULT_ROOT_LIFETIME_DAYS = 3650
DEFAULT_ROOT_NAME = "gpulab internal CA"
_PEM_MAX_BYTES = 64 * 1024  # a P-384 key or certificate PEM is < 2 KiB; anything larger is not ours


def utc_now(now: datetime | None = None) -> datetime:
    """`now` (or the clock) in UTC, whole seconds: X.509 times have no fractions, and truncating here
    keeps a certificate's lifetime exactly what was asked for."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).replace(microsecond=0)


def create_root(
    common_name: str = DEFAULT_ROOT_NAME,
    lifetime_days: int = DEFAULT_ROOT_LIFETIME_DAYS,
    *,
    now: datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new root CA: a fresh P-384 key and its self-signed certificate."""
    if lifetime_days < 1:
        raise ValueError("lifetime_days must be at least 1")
    start = utc_now(now)
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        # 159 random bits: positive, within RFC 5280's 20 octets, and unguessable (CA/B BR 7.1).
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(start + timedelta(days=lifetime_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        # RFC 5280 4.2.1.1: a self-signed root may carry an AKI equal to its SKI; clients chain faster.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, SIGNATURE_HASH())
    )
    return key, cert


def encrypt_key(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> bytes:
    """The key as encrypted PKCS#8 PEM ("ENCRYPTED PRIVATE KEY"), the form it is stored in."""
    if not passphrase:
        raise CaKeyError("weak_passphrase", "the CA key must be encrypted with a non-empty passphrase")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def load_key(pem: bytes, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    """Decrypt the stored CA key; refuse a wrong passphrase, an unencrypted key, or any key but P-384."""
    if len(pem) > _PEM_MAX_BYTES:
        raise CaKeyError("malformed", f"the CA key file is {len(pem)} bytes, larger than any P-384 key")
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in pem:
        # Refused even when it would load: a CA key at rest in clear means the storage was tampered with
        # or set up by hand, and signing with it would hide that.
        raise CaKeyError("not_encrypted", "the CA key is not stored as an encrypted PKCS#8 PEM")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except ValueError as exc:
        # cryptography reports a wrong passphrase and a corrupt file alike; both mean "cannot decrypt".
        raise CaKeyError(
            "wrong_passphrase", "the CA key cannot be decrypted: wrong passphrase, or the key file is corrupt"
        ) from exc
    except TypeError as exc:
        raise CaKeyError("malformed", f"the CA key cannot be loaded: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != CURVE_NAME:
        kind = key.curve.name if isinstance(key, ec.EllipticCurvePrivateKey) else type(key).__name__
        raise CaKeyError("wrong_key_type", f"the CA key is {kind}; it must be an EC P-384 ({CURVE_NAME}) key")
    return key


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(pem: bytes) -> x509.Certificate:
    if len(pem) > _PEM_MAX_BYTES:
        raise CaKeyError("malformed", f"the CA certificate file is {len(pem)} bytes, larger than any of ours")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CaKeyError("malformed", f"the CA certificate cannot be parsed: {exc}") from exc


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """SHA-256 over the certificate's DER, 64 lowercase hex digits, no separators.

    This is the form the install command and `GET /enrollment/ca` carry: one shell word, no quoting,
    and what `sha256sum` prints for the DER file.
    """
    return cert.fingerprint(hashes.SHA256()).hex()


def fingerprint_sha256_colons(cert: x509.Certificate) -> str:
    """The same digest as `openssl x509 -noout -fingerprint -sha256` prints it (AB:CD:...), for people
    who compare by eye; never used to pin."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


@dataclass(frozen=True)
class Authority:
    """The CA as the pki service holds it in memory: a key known to match its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return fingerprint_sha256(self.cert)

    @property
    def cert_pem(self) -> bytes:
        return certificate_pem(self.cert)


def load_authority(cert_pem: bytes, key_pem: bytes, passphrase: bytes, *, now: datetime | None = None) -> Authority:
    """Load the stored CA and check that its key and certificate belong together and can still sign."""
    cert = load_certificate(cert_pem)
    key = load_key(key_pem, passphrase)
    if cert.public_key() != key.public_key():
        raise CaKeyError("key_mismatch", "the CA key does not belong to the CA certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaKeyError("not_a_ca", "the CA certificate does not have CA:TRUE in its basic constraints")
    if cert.not_valid_after_utc <= utc_now(now):
        raise CaKeyError("ca_expired", f"the CA certificate expired at {cert.not_valid_after_utc.isoformat()}")
    return Authority(key=key, cert=cert)
