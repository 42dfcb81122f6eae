"""Every SQL statement of the revoked-serial projection: pki's revocations, as the heartbeat port
refuses them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_inventory.models import revoked_certificates


async def record_revoked(session: AsyncSession, serials: Sequence[str], node_id: uuid.UUID | None) -> None:
    if serials:
        await session.execute(
            insert(revoked_certificates)
            .values([{"serial": s, "node_id": node_id} for s in serials])
            .on_conflict_do_nothing()
        )


async def revoked_serials(session: AsyncSession) -> frozenset[str]:
    return frozenset((await session.execute(select(revoked_certificates.c.serial))).scalars().all())
