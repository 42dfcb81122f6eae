"""Every SQL statement on environments and the nodes attached to them. Never commits: the caller owns
the transaction."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import pagination
from gpulab_scheduler.models import environment_nodes, environments


@dataclass(frozen=True, slots=True)
class Environment:
    id: uuid.UUID
    name: str
    enforcement_mode: str
    tunnel_provider: str
    default_cpus: int
    default_ram_mb: int
    default_expiry_hours: int | None
    self_service: str
    max_hours: int | None
    created_by: uuid.UUID | None
    created_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Environment:
        return cls(
            id=row.id,
            name=row.name,
            enforcement_mode=row.enforcement_mode,
            tunnel_provider=row.tunnel_provider,
            default_cpus=row.default_cpus,
            default_ram_mb=row.default_ram_mb,
            default_expiry_hours=row.default_expiry_hours,
            self_service=row.self_service,
            max_hours=row.max_hours,
            created_by=row.created_by,
            created_at=row.created_at,
            deleted_at=row.deleted_at,
        )


async def get(session: AsyncSession, environment_id: uuid.UUID) -> Environment | None:
    """The environment, deleted or not (an assignment names its environment for ever)."""
    row = (await session.execute(select(environments).where(environments.c.id == environment_id))).first()
    return Environment.of(row) if row else None


async def get_live(session: AsyncSession, environment_id: uuid.UUID, *, lock: bool = False) -> Environment | None:
    """The environment unless deleted; `lock`: under its row lock until the transaction ends."""
    query = select(environments).where(environments.c.id == environment_id, environments.c.deleted_at.is_(None))
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return Environment.of(row) if row else None


async def add(session: AsyncSession, created_by: uuid.UUID | None, fields: Mapping[str, Any]) -> Environment | None:
    """The new environment; None when a live one has that name already."""
    row = (
        await session.execute(
            insert(environments)
            .values(id=uuid.uuid4(), created_by=created_by, **fields)
            .on_conflict_do_nothing(index_elements=[environments.c.name], index_where=text("deleted_at IS NULL"))
            .returning(*environments.c)
        )
    ).first()
    return Environment.of(row) if row else None


async def name_taken(session: AsyncSession, name: str, *, other_than: uuid.UUID) -> bool:
    """Whether a live environment other than `other_than` has this name."""
    taken = await session.scalar(
        select(func.count())
        .select_from(environments)
        .where(environments.c.name == name, environments.c.deleted_at.is_(None), environments.c.id != other_than)
    )
    return bool(taken)


async def change(session: AsyncSession, environment_id: uuid.UUID, changes: Mapping[str, Any]) -> Environment:
    """Write `changes` on the environment; returns it as written."""
    row = (
        await session.execute(
            update(environments).where(environments.c.id == environment_id).values(**changes).returning(*environments.c)
        )
    ).one()
    return Environment.of(row)


async def mark_deleted(session: AsyncSession, environment_id: uuid.UUID, at: datetime) -> None:
    """Deleted, its nodes detached; the row stays (past assignments name it)."""
    await session.execute(update(environments).where(environments.c.id == environment_id).values(deleted_at=at))
    await session.execute(delete(environment_nodes).where(environment_nodes.c.environment_id == environment_id))


async def page(session: AsyncSession, cursor: str | None, limit: int) -> tuple[list[Environment], str | None]:
    """One page of the live environments, oldest first."""
    query = select(environments).where(environments.c.deleted_at.is_(None))
    rows, next_cursor = await pagination.oldest_first(session, query, environments, cursor, limit)
    return [Environment.of(r) for r in rows], next_cursor


async def node_ids(session: AsyncSession, environment_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The nodes attached to each environment, in the order they were attached, in one query."""
    attached: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if not environment_ids:
        return attached
    rows = await session.execute(
        select(environment_nodes.c.environment_id, environment_nodes.c.node_id)
        .where(environment_nodes.c.environment_id.in_(set(environment_ids)))
        .order_by(environment_nodes.c.attached_at, environment_nodes.c.node_id)
    )
    for environment_id, node_id in rows:
        attached[environment_id].append(node_id)
    return attached


async def attach(session: AsyncSession, environment_id: uuid.UUID, node_id: uuid.UUID) -> bool:
    """Whether the node was attached now (False: it was already)."""
    added = await session.scalar(
        insert(environment_nodes)
        .values(environment_id=environment_id, node_id=node_id)
        .on_conflict_do_nothing()
        .returning(environment_nodes.c.node_id)
    )
    return added is not None


async def detach(session: AsyncSession, environment_id: uuid.UUID, node_id: uuid.UUID) -> bool:
    """Whether the node was attached (and is not any more)."""
    removed = await session.scalar(
        delete(environment_nodes)
        .where(environment_nodes.c.environment_id == environment_id, environment_nodes.c.node_id == node_id)
        .returning(environment_nodes.c.node_id)
    )
    return removed is not None


async def detach_everywhere(session: AsyncSession, node_id: uuid.UUID) -> None:
    """The node leaves every environment (it was deleted)."""
    await session.execute(delete(environment_nodes).where(environment_nodes.c.node_id == node_id))
