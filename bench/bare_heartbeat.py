"""The bench's throwaway P-384 CA and the bare mutual-TLS Heartbeat server it is compared with.

The bare server answers `gpulab.agent.v1.Heartbeat/Heartbeat` with a constant reply: the same wire
messages as inventory, none of its work. It runs in its own process (`python -m bench.heartbeat
--serve-bare FOLDER PORT`), like inventory does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gpulab.agent.v1 import heartbeat_pb2, heartbeat_pb2_grpc

INTERVAL_S = 30  # what both servers tell the agent (inventory's default heartbeat_interval_s)


# ---- keys, certificates and messages ----
def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())  # what the agent and pki use


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(
    ca_key: ec.EllipticCurvePrivateKey, issuer: x509.Name, subject: str, public: ec.EllipticCurvePublicKey, *, ca: bool
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if subject == "localhost":
        names = [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA384())


def bare_pki(folder: Path, keys: list[ec.EllipticCurvePrivateKey]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A throwaway CA, the bare server's key and certificate (written to `folder`), and one client
    certificate per agent key. Returns (CA PEM, [(key PEM, certificate PEM)])."""
    ca_key = new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = issue(ca_key, ca_name, "bench CA", ca_key.public_key(), ca=True)
    server_key = new_key()
    (folder / "ca.pem").write_bytes(cert_pem(ca))
    (folder / "server.key").write_bytes(key_pem(server_key))
    (folder / "server.pem").write_bytes(
        cert_pem(issue(ca_key, ca_name, "localhost", server_key.public_key(), ca=False))
    )
    clients = [
        (key_pem(k), cert_pem(issue(ca_key, ca_name, str(uuid.uuid4()), k.public_key(), ca=False))) for k in keys
    ]
    return cert_pem(ca), clients


def csr_pem(key: ec.EllipticCurvePrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-agent")])  # pki sets the CN itself
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA384())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


class BareHeartbeat(heartbeat_pb2_grpc.HeartbeatServicer):  # type: ignore[misc]
    async def Heartbeat(self, _request: Any, _context: Any) -> Any:  # noqa: N802 (the gRPC method name)
        return heartbeat_pb2.HeartbeatResponse(heartbeat_interval_s=INTERVAL_S)


async def serve_bare(folder: Path, port: int) -> None:
    credentials = grpc.ssl_server_credentials(
        [((folder / "server.key").read_bytes(), (folder / "server.pem").read_bytes())],
        root_certificates=(folder / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    server = grpc.aio.server()
    heartbeat_pb2_grpc.add_HeartbeatServicer_to_server(BareHeartbeat(), server)
    server.add_secure_port(f"127.0.0.1:{port}", credentials)
    await server.start()
    await server.wait_for_termination()
