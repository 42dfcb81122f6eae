"""Node CSRs made by `openssl req`: a plain P-384 request passes; every other shape is refused, with why."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gpulab_pki.ca import INVALID_CSR, MAX_CSR_BYTES, InvalidCsr, validate_node_csr

from .conftest import OpenSsl

PEM_BEGIN, PEM_END = b"-----BEGIN CERTIFICATE REQUEST-----\n", b"-----END CERTIFICATE REQUEST-----\n"


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)


def pem_of(der: bytes) -> bytes:
    return PEM_BEGIN + base64.encodebytes(der) + PEM_END


def good(o: OpenSsl) -> bytes:
    return o.csr(o.key("node"))


def flipped_signature(o: OpenSsl) -> bytes:
    der = bytearray(der_of(good(o)))
    der[-1] ^= 0x01  # the last byte is inside the signature's s value: still DER, no longer a signature
    return pem_of(bytes(der))


def tampered_subject(o: OpenSsl) -> bytes:
    der = der_of(good(o))
    assert der.count(b"evil") == 1
    return pem_of(der.replace(b"evil", b"evim"))  # signed content changed after signing


def with_attribute(o: OpenSsl) -> bytes:
    config = o.folder / "attr.cnf"
    config.write_text(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n"
        "[dn]\nCN = evil\n[attrs]\nchallengePassword = let-me-in-please\n"
    )
    return o.csr(o.key("node"), "-config", config.name, subject=None)


def der_instead_of_pem(o: OpenSsl) -> bytes:
    return der_of(good(o))


def certificate_instead(o: OpenSsl) -> bytes:
    return o.run("req", "-new", "-x509", "-key", o.key("node").name, "-subj", "/CN=x", "-days", "1").stdout.encode()


def two_csrs(o: OpenSsl) -> bytes:
    return good(o) + good(o)


def text_around(o: OpenSsl) -> bytes:
    return b"here is my request:\n" + good(o)


def oversized(o: OpenSsl) -> bytes:
    pem = good(o)
    return pem + b"\n" * (20 * 1024 - len(pem))  # 20 KiB, even though the PEM inside is fine


# name -> (how the CSR is made, reason, a phrase the message must contain)
REFUSED: dict[str, tuple[Callable[[OpenSsl], bytes], str, str]] = {
    "p256_key": (lambda o: o.csr(o.key("p256", "p256")), "unsupported_curve", "curve secp256r1"),
    "p521_key": (lambda o: o.csr(o.key("p521", "p521")), "unsupported_curve", "curve secp521r1"),
    "rsa_key": (lambda o: o.csr(o.key("rsa", "rsa2048")), "unsupported_key", "key is RSA"),
    "ed25519_key": (lambda o: o.csr(o.key("ed", "ed25519")), "unsupported_key", "key is Ed25519"),
    "san": (
        lambda o: o.csr(o.key("node"), "-addext", "subjectAltName=DNS:x"),
        "extensions_not_allowed",
        "subjectAltName",
    ),
    "ca_bit": (
        lambda o: o.csr(o.key("node"), "-addext", "basicConstraints=critical,CA:TRUE"),
        "extensions_not_allowed",
        "basicConstraints",
    ),
    "ca_false": (
        lambda o: o.csr(o.key("node"), "-addext", "basicConstraints=CA:FALSE"),
        "extensions_not_allowed",
        "basicConstraints",
    ),
    "key_usage": (
        lambda o: o.csr(o.key("node"), "-addext", "keyUsage=critical,keyCertSign"),
        "extensions_not_allowed",
        "keyUsage",
    ),
    "server_auth": (
        lambda o: o.csr(o.key("node"), "-addext", "extendedKeyUsage=serverAuth"),
        "extensions_not_allowed",
        "extendedKeyUsage",
    ),
    "challenge_password": (with_attribute, "attributes_not_allowed", "challengePassword"),
    "sha1": (lambda o: o.csr(o.key("node"), "-sha1"), "unsupported_signature_algorithm", "ecdsa-with-SHA1"),
    "sha224": (lambda o: o.csr(o.key("node"), "-sha224"), "unsupported_signature_algorithm", "ecdsa-with-SHA224"),
    "flipped_signature": (flipped_signature, "bad_signature", "signature does not verify"),
    "tampered_subject": (tampered_subject, "bad_signature", "signature does not verify"),
    "garbage": (lambda _: b"\x00\xffnot a CSR at all\x13\x37", "not_pem", "not a PEM block"),
    "garbage_in_armor": (lambda _: PEM_BEGIN + b"AAAAAAAA\n" + PEM_END, "malformed", "cannot be parsed"),
    "der": (der_instead_of_pem, "not_pem", "not a PEM block"),
    "certificate": (certificate_instead, "not_pem", "not a PEM block"),
    "private_key": (lambda o: o.key("node").read_bytes(), "not_pem", "not a PEM block"),
    "two_csrs": (two_csrs, "not_pem", "exactly one PEM block"),
    "text_around": (text_around, "not_pem", "not a PEM block"),
    "oversized": (oversized, "too_large", f"20480 bytes; at most {MAX_CSR_BYTES}"),
    "empty": (lambda _: b"", "empty", "empty"),
    "blank": (lambda _: b" \n\t\n", "empty", "empty"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_csr_is_refused_with_a_specific_reason(openssl: OpenSsl, case: str) -> None:
    make, reason, phrase = REFUSED[case]
    pem = make(openssl)

    with pytest.raises(InvalidCsr) as caught:
        validate_node_csr(pem)

    assert caught.value.code == INVALID_CSR
    assert caught.value.reason == reason
    assert caught.value.details == {"reason": reason}
    assert phrase in caught.value.message


@pytest.mark.parametrize("digest", ["-sha256", "-sha384", "-sha512"])
def test_p384_csr_is_accepted_whatever_its_subject(openssl: OpenSsl, digest: str) -> None:
    key = openssl.key("node")
    pem = openssl.csr(key, digest, subject="/CN=evil/O=Evil Corp/OU=admins")

    node_csr = validate_node_csr(pem)

    public = openssl.run("pkey", "-in", key.name, "-pubout").stdout.encode()
    assert (
        node_csr.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        == public
    )


def test_csr_arrives_as_text_from_grpc(openssl: OpenSsl) -> None:
    pem = good(openssl).decode()

    assert validate_node_csr(pem).public_key.curve.name == "secp384r1"


def test_csr_text_with_non_ascii_is_refused(openssl: OpenSsl) -> None:
    pem = good(openssl).decode().replace("REQUEST-----\n", "REQUEST-----\n\u00e9", 1)

    with pytest.raises(InvalidCsr) as caught:
        validate_node_csr(pem)

    assert caught.value.reason == "not_pem"


def test_old_new_certificate_request_label_is_accepted(openssl: OpenSsl) -> None:
    pem = openssl.csr(openssl.key("node"), "-newhdr")

    assert pem.startswith(b"-----BEGIN NEW CERTIFICATE REQUEST-----")
    assert validate_node_csr(pem).csr.subject.rfc4514_string() == "O=Evil Corp,CN=evil"


def test_csr_like_the_agents_is_accepted() -> None:
    # Go's x509.CreateCertificateRequest with no extensions writes no attributes either: this is its shape.
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node")]))
        .sign(key, hashes.SHA384())
    )

    assert validate_node_csr(csr.public_bytes(serialization.Encoding.PEM)).public_key == key.public_key()


def test_unstructured_name_attribute_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_attribute(x509.ObjectIdentifier("1.2.840.113549.1.9.2"), b"please")  # PKCS#9 unstructuredName
        .sign(key, hashes.SHA384())
    )

    with pytest.raises(InvalidCsr) as caught:
        validate_node_csr(csr.public_bytes(serialization.Encoding.PEM))

    assert caught.value.reason == "attributes_not_allowed"
    assert "1.2.840.113549.1.9.2" in caught.value.message
