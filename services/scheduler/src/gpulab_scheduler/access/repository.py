"""Every SQL statement on the NetBird access of assignments (netbird_keys.py). Never commits: the
caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import assignments, netbird_access


@dataclass(frozen=True, slots=True)
class NetbirdAccess:
    assignment_id: uuid.UUID
    group_id: str
    setup_key_id: str | None
    setup_key: str | None
    setup_key_expires_at: datetime | None
    issued_at: datetime
    removed_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> NetbirdAccess:
        return cls(
            assignment_id=row.assignment_id,
            group_id=row.group_id,
            setup_key_id=row.setup_key_id,
            setup_key=row.setup_key,
            setup_key_expires_at=row.setup_key_expires_at,
            issued_at=row.issued_at,
            removed_at=row.removed_at,
        )


@dataclass(frozen=True, slots=True)
class Removal:
    """The NetBird access of an ended assignment, still to remove, with whose it was."""

    access: NetbirdAccess
    user_id: uuid.UUID
    user_email: str


async def lock(session: AsyncSession, assignment_id: uuid.UUID) -> None:
    """Serialise the views, replacements and the removal of one assignment's access until the
    transaction ends (a transaction-scoped advisory lock)."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtext(f"gpulab-scheduler:netbird:{assignment_id}")))
    )


async def assignment_status(session: AsyncSession, assignment_id: uuid.UUID) -> str | None:
    """The assignment's status now (None: no such assignment)."""
    status = await session.scalar(select(assignments.c.status).where(assignments.c.id == assignment_id))
    return None if status is None else str(status)


async def get(session: AsyncSession, assignment_id: uuid.UUID) -> NetbirdAccess | None:
    row = (await session.execute(select(netbird_access).where(netbird_access.c.assignment_id == assignment_id))).first()
    return NetbirdAccess.of(row) if row else None


async def put(session: AsyncSession, assignment_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    """Create or replace the assignment's access with `values` (group_id, setup_key_id, setup_key,
    setup_key_expires_at, issued_at)."""
    await session.execute(
        insert(netbird_access)
        .values(assignment_id=assignment_id, **values)
        .on_conflict_do_update(index_elements=[netbird_access.c.assignment_id], set_=dict(values))
    )


async def ended_not_removed(session: AsyncSession, limit: int) -> list[uuid.UUID]:
    """The assignments that have ended with their access not removed yet, the longest ended first."""
    due = await session.scalars(
        select(netbird_access.c.assignment_id)
        .join(assignments, assignments.c.id == netbird_access.c.assignment_id)
        .where(netbird_access.c.removed_at.is_(None), assignments.c.status != "active")
        .order_by(assignments.c.ended_at)
        .limit(limit)
    )
    return list(due.all())


async def removal(session: AsyncSession, assignment_id: uuid.UUID) -> Removal | None:
    """The assignment's access if not removed yet (None: removed, or it never had one)."""
    row = (
        await session.execute(
            select(netbird_access, assignments.c.user_id, assignments.c.user_email)
            .join(assignments, assignments.c.id == netbird_access.c.assignment_id)
            .where(netbird_access.c.assignment_id == assignment_id, netbird_access.c.removed_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    return Removal(access=NetbirdAccess.of(row), user_id=row.user_id, user_email=row.user_email)


async def mark_removed(session: AsyncSession, assignment_id: uuid.UUID, at: datetime) -> None:
    """Removed at `at`: the key is forgotten (the group id stays, for the record)."""
    await session.execute(
        update(netbird_access)
        .where(netbird_access.c.assignment_id == assignment_id)
        .values(removed_at=at, setup_key=None, setup_key_id=None, setup_key_expires_at=None)
    )
