"""The users' Linux account names (one per user, for every node and assignment). Never commits: the
caller owns the transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import linux_users


async def username_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    username = await session.scalar(select(linux_users.c.username).where(linux_users.c.user_id == user_id))
    return None if username is None else str(username)


async def claim_username(session: AsyncSession, user_id: uuid.UUID, username: str) -> bool:
    """Whether the name is now the user's (False: taken, by them or by someone else)."""
    made = await session.scalar(
        insert(linux_users)
        .values(user_id=user_id, username=username)
        .on_conflict_do_nothing()
        .returning(linux_users.c.username)
    )
    return made is not None
