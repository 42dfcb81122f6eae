"""Client and server certificates, judged by `openssl verify` / `openssl x509` and a real TLS handshake."""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gpulab_pki.ca import (
    DEFAULT_CLIENT_LIFETIME,
    CaKeyError,
    create_root,
    issue_client_cert,
    issue_server_cert,
    renewal_window_open,
    serial_hex,
    validate_node_csr,
)

from .conftest import Ca, OpenSsl, save_cert, save_key


def node_cert(openssl: OpenSsl, ca: Ca, node_id: uuid.UUID, lifetime: timedelta = DEFAULT_CLIENT_LIFETIME) -> Path:
    csr = validate_node_csr(openssl.csr(openssl.key("node")))  # asks for CN=evil, O=Evil Corp
    return save_cert(openssl, f"{node_id}.pem", issue_client_cert(ca.key, ca.cert, csr, node_id, lifetime))


def test_client_cert_verifies_for_client_auth(openssl: OpenSsl, ca: Ca) -> None:
    cert = node_cert(openssl, ca, uuid.uuid4())
    (openssl.folder / "node.pem").write_bytes(cert.read_bytes())

    done = openssl.verify(ca.pem, openssl.folder / "node.pem", "sslclient")

    assert done.stdout.strip() == "node.pem: OK", done.stderr


def test_client_cert_cannot_serve_tls(openssl: OpenSsl, ca: Ca) -> None:
    cert = node_cert(openssl, ca, uuid.uuid4())

    done = openssl.verify(ca.pem, cert, "sslserver")

    assert done.returncode != 0
    assert "unsuitable certificate purpose" in done.stderr


def test_client_cert_names_the_node_whatever_the_csr_asked(openssl: OpenSsl, ca: Ca) -> None:
    node_id = uuid.uuid4()
    text = openssl.text(node_cert(openssl, ca, node_id))

    assert f"Subject: CN = {node_id}\n" in text
    assert "evil" not in text.lower()
    assert "Issuer: CN = gpulab internal CA" in text
    assert "ASN1 OID: secp384r1" in text
    assert "Signature Algorithm: ecdsa-with-SHA384" in text
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text
    assert "X509v3 Key Usage: critical\n                Digital Signature\n" in text
    assert "X509v3 Extended Key Usage: \n                TLS Web Client Authentication\n" in text
    assert "Server Authentication" not in text
    assert "Subject Alternative Name" not in text
    assert "X509v3 Authority Key Identifier" in text


@pytest.mark.parametrize("lifetime", [DEFAULT_CLIENT_LIFETIME, timedelta(hours=36)])
def test_client_cert_lasts_the_configured_lifetime(openssl: OpenSsl, ca: Ca, lifetime: timedelta) -> None:
    not_before, not_after = openssl.dates(node_cert(openssl, ca, uuid.uuid4(), lifetime))

    assert not_after - (not_before + timedelta(minutes=5)) == lifetime
    assert abs(not_before + timedelta(minutes=5) - datetime.now(UTC)) < timedelta(seconds=5)


def test_client_cert_never_outlives_its_ca(openssl: OpenSsl) -> None:
    key, short_ca = create_root(lifetime_days=3)
    csr = validate_node_csr(openssl.csr(openssl.key("node")))

    cert = issue_client_cert(key, short_ca, csr, uuid.uuid4(), timedelta(days=7))

    assert cert.not_valid_after_utc == short_ca.not_valid_after_utc


def test_expired_ca_issues_nothing(openssl: OpenSsl) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=30)
    key, old_ca = create_root(lifetime_days=1, now=long_ago)
    csr = validate_node_csr(openssl.csr(openssl.key("node")))

    with pytest.raises(CaKeyError) as caught:
        issue_client_cert(key, old_ca, csr, uuid.uuid4())

    assert caught.value.reason == "ca_expired"


def test_another_cas_certificates_do_not_verify_against_ours(openssl: OpenSsl, ca: Ca, other_ca: Ca) -> None:
    csr = validate_node_csr(openssl.csr(openssl.key("node")))
    foreign_client = save_cert(
        openssl, "foreign-client.pem", issue_client_cert(other_ca.key, other_ca.cert, csr, uuid.uuid4())
    )
    _, server = issue_server_cert(other_ca.key, other_ca.cert, ["localhost"], ["127.0.0.1"])
    foreign_server = save_cert(openssl, "foreign-server.pem", server)

    for cert, purpose in ((foreign_client, "sslclient"), (foreign_server, "sslserver")):
        done = openssl.verify(ca.pem, cert, purpose)
        assert done.returncode != 0, done.stdout
        assert ": OK" not in done.stdout


