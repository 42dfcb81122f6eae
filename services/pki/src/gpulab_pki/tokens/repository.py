"""Every SQL statement about enrollment tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_pki.models import enrollment_tokens as t


async def invalidate_open(session: AsyncSession, node_id: uuid.UUID) -> int:
    """Every unused, still valid token of the node stops working now."""
    result = await session.execute(
        update(t)
        .where(t.c.node_id == node_id, t.c.used_at.is_(None), t.c.invalidated_at.is_(None))
        .values(invalidated_at=func.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def insert(
    session: AsyncSession, *, node_id: uuid.UUID, token_hash: bytes, expires_at: datetime, created_by: uuid.UUID | None
) -> None:
    await session.execute(
        t.insert().values(
            id=uuid.uuid4(), node_id=node_id, token_hash=token_hash, expires_at=expires_at, created_by=created_by
        )
    )


async def node_of(session: AsyncSession, token_hash: bytes) -> uuid.UUID | None:
    """The node a token (used or not) was minted for; None for a token never issued."""
    node_id: uuid.UUID | None = await session.scalar(select(t.c.node_id).where(t.c.token_hash == token_hash))
    return node_id


async def consume(session: AsyncSession, token_hash: bytes) -> uuid.UUID | None:
    """Use the token, once: one conditional UPDATE, so of any number of concurrent callers exactly one
    gets the node id (the others wait for the row lock, then see `used_at` set and match nothing)."""
    result = await session.execute(
        update(t)
        .where(
            t.c.token_hash == token_hash,
            t.c.used_at.is_(None),
            t.c.invalidated_at.is_(None),
            t.c.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(t.c.node_id)
    )
    node_id: uuid.UUID | None = result.scalar_one_or_none()
    return node_id
