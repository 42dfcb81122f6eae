"""What the enrollment port presents: its certificate and, after it, the CA an agent pins."""

from __future__ import annotations

import asyncio
import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .conftest import OPENSSL, PkiService


async def test_the_handshake_presents_the_ca_after_the_server_certificate(pki: PkiService) -> None:
    # Asynchronously: the pki answering this handshake runs in this very event loop.
    proc = await asyncio.create_subprocess_exec(
        OPENSSL,
        "s_client",
        "-connect",
        f"127.0.0.1:{pki.port}",
        "-showcerts",
        "-alpn",
        "h2",
        "-servername",
        "localhost",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _err = await asyncio.wait_for(proc.communicate(), 30)
    # After the handshake the server's HTTP/2 SETTINGS frame may reach s_client, which prints it raw.
    shown = out.decode(errors="replace")
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", shown, re.S)
    assert len(pems) == 2, shown
    leaf, ca = (x509.load_pem_x509_certificate(p.encode()) for p in pems)
    assert ca.public_bytes(serialization.Encoding.DER) == x509.load_pem_x509_certificate(pki.ca_pem).public_bytes(
        serialization.Encoding.DER
    )
    info = await pki.call("ca.get")
    assert hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest() == info["sha256_fingerprint"]
    assert leaf.issuer == ca.subject
