"""Every SQL statement about the CA row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_pki.models import authority

# One key for "creating the CA", derived from a fixed name so no other lock can collide by accident.
_CREATE_LOCK = "gpulab-pki:authority"


async def lock_for_create(session: AsyncSession) -> None:
    """Held until the transaction ends: two replicas starting at once create one CA, not two."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(_CREATE_LOCK))))


async def get(session: AsyncSession) -> Row[Any, Any] | None:
    return (await session.execute(select(authority.c.certificate_pem, authority.c.key_pem))).first()


async def insert(session: AsyncSession, *, key_pem: str, certificate_pem: str, fingerprint: str) -> None:
    await session.execute(
        authority.insert().values(
            id=1, key_pem=key_pem, certificate_pem=certificate_pem, sha256_fingerprint=fingerprint
        )
    )
