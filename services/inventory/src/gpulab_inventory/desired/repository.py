"""Every SQL statement of the desired-state projection."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

from gpulab_inventory.models import desired_assignments, ended_assignments, user_ssh_keys


async def _lock(session: AsyncSession, name: str) -> None:
    # Held until the transaction ends; two names hashing alike only make unrelated events take turns.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))


async def lock_assignment(session: AsyncSession, assignment_id: uuid.UUID) -> None:
    """Created and ended of one assignment, applied by two replicas at once, take turns."""
    await _lock(session, f"gpulab-inventory:assignment:{assignment_id}")


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """A new assignment and a change of its user's keys, applied at once, take turns: either the
    assignment reads the new keys, or the key change sees (and rewrites) the new assignment."""
    await _lock(session, f"gpulab-inventory:ssh-keys:{user_id}")


async def has_ended(session: AsyncSession, assignment_id: uuid.UUID) -> bool:
    found = await session.execute(
        select(ended_assignments.c.assignment_id).where(ended_assignments.c.assignment_id == assignment_id)
    )
    return found.first() is not None


async def node_of(session: AsyncSession, assignment_id: uuid.UUID) -> uuid.UUID | None:
    found = await session.execute(
        select(desired_assignments.c.node_id).where(desired_assignments.c.assignment_id == assignment_id)
    )
    return found.scalar_one_or_none()


async def put_assignment(
    session: AsyncSession, assignment_id: uuid.UUID, node_id: uuid.UUID, user_id: uuid.UUID, spec: dict[str, Any]
) -> None:
    stmt = insert(desired_assignments).values(assignment_id=assignment_id, node_id=node_id, user_id=user_id, spec=spec)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[desired_assignments.c.assignment_id],
            set_={"node_id": node_id, "user_id": user_id, "spec": spec, "updated_at": func.now()},
        )
    )


async def end_assignment(
    session: AsyncSession, assignment_id: uuid.UUID, node_id: uuid.UUID, ended_at: datetime
) -> list[uuid.UUID]:
    """Record that it ended (for a created event still to come) and drop its row; returns the node
    the row was on, if there was one."""
    await session.execute(
        insert(ended_assignments)
        .values(assignment_id=assignment_id, node_id=node_id, ended_at=ended_at)
        .on_conflict_do_nothing()
    )
    gone = await session.execute(
        delete(desired_assignments)
        .where(desired_assignments.c.assignment_id == assignment_id)
        .returning(desired_assignments.c.node_id)
    )
    return list(gone.scalars())


async def user_keys(session: AsyncSession, user_id: uuid.UUID) -> list[str] | None:
    """The user's keys as identity last said, or None when no change of them has been seen."""
    found = await session.execute(select(user_ssh_keys.c.public_keys).where(user_ssh_keys.c.user_id == user_id))
    keys = found.scalar_one_or_none()
    return None if keys is None else list(keys)


async def store_keys(session: AsyncSession, user_id: uuid.UUID, keys: list[str], version: int) -> bool:
    """Keep the user's keys if `version` is newer than what is kept; True if it was."""
    stmt = insert(user_ssh_keys).values(user_id=user_id, public_keys=keys, version=version)
    stored = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[user_ssh_keys.c.user_id],
            set_={"public_keys": stmt.excluded.public_keys, "version": stmt.excluded.version, "updated_at": func.now()},
            where=user_ssh_keys.c.version < stmt.excluded.version,
        ).returning(user_ssh_keys.c.user_id)
    )
    return stored.first() is not None


async def rewrite_keys(session: AsyncSession, user_id: uuid.UUID, keys: list[str]) -> list[uuid.UUID]:
    """Put `keys` into every assignment of the user that holds others; returns the nodes whose desired
    state changed."""
    path = bindparam("path", ["ssh_public_keys"], type_=ARRAY(Text))
    value = bindparam("keys", keys, type_=JSONB)
    changed = await session.execute(
        update(desired_assignments)
        .where(
            desired_assignments.c.user_id == user_id,
            desired_assignments.c.spec["ssh_public_keys"].is_distinct_from(value),
        )
        .values(spec=func.jsonb_set(desired_assignments.c.spec, path, value), updated_at=func.now())
        .returning(desired_assignments.c.node_id)
    )
    return list(changed.scalars())
