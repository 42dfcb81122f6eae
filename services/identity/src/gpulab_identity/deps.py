"""What the handlers of every aggregate need, built once per process in main.setup()."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_identity.config import Settings
from gpulab_identity.passwords import Passwords


@dataclass(frozen=True)
class Deps:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    passwords: Passwords
