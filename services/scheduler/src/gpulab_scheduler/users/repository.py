"""Every SQL statement on the scheduler's copy of user facts (models.users). Never commits: the
caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import users


@dataclass(frozen=True, slots=True)
class UserFacts:
    id: uuid.UUID
    email: str | None
    status: str | None  # invited | active | disabled; None: no status seen yet
    public_keys: tuple[str, ...]
    keys_version: int  # -1: the keys are not known yet

    @classmethod
    def of(cls, row: Row[Any]) -> UserFacts:
        return cls(
            id=row.id,
            email=row.email,
            status=row.status,
            public_keys=tuple(row.public_keys),
            keys_version=row.keys_version,
        )


async def get(session: AsyncSession, user_id: uuid.UUID, *, share_lock: bool = False) -> UserFacts | None:
    """The user's facts; `share_lock`: a FOR SHARE row lock until the transaction ends, so a status
    change (which updates the row) waits for it, and its end of the user's assignments sees what this
    transaction made."""
    query = select(users).where(users.c.id == user_id)
    if share_lock:
        query = query.with_for_update(read=True)
    row = (await session.execute(query)).first()
    return UserFacts.of(row) if row else None


async def set_status(session: AsyncSession, user_id: uuid.UUID, email: str, status: str, at: datetime) -> bool:
    """Record the status (and email) unless a newer fact is recorded already (out-of-order events);
    whether it was recorded (False: a newer status stands)."""
    stmt = insert(users).values(id=user_id, email=email, status=status, status_at=at)
    recorded = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[users.c.id],
            set_={"email": stmt.excluded.email, "status": stmt.excluded.status, "status_at": stmt.excluded.status_at},
            where=(users.c.status_at.is_(None)) | (users.c.status_at <= stmt.excluded.status_at),
        ).returning(users.c.id)
    )
    return recorded.first() is not None


async def set_keys(session: AsyncSession, user_id: uuid.UUID, public_keys: list[str], version: int) -> None:
    """Record the user's keys unless a newer version of them is recorded already."""
    stmt = insert(users).values(id=user_id, public_keys=public_keys, keys_version=version)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[users.c.id],
            set_={"public_keys": stmt.excluded.public_keys, "keys_version": stmt.excluded.keys_version},
            where=users.c.keys_version < stmt.excluded.keys_version,
        )
    )
