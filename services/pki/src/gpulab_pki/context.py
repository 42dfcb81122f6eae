"""What the NATS handlers and the gRPC servicer share, built once per process in main.setup()."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_pki.ca import Authority
from gpulab_pki.config import Settings


@dataclass(frozen=True)
class Pki:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    authority: Authority  # loaded (or created) at start, kept in memory

    @property
    def token_ttl(self) -> timedelta:
        return timedelta(hours=self.settings.enrollment_token_ttl_hours)

    @property
    def node_cert_lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.node_cert_lifetime_hours)
