"""Scans one TLS port of 127.0.0.1 with sslyze and prints, as JSON, what the TLS test judges:
whether the scan ran, the scan commands that could not run, the protocols below TLS 1.2 offered, and
the issues of Mozilla's "intermediate" profile (the one bundled with sslyze, read offline).

Runs in its own environment (.tools/tls-scan; see pyproject.toml beside it), so it imports nothing
of gpulab. Usage: scan.py PORT [CLIENT_CERT CLIENT_KEY]
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)
from sslyze.scanner.models import ServerScanRequest, ServerScanStatusEnum
from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum
from sslyze.scanner.scanner import Scanner
from sslyze.server_setting import ClientAuthenticationCredentials, ServerNetworkConfiguration, ServerNetworkLocation

BELOW_TLS_1_2 = ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites")
# Well under the enrollment port's per-address cap (pki's enroll_max_connections_per_address, 32).
SCAN_CONNECTIONS = 5
NETWORK_TIMEOUT_S = 20


def scan(port: int, client: ClientAuthenticationCredentials | None) -> dict[str, object]:
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname="localhost", port=port, ip_address="127.0.0.1"),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication="localhost",
            tls_client_auth_credentials=client,
            network_timeout=NETWORK_TIMEOUT_S,
        ),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    )
    scanner = Scanner(per_server_concurrent_connections_limit=SCAN_CONNECTIONS)
    scanner.queue_scans([request])
    (result,) = scanner.get_results()
    if result.scan_status != ServerScanStatusEnum.COMPLETED:
        return {"completed": False, "error": str(result.connectivity_error_trace)}
    attempts = result.scan_result
    assert attempts is not None
    failed = {
        command.value: str(getattr(attempts, command.value).error_trace)
        for command in SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER
        if getattr(attempts, command.value).status != ScanCommandAttemptStatusEnum.COMPLETED
    }
    if failed:
        return {"completed": True, "failed": failed}
    offered = [name for name in BELOW_TLS_1_2 if getattr(attempts, name).result.is_tls_version_supported]
    try:
        check_server_against_tls_configuration(
            result, MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
        )
        issues: dict[str, str] = {}
    except ServerNotCompliantWithTlsConfiguration as refused:
        issues = dict(refused.issues)
    return {"completed": True, "failed": {}, "below_tls_1_2": offered, "mozilla_intermediate_issues": issues}


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3):
        sys.stderr.write(__doc__ or "")
        return 2
    client = None
    if len(argv) == 3:
        client = ClientAuthenticationCredentials(certificate_chain_path=Path(argv[1]), key_path=Path(argv[2]))
    # sslyze reads its bundled public trust stores, where a few old roots have a non-positive
    # serial (cryptography warns); ours are never among them.
    warnings.filterwarnings("ignore", "Parsed a serial number which wasn't positive")
    sys.stdout.write(json.dumps(scan(int(argv[0]), client)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
