from __future__ import annotations

from pydantic import Field, SecretStr

from gpulab_core.settings import DatabaseSettings, local_database_url

NETBIRD_SETUP_KEY_TTL_DEFAULT_S = 3600
NETBIRD_SETUP_KEY_TTL_MAX_S = 24 * 3600


class Settings(DatabaseSettings):
    database_url: str = local_database_url("scheduler")
    metrics_port: int = 9104
    # Expiry: how often the sweeper looks, and how long before the end the user is warned.
    expiry_sweep_s: float = Field(default=15.0, gt=0, le=3600)
    expiry_warning_hours: float = Field(default=24.0, ge=0, le=24 * 30)
    # The queue (requests/dispatcher.py): how often each replica looks for GPUs freed elsewhere (another
    # replica's release, a node coming online, an expiry); what it freed itself it hands out at once.
    queue_poll_s: float = Field(default=0.5, gt=0, le=60)
    # Accounting metrics (docs/adr/0020): how often /metrics' usage figures are read from the database.
    usage_metrics_refresh_s: float = Field(default=5.0, gt=0, le=3600)
    # Access: `ssh_proxy_jump` (API.md: GPULAB_SSH_JUMP_HOST, "[user@]host[:port]").
    ssh_jump_host: str | None = Field(default=None, max_length=255)
    # Access: `netbird` (API.md: GPULAB_NETBIRD_API_URL, GPULAB_NETBIRD_API_TOKEN).
    netbird_api_url: str | None = None
    netbird_api_token: SecretStr | None = None
    # The NetBird groups a setup key puts the user's peer in (comma-separated group ids), so that the
    # lab's NetBird policies let it reach the nodes.
    netbird_auto_groups: str = ""
    # How long a one-off setup key stays usable (NetBird's `expires_in`, seconds): short, since a view
    # after it expired unused simply gets a new one; an hour lets a user install NetBird first. At most a
    # day (issue 12: keys are short-lived); at least a minute.
    netbird_setup_key_ttl_s: int = Field(default=NETBIRD_SETUP_KEY_TTL_DEFAULT_S, ge=60, le=NETBIRD_SETUP_KEY_TTL_MAX_S)
    netbird_timeout_s: float = Field(default=10.0, gt=0, le=120)
