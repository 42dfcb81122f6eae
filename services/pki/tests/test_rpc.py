"""pki's NATS endpoints: the CA, tokens, revocation, listener certificates; openssl judges."""

from __future__ import annotations

import uuid

import pytest
from cryptography import x509

from gpulab_core.errors import RemoteError
from gpulab_pki.ca import serial_hex

from .conftest import OpenSsl, PkiService, make_csr, new_key
from .test_renewal import enrolled


async def test_ca_fingerprint_is_what_openssl_prints(pki: PkiService, openssl: OpenSsl) -> None:
    info = await pki.call("ca.get")
    path = openssl.write("rpc-ca.pem", info["certificate_pem"].encode())
    out = openssl.run("x509", "-in", path.name, "-noout", "-fingerprint", "-sha256").stdout
    assert out.split("=", 1)[1].strip().replace(":", "").lower() == info["sha256_fingerprint"]
    assert len(info["sha256_fingerprint"]) == 64


async def test_token_is_long_random_and_expires_after_the_ttl(pki: PkiService) -> None:
    reply = await pki.call("tokens.issue", {"node_id": str(uuid.uuid4())})
    assert len(reply["token"]) >= 22  # >= 128 bits in URL-safe base64


async def test_revoked_lists_revoked_serials_only(pki: PkiService) -> None:
    revoked_node, _key, revoked_cert = await enrolled(pki)
    _kept, _key2, kept_cert = await enrolled(pki)
    await pki.call("certs.revoke_node", {"node_id": str(revoked_node)})
    serials = (await pki.call("certs.revoked"))["serials"]
    assert serial_hex(x509.load_pem_x509_certificate(revoked_cert)) in serials
    assert serial_hex(x509.load_pem_x509_certificate(kept_cert)) not in serials
    # Revoking again finds nothing left to revoke.
    assert (await pki.call("certs.revoke_node", {"node_id": str(revoked_node)}))["revoked_serials"] == []


async def test_signed_server_certificate_verifies_for_its_names(pki: PkiService, openssl: OpenSsl) -> None:
    reply = await pki.call(
        "certs.sign_server",
        {"csr_pem": make_csr(new_key()), "dns_names": ["inventory.example.org"], "ip_addresses": ["10.0.0.5"]},
    )
    ca = openssl.write("sign-ca.pem", reply["ca_certificate_pem"].encode())
    cert = openssl.write("inventory.pem", reply["certificate_pem"].encode())
    done = openssl.verify(ca, cert, "sslserver", "-verify_hostname", "inventory.example.org")
    assert done.returncode == 0, done.stdout + done.stderr
    assert openssl.verify(ca, cert, "sslserver", "-verify_ip", "10.0.0.5").returncode == 0
    assert openssl.verify(ca, cert, "sslserver", "-verify_hostname", "other.example.org").returncode != 0
    assert openssl.verify(ca, cert, "sslclient").returncode != 0


async def test_sign_server_refuses_a_bad_csr(pki: PkiService) -> None:
    with pytest.raises(RemoteError) as info:
        await pki.call("certs.sign_server", {"csr_pem": "garbage", "dns_names": ["x.example.org"]})
    assert info.value.code == "invalid_csr"
