from __future__ import annotations

from pydantic import Field

from gpulab_core.settings import DatabaseSettings, local_database_url

# API.md: the agent's gRPC ports.
DEFAULT_ENROLL_PORT = 50051
DEFAULT_HEARTBEAT_PORT = 50052


class Settings(DatabaseSettings):
    database_url: str = local_database_url("inventory")
    metrics_port: int = 9103
    heartbeat_host: str = "127.0.0.1"  # containers set 0.0.0.0
    # 0 picks a free port (tests, replicas side by side on one machine).
    heartbeat_port: int = Field(default=DEFAULT_HEARTBEAT_PORT, ge=0, le=65535)
    # What the agent waits between heartbeats (API.md: GPULAB_HEARTBEAT_INTERVAL_S, 30).
    heartbeat_interval_s: int = Field(default=30, ge=1, le=3600)
    # A node is offline after this many intervals without a heartbeat (issue 4: 3).
    offline_after_intervals: int = Field(default=3, ge=2, le=100)
    # How often the offline sweeper looks; default a third of an interval.
    sweep_every_s: float | None = Field(default=None, gt=0, le=3600)
    # Liveness is written in batches this often (heartbeats between only update memory).
    last_seen_flush_s: float = Field(default=5.0, gt=0, le=60)
    # How long a replica trusts its cached copy of a node (status, desired state) without reading it
    # again. Notices from other replicas drop a copy at once, and a NATS reconnect drops them all, so
    # this only bounds a notice lost otherwise; longer than the interval, or every heartbeat reads the
    # database (docs/adr/0024).
    node_cache_s: float = Field(default=120.0, ge=0, le=300)
    # How often a replica reads the revoked serials that other replicas' consumer recorded.
    revoked_reload_s: float = Field(default=10.0, ge=1, le=300)
    # Names and addresses in the :50052 server certificate, comma-separated; default: the public URL's
    # host plus localhost and 127.0.0.1.
    heartbeat_server_names: str | None = None
    # A heartbeat message's limit either way; a node's assignments are fitted to one reply
    # (desired/fitting.py). At most grpc-go's default receive limit (4 MiB), which the agent keeps.
    heartbeat_max_message_bytes: int = Field(default=1024 * 1024, ge=4096, le=4 * 1024 * 1024)
    heartbeat_max_concurrent_rpcs: int = Field(default=4096, ge=1, le=100_000)
    # The install command: where the agent enrolls, default the public host on :50051.
    enroll_endpoint: str | None = None

    @property
    def offline_after_s(self) -> int:
        return self.heartbeat_interval_s * self.offline_after_intervals

    @property
    def sweep_interval_s(self) -> float:
        return self.sweep_every_s if self.sweep_every_s is not None else max(1.0, self.heartbeat_interval_s / 3)

    def server_names(self) -> tuple[list[str], list[str]]:
        """(DNS names, IP addresses) for the heartbeat port's certificate."""
        return self.listener_names(self.heartbeat_server_names)

    def enroll_target(self) -> str:
        return self.enroll_endpoint or self.public_target(DEFAULT_ENROLL_PORT)
