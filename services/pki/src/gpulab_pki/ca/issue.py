"""Certificates the CA issues: nodes' client certificates and the gRPC listeners' server certificates.

Every field is the CA's choice; from a node's CSR only the public key is used. Each certificate can do
one thing (clientAuth or serverAuth), so a node's certificate can never serve TLS for the control plane.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gpulab_pki.ca.authority import CLOCK_SKEW, SIGNATURE_HASH, utc_now
from gpulab_pki.ca.csr import NodeCsr
from gpulab_pki.ca.errors import CaKeyError

DEFAULT_CLIENT_LIFETIME = timedelta(days=7)  # issue 4: short-lived, renewed by the agent
# The listeners are given a fresh certificate at each start; this bounds a long-running one.
DEFAULT_SERVER_LIFETIME = timedelta(days=90)
# A node may renew once this share of its certificate's lifetime has passed (issue 4).
RENEWAL_SHARE = (2, 3)
# RFC 1123 host names, lowercase, no wildcard: the listeners serve exactly the names configured.
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z")


def issue_client_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    csr: NodeCsr,
    node_id: uuid.UUID,
    lifetime: timedelta = DEFAULT_CLIENT_LIFETIME,
    *,
    now: datetime | None = None,
) -> x509.Certificate:
    """A node's client certificate: CN = node id (whatever the CSR's subject says), clientAuth only."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(node_id))])
    builder = _base(ca_cert, subject, csr.public_key, lifetime, now)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(ca_key, SIGNATURE_HASH())


def issue_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hostnames: list[str],
    ips: list[str],
    lifetime: timedelta = DEFAULT_SERVER_LIFETIME,
    *,
    now: datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and a serverAuth certificate for it, valid for exactly these names and addresses."""
    key = ec.generate_private_key(ec.SECP384R1())
    return key, issue_server_cert_for_key(ca_key, ca_cert, key.public_key(), hostnames, ips, lifetime, now=now)


def issue_server_cert_for_key(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    hostnames: list[str],
    ips: list[str],
    lifetime: timedelta = DEFAULT_SERVER_LIFETIME,
    *,
    now: datetime | None = None,
) -> x509.Certificate:
    """A serverAuth certificate for a key someone else holds (a listener's CSR, checked by
    `validate_node_csr`: the same rules, P-384 and nothing requested), for exactly these names."""
    names: list[x509.GeneralName] = [x509.DNSName(_hostname(h)) for h in hostnames]
    for ip in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip.strip())))
        except ValueError:
            raise ValueError(f"{ip!r} is not an IP address") from None
    if not names:
        raise ValueError("a server certificate needs at least one host name or IP address")
    # The CN is for people reading logs; TLS clients match the SAN only (RFC 6125 6.4.4).
    first = hostnames[0] if hostnames else ips[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first.strip().lower())])
    builder = _base(ca_cert, subject, public_key, lifetime, now)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, SIGNATURE_HASH())


def renewal_window_open(cert: x509.Certificate, now: datetime) -> bool:
    """True from 2/3 of the certificate's validity period on, until it expires.

    Measured over notBefore..notAfter as written in the certificate (backdate included), so the
    agent computes the same moment from the certificate alone. An expired certificate cannot renew:
    the node enrolls again with a new token.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    numerator, denominator = RENEWAL_SHARE
    opens = start + (end - start) * numerator / denominator
    return opens <= now < end


def serial_hex(cert: x509.Certificate) -> str:
    """The serial as 40 lowercase hex digits: RFC 5280 allows at most 20 octets, so every serial fits,
    and a fixed width makes the revocation table's key compare as text."""
    return f"{cert.serial_number:040x}"


def _base(
    ca_cert: x509.Certificate,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    lifetime: timedelta,
    now: datetime | None,
) -> x509.CertificateBuilder:
    """What client and server certificates share: validity, CA:FALSE, digitalSignature, key ids."""
    if lifetime <= timedelta(0):
        raise ValueError("a certificate's lifetime must be positive")
    start = utc_now(now)
    ca_start, ca_end = ca_cert.not_valid_before_utc, ca_cert.not_valid_after_utc
    if ca_end <= start:
        raise CaKeyError("ca_expired", f"the CA certificate expired at {ca_end.isoformat()}; it cannot issue")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # Never outside the CA's own validity: a chain is only as valid as its weakest link, and some
        # verifiers refuse a certificate that outlives its issuer.
        .not_valid_before(max(start - CLOCK_SKEW, ca_start))
        .not_valid_after(min(start + lifetime, ca_end))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # ECDHE-ECDSA needs only signatures: no keyEncipherment for an EC key (RFC 5480 3).
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public_key = ca_cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CaKeyError("wrong_key_type", "the CA certificate's key is not an EC key") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _hostname(name: str) -> str:
    host = name.strip().lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise ValueError(f"{name!r} is an IP address: pass it in ips, so that it becomes an IP SAN")
    if not _HOSTNAME.match(host):
        raise ValueError(f"{name!r} is not a host name (letters, digits, '-' and '.', no wildcard)")
    return host
