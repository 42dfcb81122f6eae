"""Both gRPC ports as a TLS scanner sees them: sslyze (PyPI) against pki's enrollment port (:50051)
and inventory's heartbeat port (:50052, with a node's certificate), on the real services of the
fixtures. No protocol below TLS 1.2, and Mozilla's "intermediate" configuration (the profile that
ships with sslyze, read offline) met in full apart from the certificate path validation, which
fails by design: the chain ends at the lab's private CA, in no public trust store. And the heartbeat
port refuses a client without a certificate."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)
from sslyze.scanner.models import ServerScanRequest, ServerScanResult, ServerScanStatusEnum
from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum
from sslyze.scanner.scanner import Scanner
from sslyze.server_setting import ClientAuthenticationCredentials, ServerNetworkConfiguration, ServerNetworkLocation

from .conftest import Agent, ControlPlane, enrolled, key_pem

# sslyze reads its bundled public trust stores, where a few old roots have a non-positive serial
# (cryptography warns; the tests turn warnings into errors). Ours are never among them.
pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
# The one issue allowed: the lab's own CA is in no public trust store (sslyze's bundled ones).
PRIVATE_CA_ONLY = {"certificate_path_validation"}
# The heartbeat port's key-exchange groups are chosen by gRPC core itself (X25519, P-256, P-384 and
# P-521 in grpcio 1.85), with no setting in grpcio's Python API or environment (only the TLS 1.2
# suites have one, GRPC_SSL_CIPHER_SUITES, whose default is already the profile's). P-521 is the one
# the profile leaves out: for client support, not strength. Exactly this issue is let through; any
# other group (X448, a weak curve) still fails.
GRPC_FIXED_GROUPS = {"tls_curves": "TLS curves {'secp521r1'} are supported, but should be rejected."}
BELOW_TLS_1_2 = ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites")
# Well under the enrollment port's per-address cap (pki's enroll_max_connections_per_address, 32).
SCAN_CONNECTIONS = 5
SCAN_TIMEOUT_S = 300  # a full scan is a few hundred handshakes; the test machine is shared
# A client's first HTTP/2 bytes: the connection preface and an empty SETTINGS frame.
HTTP2_PREFACE_AND_SETTINGS = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


def scan(port: int, client: ClientAuthenticationCredentials | None = None) -> ServerScanResult:
    """Everything Mozilla's checker needs, against 127.0.0.1:port (blocking: run it in a thread, the
    services answer on this process's event loop)."""
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname="localhost", port=port, ip_address="127.0.0.1"),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication="localhost", tls_client_auth_credentials=client, network_timeout=20
        ),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    )
    scanner = Scanner(per_server_concurrent_connections_limit=SCAN_CONNECTIONS)
    scanner.queue_scans([request])
    (result,) = scanner.get_results()
    return result


def mozilla_intermediate_issues(result: ServerScanResult) -> dict[str, str]:
    try:
        check_server_against_tls_configuration(
            result, MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
        )
    except ServerNotCompliantWithTlsConfiguration as refused:
        return refused.issues
    return {}


def assert_tls_1_2_and_up_and_intermediate(result: ServerScanResult, allowed: dict[str, str] | None = None) -> None:
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    attempts = result.scan_result
    assert attempts is not None
    failed = {
        command.value: str(getattr(attempts, command.value).error_trace)
        for command in SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER
        if getattr(attempts, command.value).status != ScanCommandAttemptStatusEnum.COMPLETED
    }
    assert failed == {}, f"sslyze could not run: {failed}"
    offered = [name for name in BELOW_TLS_1_2 if getattr(attempts, name).result.is_tls_version_supported]
    assert offered == [], f"protocols below TLS 1.2 offered: {offered}"
    issues = mozilla_intermediate_issues(result)
    for name, issue in (allowed or {}).items():
        if issues.get(name) == issue:
            del issues[name]
    assert set(issues) <= PRIVATE_CA_ONLY, f"Mozilla intermediate: {issues}"


def client_credentials(agent: Agent, folder: Path) -> ClientAuthenticationCredentials:
    assert agent.cert_pem is not None
    cert, key = folder / "node.pem", folder / "node.key"
    cert.write_bytes(agent.cert_pem)
    key.write_bytes(key_pem(agent.key))
    key.chmod(0o600)
    return ClientAuthenticationCredentials(certificate_chain_path=cert, key_path=key)


@pytest.mark.timeout(2 * SCAN_TIMEOUT_S)
async def test_sslyze_finds_only_tls_1_2_and_up_and_mozilla_intermediate_on_the_enrollment_port(
    plane: ControlPlane,
) -> None:
    result = await asyncio.wait_for(asyncio.to_thread(scan, plane.enroll_port), SCAN_TIMEOUT_S)
    assert_tls_1_2_and_up_and_intermediate(result)


@pytest.mark.timeout(2 * SCAN_TIMEOUT_S)
async def test_sslyze_with_a_node_certificate_finds_only_tls_1_2_and_up_and_mozilla_intermediate_on_the_heartbeat_port(
    plane: ControlPlane, agents: list[Agent], tmp_path: Path
) -> None:
    agent = await enrolled(plane, agents)
    client = client_credentials(agent, tmp_path)
    result = await asyncio.wait_for(asyncio.to_thread(scan, plane.heartbeat_port, client), SCAN_TIMEOUT_S)
    assert_tls_1_2_and_up_and_intermediate(result, allowed=GRPC_FIXED_GROUPS)


async def test_the_heartbeat_port_refuses_a_client_without_a_certificate(
    plane: ControlPlane, agents: list[Agent], tmp_path: Path
) -> None:
    agent = await enrolled(plane, agents)
    client = client_credentials(agent, tmp_path)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        # The same client with the node's certificate is served: the probe tells the two apart.
        assert await asyncio.to_thread(talk, plane.heartbeat_port, version, client) is None
        refused = await asyncio.to_thread(talk, plane.heartbeat_port, version, None)
        assert refused is not None, f"{version.name}: a client without a certificate was served"


def talk(port: int, version: ssl.TLSVersion, client: ClientAuthenticationCredentials | None) -> str | None:
    """Speak HTTP/2 to the port over TLS `version`, with the client certificate or without one: None
    when the server answers, else how it refused. With TLS 1.3 the client's handshake ends before the
    server has judged its certificate: the refusal comes with the first read."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server's identity is not what is tested here
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(["h2"])
    if client is not None:
        ctx.load_cert_chain(client.certificate_chain_path, client.key_path)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(HTTP2_PREFACE_AND_SETTINGS)
                return None if tls.recv(9) else "closed without a word"  # served: the server's SETTINGS
        except (ssl.SSLError, ConnectionError) as exc:
            return str(exc)
