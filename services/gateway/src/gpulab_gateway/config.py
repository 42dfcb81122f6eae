from pathlib import Path

from pydantic import Field

from gpulab_core.settings import CoreSettings


class Settings(CoreSettings):
    # Loopback by default: the local run must not expose itself to the network; deployments set 0.0.0.0.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    metrics_port: int = 9100
    # Largest request body accepted; SSH keys (16 KiB) and CSRs are the biggest things we take.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # How long /api/v1/healthz waits for each service before calling it `down`.
    health_timeout_s: float = Field(default=1.5, gt=0, le=30)
    frontend_dir: Path = Path("frontend/dist/gpulab/browser")
