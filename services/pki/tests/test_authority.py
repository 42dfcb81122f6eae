"""The root CA, its key at rest and its fingerprint, as openssl sees them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gpulab_pki.ca import (
    CA_UNAVAILABLE,
    CaKeyError,
    certificate_pem,
    create_root,
    encrypt_key,
    fingerprint_sha256,
    fingerprint_sha256_colons,
    issue_server_cert,
    load_authority,
    load_key,
)

from .conftest import Ca, OpenSsl, save_cert

PASSPHRASE = b"a-test-passphrase-of-decent-length"


def test_root_is_a_p384_ca_that_can_only_sign_certificates(openssl: OpenSsl, ca: Ca) -> None:
    text = openssl.text(ca.pem)

    assert "ASN1 OID: secp384r1" in text
    assert "NIST CURVE: P-384" in text
    assert "Signature Algorithm: ecdsa-with-SHA384" in text
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in text
    assert "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign\n" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "Issuer: CN = gpulab internal CA" in text
    assert "Subject: CN = gpulab internal CA" in text
    assert "Extended Key Usage" not in text


def test_root_verifies_as_its_own_trust_anchor(openssl: OpenSsl, ca: Ca) -> None:
    done = openssl.verify(ca.pem, ca.pem, "any")

    assert done.stdout.strip() == "ca.pem: OK", done.stderr


def test_root_is_backdated_five_minutes_and_lasts_ten_years(openssl: OpenSsl) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    _, cert = create_root(common_name="lab CA", lifetime_days=3650)
    path = save_cert(openssl, "ten-years.pem", cert)

    not_before, not_after = openssl.dates(path)

    assert before - timedelta(minutes=5) <= not_before <= before - timedelta(minutes=5) + timedelta(seconds=2)
    assert not_after - not_before == timedelta(days=3650, minutes=5)
    assert "Subject: CN = lab CA" in openssl.text(path)


def test_root_serials_are_random_and_positive_159_bits() -> None:
    serials = {create_root()[1].serial_number for _ in range(4)}

    assert len(serials) == 4
    assert all(0 < s < 2**159 for s in serials)


def test_fingerprint_is_sha256_of_der_as_openssl_prints_it(openssl: OpenSsl, ca: Ca) -> None:
    printed = openssl.run("x509", "-in", ca.pem.name, "-noout", "-fingerprint", "-sha256").stdout
    colons = printed.strip().split("=", 1)[1]

    assert fingerprint_sha256_colons(ca.cert) == colons
    assert fingerprint_sha256(ca.cert) == colons.replace(":", "").lower()
    assert len(fingerprint_sha256(ca.cert)) == 64


def test_encrypted_key_round_trips(ca: Ca) -> None:
    pem = encrypt_key(ca.key, PASSPHRASE)

    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert load_key(pem, PASSPHRASE).private_numbers() == ca.key.private_numbers()


def test_key_on_disk_opens_only_with_the_passphrase(openssl: OpenSsl, ca: Ca) -> None:
    key = openssl.write("ca.key", encrypt_key(ca.key, PASSPHRASE))

    wrong = openssl.run("pkey", "-in", key.name, "-passin", "pass:wrong", "-noout", check=False)
    empty = openssl.run("pkey", "-in", key.name, "-passin", "pass:", "-noout", check=False)
    right = openssl.run("pkey", "-in", key.name, "-passin", f"pass:{PASSPHRASE.decode()}", "-pubout")

    assert wrong.returncode != 0
    assert empty.returncode != 0
    assert right.stdout == openssl.run("x509", "-in", ca.pem.name, "-noout", "-pubkey").stdout


def test_wrong_passphrase_is_a_ca_key_error(ca: Ca) -> None:
    pem = encrypt_key(ca.key, PASSPHRASE)

    with pytest.raises(CaKeyError) as caught:
        load_key(pem, b"not-the-passphrase-at-all")

    assert caught.value.code == CA_UNAVAILABLE
    assert caught.value.reason == "wrong_passphrase"
    assert "wrong passphrase" in caught.value.message


def test_key_stored_in_clear_is_refused(openssl: OpenSsl) -> None:
    clear = openssl.key("clear-p384").read_bytes()

    with pytest.raises(CaKeyError) as caught:
        load_key(clear, PASSPHRASE)

    assert caught.value.reason == "not_encrypted"


def test_key_that_is_not_p384_is_refused() -> None:
    pem = encrypt_key(ec.generate_private_key(ec.SECP256R1()), PASSPHRASE)

    with pytest.raises(CaKeyError) as caught:
        load_key(pem, PASSPHRASE)

    assert caught.value.reason == "wrong_key_type"
    assert "secp256r1" in caught.value.message


def test_empty_passphrase_never_encrypts(ca: Ca) -> None:
    with pytest.raises(CaKeyError) as caught:
        encrypt_key(ca.key, b"")

    assert caught.value.reason == "weak_passphrase"


def test_authority_loads_when_key_and_certificate_belong_together(ca: Ca) -> None:
    authority = load_authority(certificate_pem(ca.cert), encrypt_key(ca.key, PASSPHRASE), PASSPHRASE)

    assert authority.cert == ca.cert
    assert authority.fingerprint == fingerprint_sha256(ca.cert)
    assert authority.cert_pem == certificate_pem(ca.cert)


def test_authority_with_another_cas_key_is_refused(ca: Ca, other_ca: Ca) -> None:
    with pytest.raises(CaKeyError) as caught:
        load_authority(certificate_pem(ca.cert), encrypt_key(other_ca.key, PASSPHRASE), PASSPHRASE)

    assert caught.value.reason == "key_mismatch"


def test_authority_from_a_leaf_certificate_is_refused(ca: Ca) -> None:
    key, cert = issue_server_cert(ca.key, ca.cert, ["localhost"], [])

    with pytest.raises(CaKeyError) as caught:
        load_authority(certificate_pem(cert), encrypt_key(key, PASSPHRASE), PASSPHRASE)

    assert caught.value.reason == "not_a_ca"


def test_expired_authority_is_refused(ca: Ca) -> None:
    later = datetime.now(UTC) + timedelta(days=3651)

    with pytest.raises(CaKeyError) as caught:
        load_authority(certificate_pem(ca.cert), encrypt_key(ca.key, PASSPHRASE), PASSPHRASE, now=later)

    assert caught.value.reason == "ca_expired"