def test_server_cert_verifies_for_its_names_only(openssl: OpenSsl, ca: Ca) -> None:
    key, cert = issue_server_cert(ca.key, ca.cert, ["gpulab.example.org", "localhost"], ["127.0.0.1", "::1"])
    path = save_cert(openssl, "server.pem", cert)

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"
    assert openssl.verify(ca.pem, path, "sslserver").stdout.strip() == "server.pem: OK"
    assert openssl.verify(ca.pem, path, "sslserver", "-verify_hostname", "gpulab.example.org").returncode == 0
    assert openssl.verify(ca.pem, path, "sslserver", "-verify_ip", "::1").returncode == 0
    assert openssl.verify(ca.pem, path, "sslserver", "-verify_hostname", "evil.example.org").returncode != 0
    assert openssl.verify(ca.pem, path, "sslserver", "-verify_ip", "10.0.0.1").returncode != 0
    assert openssl.verify(ca.pem, path, "sslclient").returncode != 0
    text = openssl.text(path)
    assert "DNS:gpulab.example.org, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1\n" in text
    assert "TLS Web Server Authentication\n" in text
    assert "Client Authentication" not in text
    assert "CA:FALSE" in text
    assert "ASN1 OID: secp384r1" in text


@pytest.mark.parametrize(
    ("hostnames", "ips", "phrase"),
    [
        ([], [], "at least one"),
        (["*.example.org"], [], "not a host name"),
        (["bad host"], [], "not a host name"),
        (["10.0.0.1"], [], "pass it in ips"),
        ([], ["gpulab.example.org"], "not an IP address"),
    ],
)
def test_server_cert_names_are_checked(ca: Ca, hostnames: list[str], ips: list[str], phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        issue_server_cert(ca.key, ca.cert, hostnames, ips)


def test_renewal_window_opens_at_two_thirds_and_closes_at_expiry(openssl: OpenSsl, ca: Ca) -> None:
    csr = validate_node_csr(openssl.csr(openssl.key("node")))
    cert = issue_client_cert(ca.key, ca.cert, csr, uuid.uuid4(), timedelta(days=7))
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    span = end - start

    assert not renewal_window_open(cert, start)
    assert not renewal_window_open(cert, start + span / 2)
    assert not renewal_window_open(cert, start + span * 2 / 3 - timedelta(seconds=1))
    assert renewal_window_open(cert, start + span * 2 / 3)
    assert renewal_window_open(cert, start + span * 9 / 10)
    assert renewal_window_open(cert, end - timedelta(seconds=1))
    assert not renewal_window_open(cert, end)  # expired: the node enrolls again
    with pytest.raises(ValueError, match="timezone-aware"):
        renewal_window_open(cert, datetime.now())  # a naive time is refused, not guessed


def test_serial_hex_is_fixed_width_and_matches_openssl(openssl: OpenSsl, ca: Ca) -> None:
    first, second = node_cert(openssl, ca, uuid.uuid4()), node_cert(openssl, ca, uuid.uuid4())
    certs = [x509.load_pem_x509_certificate(p.read_bytes()) for p in (first, second)]
    printed = openssl.run("x509", "-in", first.name, "-noout", "-serial").stdout.strip().split("=", 1)[1]

    assert len(serial_hex(certs[0])) == 40
    assert int(serial_hex(certs[0]), 16) == int(printed, 16)
    assert serial_hex(certs[0]) != serial_hex(certs[1])


def test_lifetime_must_be_positive(openssl: OpenSsl, ca: Ca) -> None:
    csr = validate_node_csr(openssl.csr(openssl.key("node")))

    with pytest.raises(ValueError, match="positive"):
        issue_client_cert(ca.key, ca.cert, csr, uuid.uuid4(), timedelta(0))


def test_mutual_tls_handshake_with_issued_certificates(openssl: OpenSsl, ca: Ca, other_ca: Ca) -> None:
    """Python's ssl (OpenSSL underneath), set up as the heartbeat listener will be: ours verifies,
    a foreign node's certificate and a server certificate used as a client one do not."""
    server_key, server_cert = issue_server_cert(ca.key, ca.cert, ["localhost"], ["127.0.0.1"])
    server = (save_cert(openssl, "tls-server.pem", server_cert), save_key(openssl, "tls-server.key", server_key))
    node_id = uuid.uuid4()
    ours = (node_cert(openssl, ca, node_id), openssl.key("node"))

    assert handshake(ca, server, ours) == str(node_id)
    foreign_csr = validate_node_csr(openssl.csr(openssl.key("node")))
    foreign = issue_client_cert(other_ca.key, other_ca.cert, foreign_csr, node_id)
    assert handshake(ca, server, (save_cert(openssl, "tls-foreign.pem", foreign), openssl.key("node"))) is None
    assert handshake(ca, server, server) is None  # serverAuth only: not a client certificate


def handshake(ca: Ca, server: tuple[Path, Path], client: tuple[Path, Path]) -> str | None:
    """One TLS 1.3 handshake over a socket pair; the CN the server saw, or None when it refused."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*server)
    server_ctx.load_verify_locations(cafile=ca.pem)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_cert_chain(*client)
    client_ctx.load_verify_locations(cafile=ca.pem)
    left, right = socket.socketpair()
    seen: list[str | None] = [None]

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(left, server_side=True) as tls:
                peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
                seen[0] = str(peer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            seen[0] = None

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(right, server_hostname="localhost") as tls:
            tls.recv(2)  # in TLS 1.3 the client learns of a refused certificate only when it reads
    except (ssl.SSLError, OSError):
        pass
    finally:
        right.close()  # first: a server still waiting to read sees the end and stops
        thread.join(timeout=10)
        left.close()
    return seen[0]
