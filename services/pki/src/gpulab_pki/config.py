from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from gpulab_core.networks import Network, NetworksSetting, parse_networks
from gpulab_core.settings import DatabaseSettings, local_database_url
from gpulab_pki.ca import check_passphrase, ensure_passphrase_file

# The local run keeps its generated passphrase here, under GPULAB_DATA_DIR, mode 0600 (issue 4).
PASSPHRASE_FILE = "ca-passphrase"
# API.md: the agent's gRPC ports.
DEFAULT_ENROLL_PORT = 50051
DEFAULT_HEARTBEAT_PORT = 50052


class Settings(DatabaseSettings):
    database_url: str = local_database_url("pki")
    metrics_port: int = 9102
    # Encrypts the CA key at rest. Unset: the local run's generated file (see `passphrase`). A
    # placeholder is refused at start, as for every secret (gpulab_core.settings); its length is
    # checked where it is used (`passphrase`), with the same rules as the file's.
    ca_passphrase: SecretStr | None = None
    enroll_host: str = "127.0.0.1"  # containers set 0.0.0.0
    # 0 picks a free port (tests, replicas side by side).
    enroll_port: int = Field(default=DEFAULT_ENROLL_PORT, ge=0, le=65535)
    # Hours, fractions allowed; "never" is not a number and is refused, and so is anything over 30 days.
    enrollment_token_ttl_hours: float = Field(default=24, gt=0, le=30 * 24)
    node_cert_lifetime_hours: float = Field(default=7 * 24, gt=0, le=90 * 24)
    # Names and addresses in the :50051 server certificate, comma-separated; default: the public URL's
    # host plus localhost and 127.0.0.1.
    enroll_server_names: str | None = None
    # What Enroll tells the agent to dial for heartbeats; default: the public host on :50052.
    heartbeat_endpoint: str | None = None
    # Bounds on the enrollment port: requests are a token and a CSR (a few KiB).
    enroll_max_message_bytes: int = Field(default=64 * 1024, ge=4096, le=4 * 1024 * 1024)
    enroll_max_concurrent_rpcs: int = Field(default=256, ge=1, le=100_000)
    # Connections to the enrollment port, handshakes in progress included (issue 12: a flood of idle
    # connections must not take the port from every node). The whole port: every address together.
    enroll_max_connections: int = Field(default=1024, ge=1, le=100_000)
    # One IPv4 address, or one IPv6 /64. A node holds one connection at a time (enroll: the CA probe,
    # then the call; renew: the call); 32 leaves room for a site whose nodes share one NAT address and
    # are installed together.
    enroll_max_connections_per_address: int = Field(default=32, ge=1, le=100_000)
    # A TLS handshake is one or two round trips; 10 s covers a slow, lossy link many times over.
    enroll_handshake_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # Nothing sent either way for this long ends the connection: an agent makes its one call as soon
    # as the handshake is done and then hangs up.
    enroll_idle_timeout_s: float = Field(default=30.0, gt=0, le=3600)

    # TCP load balancers in front of the enrollment port (comma-separated CIDRs or addresses; empty:
    # none, the default). A connection from one of them must open with a PROXY protocol v2 header
    # naming the node (HAProxy's `send-proxy-v2`), which then stands for the node's address in the
    # audit log and the per-address limit; anyone else's connection is TLS from its first byte.
    # Compose names the network its HAProxy reaches pki on.
    enroll_trusted_proxies: NetworksSetting = ""

    @property
    def enroll_trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.enroll_trusted_proxies)

    def passphrase(self) -> bytes:
        """The CA key's passphrase: the setting (checked), or the local run's file, created on first use.
        Raises WeakPassphrase / CaKeyError with a one-line message that never contains the value."""
        if self.ca_passphrase is not None:
            return check_passphrase(self.ca_passphrase.get_secret_value())
        return ensure_passphrase_file(Path(self.data_dir) / PASSPHRASE_FILE)

    def server_names(self) -> tuple[list[str], list[str]]:
        """(DNS names, IP addresses) for the enrollment port's certificate."""
        return self.listener_names(self.enroll_server_names)

    def heartbeat_target(self) -> str:
        return self.heartbeat_endpoint or self.public_target(DEFAULT_HEARTBEAT_PORT)
