"""Every SQL statement of the groups aggregate (identity.groups, identity.group_members); the rules
are in service.py. Deleted groups (deleted_at set) are invisible here except to `names`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import pagination
from gpulab_identity.models import group_members, groups


@dataclass(frozen=True)
class GroupRecord:
    """A live group's own row (its members are read separately, for a whole page at once)."""

    id: uuid.UUID
    name: str
    description: str
    created_at: datetime


_live = groups.c.deleted_at.is_(None)


def _select() -> Select[Any]:
    return select(groups.c.id, groups.c.name, groups.c.description, groups.c.created_at).where(_live)


def _record(row: Row[Any]) -> GroupRecord:
    return GroupRecord(id=row.id, name=row.name, description=row.description, created_at=row.created_at)


async def insert(session: AsyncSession, group_id: uuid.UUID, name: str, description: str) -> GroupRecord:
    """Raises IntegrityError when a live group has the name."""
    query = (
        groups.insert()
        .values(id=group_id, name=name, description=description)
        .returning(groups.c.id, groups.c.name, groups.c.description, groups.c.created_at)
    )
    return _record((await session.execute(query)).one())


async def get(session: AsyncSession, group_id: uuid.UUID, *, lock: bool = False) -> GroupRecord | None:
    """A live group; `lock`: its row locked until the transaction ends (changes and deletes)."""
    query = _select().where(groups.c.id == group_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _record(row) if row else None


async def get_shared(session: AsyncSession, group_id: uuid.UUID) -> GroupRecord | None:
    """A live group with a share lock: a member added now cannot race the group's delete."""
    row = (await session.execute(_select().where(groups.c.id == group_id).with_for_update(read=True))).first()
    return _record(row) if row else None


async def list_page(session: AsyncSession, cursor: str | None, limit: int) -> tuple[list[GroupRecord], str | None]:
    rows, next_cursor = await pagination.oldest_first(session, _select(), groups, cursor, limit)
    return [_record(r) for r in rows], next_cursor


async def of_user(session: AsyncSession, user_id: uuid.UUID) -> list[GroupRecord]:
    """The live groups the user is a member of, oldest first."""
    query = (
        _select()
        .where(groups.c.id.in_(select(group_members.c.group_id).where(group_members.c.user_id == user_id)))
        .order_by(groups.c.created_at, groups.c.id)
    )
    return [_record(r) for r in (await session.execute(query)).all()]


async def member_ids(session: AsyncSession, group_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The members of each of the groups, in the order they were added: one query for all of them."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {g: [] for g in group_ids}
    if not group_ids:
        return found
    query = (
        select(group_members.c.group_id, group_members.c.user_id)
        .where(group_members.c.group_id.in_(group_ids))
        .order_by(group_members.c.added_at, group_members.c.user_id)
    )
    for row in (await session.execute(query)).all():
        found[row.group_id].append(row.user_id)
    return found


async def set_fields(session: AsyncSession, group_id: uuid.UUID, **values: str) -> None:
    """Raises IntegrityError when a new name is a live group's."""
    await session.execute(update(groups).where(groups.c.id == group_id).values(**values, updated_at=func.now()))


async def mark_deleted(session: AsyncSession, group_id: uuid.UUID) -> None:
    """Soft delete: the row stays (its name still shows in usage and audit), its members go."""
    await session.execute(update(groups).where(groups.c.id == group_id).values(deleted_at=func.now()))
    await session.execute(delete(group_members).where(group_members.c.group_id == group_id))


async def add_member(session: AsyncSession, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """False when the user was a member already (nothing changes)."""
    query = (
        pg_insert(group_members)
        .values(group_id=group_id, user_id=user_id)
        .on_conflict_do_nothing()
        .returning(group_members.c.user_id)
    )
    return (await session.execute(query)).first() is not None


async def remove_member(session: AsyncSession, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """False when the user was no member (nothing changes)."""
    query = (
        delete(group_members)
        .where(group_members.c.group_id == group_id, group_members.c.user_id == user_id)
        .returning(group_members.c.user_id)
    )
    return (await session.execute(query)).first() is not None


async def is_member(session: AsyncSession, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    query = select(group_members.c.user_id).where(
        group_members.c.group_id == group_id, group_members.c.user_id == user_id
    )
    return (await session.execute(query)).first() is not None


async def names(session: AsyncSession, group_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of those of the groups that exist or existed (deleted ones included)."""
    if not group_ids:
        return {}
    query = select(groups.c.id, groups.c.name).where(groups.c.id.in_(group_ids))
    return {row.id: row.name for row in (await session.execute(query)).all()}
