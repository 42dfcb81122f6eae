"""The checks a node's certificate signing request must pass before the CA looks at it again.

The CA takes only the public key from a CSR; everything else in the certificate is the CA's choice.
So a CSR may carry nothing else: a request for a SAN, a CA bit or any other extension or attribute
is a client asking for something it will not get, and it is told so rather than silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from gpulab_pki.ca.authority import CURVE_NAME
from gpulab_pki.ca.errors import InvalidCsr

# A P-384 CSR is about 500 bytes of PEM; the limit bounds the work a caller can make us do before
# any authentication beyond the token.
MAX_CSR_BYTES = 16 * 1024
# ECDSA over P-384 with a hash of at least 256 bits; SHA-1 and SHA-224 are refused (NIST SP 800-131A).
ALLOWED_SIGNATURES = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
}
_PEM_LABELS = (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")  # the second: RFC 7468 7, old tools
_KEY_NAMES: tuple[tuple[type, str], ...] = (
    (rsa.RSAPublicKey, "RSA"),
    (dsa.DSAPublicKey, "DSA"),
    (ed25519.Ed25519PublicKey, "Ed25519"),
    (ed448.Ed448PublicKey, "Ed448"),
)


@dataclass(frozen=True)
class NodeCsr:
    """A CSR that passed `validate_node_csr`. Issuing takes this type, not a raw CSR, so that no code
    path can sign a request that skipped the checks."""

    csr: x509.CertificateSigningRequest
    public_key: ec.EllipticCurvePublicKey


def validate_node_csr(pem: bytes | str) -> NodeCsr:
    """Parse and check a node's CSR; raise InvalidCsr whose message names the first thing wrong."""
    data = _pem_bytes(pem)
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise InvalidCsr("malformed", f"the CSR cannot be parsed: {exc}") from exc
    key = _ec_p384_key(csr)
    sig_oid = csr.signature_algorithm_oid
    if sig_oid not in ALLOWED_SIGNATURES:
        raise InvalidCsr(
            "unsupported_signature_algorithm",
            f"the CSR is signed with {_oid_name(sig_oid)}; only ECDSA with SHA-256, SHA-384 or SHA-512 is accepted",
        )
    try:
        signed = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        signed = False
    if not signed:
        raise InvalidCsr("bad_signature", "the CSR's signature does not verify with the CSR's own public key")
    _nothing_requested(csr)
    return NodeCsr(csr=csr, public_key=key)


def _pem_bytes(pem: bytes | str) -> bytes:
    if isinstance(pem, str):
        try:
            pem = pem.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidCsr("not_pem", "the CSR contains non-ASCII characters; PEM is ASCII") from None
    if len(pem) > MAX_CSR_BYTES:
        raise InvalidCsr("too_large", f"the CSR is {len(pem)} bytes; at most {MAX_CSR_BYTES} are accepted")
    data = pem.strip()
    if not data:
        raise InvalidCsr("empty", "the CSR is empty")
    # Exactly one PEM block and nothing around it: text before or after, or a second block, would be
    # ignored by the parser, and we do not accept what we do not look at.
    for label in _PEM_LABELS:
        if data.startswith(b"-----BEGIN " + label + b"-----") and data.endswith(b"-----END " + label + b"-----"):
            if data.count(b"-----BEGIN ") == 1 and data.count(b"-----END ") == 1:
                return data
            raise InvalidCsr("not_pem", "the CSR must be exactly one PEM block; this has several")
    raise InvalidCsr("not_pem", "the CSR is not a PEM block starting with -----BEGIN CERTIFICATE REQUEST-----")


def _ec_p384_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidCsr("unsupported_key", f"the CSR's public key is of an unsupported type: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        kind = next((name for cls, name in _KEY_NAMES if isinstance(key, cls)), type(key).__name__)
        raise InvalidCsr("unsupported_key", f"the CSR's key is {kind}; only EC P-384 ({CURVE_NAME}) keys are accepted")
    if key.curve.name != CURVE_NAME:
        raise InvalidCsr(
            "unsupported_curve",
            f"the CSR's key is on curve {key.curve.name}; only P-384 ({CURVE_NAME}) is accepted",
        )
    return key


def _nothing_requested(csr: x509.CertificateSigningRequest) -> None:
    try:
        extensions = list(csr.extensions)
    except ValueError as exc:  # duplicated or undecodable extensions: still a request for some
        raise InvalidCsr(
            "extensions_not_allowed", f"the CSR requests extensions, which cannot be parsed: {exc}"
        ) from exc
    if extensions:
        names = ", ".join(_oid_name(ext.oid) for ext in extensions)
        raise InvalidCsr(
            "extensions_not_allowed",
            f"the CSR requests extensions ({names}); a node's CSR must request none: the CA sets the"
            " certificate's name, key usage and constraints itself",
        )
    try:
        attributes = [_oid_name(attr.oid) for attr in csr.attributes]
    except ValueError as exc:
        raise InvalidCsr(
            "attributes_not_allowed", f"the CSR carries attributes, which cannot be parsed: {exc}"
        ) from exc
    if attributes:
        # Also an empty extensionRequest: the agent's CSR (Go's x509) carries no attributes at all.
        raise InvalidCsr(
            "attributes_not_allowed",
            f"the CSR carries attributes ({', '.join(attributes)}); a node's CSR must carry none",
        )


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = ALLOWED_SIGNATURES.get(oid) or _EXTRA_OID_NAMES.get(oid.dotted_string) or oid._name
    return oid.dotted_string if name == "Unknown OID" else f"{name} ({oid.dotted_string})"


# Names cryptography does not know, for messages only.
_EXTRA_OID_NAMES = {
    "1.2.840.113549.1.9.14": "extensionRequest",  # PKCS#9 (RFC 2985 5.4.2)
    "1.2.840.113549.1.9.7": "challengePassword",  # PKCS#9 (RFC 2985 5.4.1)
}
