"""Every SQL statement on assignments, their GPUs and the users' Linux account names. Never commits:
the caller owns the transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import assignments


async def count_active(session: AsyncSession, *, environment_id: uuid.UUID) -> int:
    """How many active assignments the environment has."""
    active = await session.scalar(
        select(func.count())
        .select_from(assignments)
        .where(assignments.c.environment_id == environment_id, assignments.c.status == "active")
    )
    return int(active or 0)
