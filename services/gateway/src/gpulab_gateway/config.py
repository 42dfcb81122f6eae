import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from gpulab_core.networks import Network, NetworksSetting, parse_networks
from gpulab_core.settings import ENV_PREFIX, CoreSettings
from gpulab_gateway.client_address import LOOPBACK
from gpulab_gateway.refusals import REPORTS_PER_MINUTE

# The gateway faces the internet and keeps nothing: it holds no database credentials, so that a
# compromise of it reaches PostgreSQL only through the services' own NATS operations (issue 12).
# Handing it one anyway is a deployment mistake it refuses, rather than ignore in silence.
DATABASE_SETTINGS = ("database_url", "migration_database_url")


class Settings(CoreSettings):
    # Loopback by default: the local run must not expose itself to the network; deployments set 0.0.0.0.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    metrics_port: int = 9100
    # Largest request body accepted; SSH keys (8 KiB) and CSRs are the biggest things we take.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # How long /api/v1/healthz waits for each service before calling it `down`.
    health_timeout_s: float = Field(default=1.5, gt=0, le=30)
    frontend_dir: Path = Path("frontend/dist/gpulab/browser")
    # Where the built agent lies (gpulab-agent-linux-amd64), served at /downloads/ for install-agent.sh.
    downloads_dir: Path = Path("agent/dist")
    # How long a session that identity confirmed is trusted without asking again. It bounds how long
    # a user disabled (or a session ended) through another gateway replica keeps working here;
    # 0 asks identity on every request. Capped at 10 s so that bound stays short.
    session_cache_s: float = Field(default=2.0, ge=0, le=10)
    # Sessions remembered at once (least recently used dropped first): ~1 KiB each.
    session_cache_size: int = Field(default=10_000, ge=1, le=1_000_000)
    # Reverse proxies whose `X-Forwarded-For` names the client (comma-separated CIDRs or addresses;
    # empty: none). Loopback by default, for the local run; compose names the edge network Caddy
    # reaches the gateway on. Anyone else's header is ignored (client_address.py).
    trusted_proxies: NetworksSetting = LOOPBACK
    # Refused requests (CSRF, 403) this replica reports to the audit log a minute at most (refusals.py);
    # identity bounds what it writes on its own (GPULAB_AUDIT_REFUSALS_*_PER_MINUTE).
    audit_refusal_reports_per_minute: int = Field(default=REPORTS_PER_MINUTE, ge=0, le=100_000)

    @model_validator(mode="before")
    @classmethod
    def _no_database(cls, data: Any) -> Any:
        given = [f"{ENV_PREFIX}{n.upper()}" for n in DATABASE_SETTINGS if f"{ENV_PREFIX}{n.upper()}" in os.environ]
        if isinstance(data, dict):
            given += [f"{ENV_PREFIX}{n.upper()}" for n in DATABASE_SETTINGS if n in data]
        if given:
            names = ", ".join(sorted(set(given)))
            raise ValueError(f"{names} given to the gateway: it holds no database credentials; remove it")
        return data

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def secure_cookies(self) -> bool:
        """Cookies are `Secure` whenever the public URL is https (API.md, Conventions)."""
        return self.public_url.lower().startswith("https://")
