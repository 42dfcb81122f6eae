"""Every SQL statement on the scheduler's node projection (inventory's nodes as the scheduler keeps
them from inventory's events: projections.py). Never commits: the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import nodes


@dataclass(frozen=True, slots=True)
class Node:
    id: uuid.UUID
    hostname: str
    management_ip: str | None
    ssh_port: int
    status: str  # pending | online | offline | revoked
    status_at: datetime
    hardware: dict[str, Any] | None  # inventory's hardware report as JSON (gpus, cpu_cores, ram_mb)
    hardware_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Node:
        return cls(
            id=row.id,
            hostname=row.hostname,
            management_ip=row.management_ip,
            ssh_port=row.ssh_port,
            status=row.status,
            status_at=row.status_at,
            hardware=row.hardware,
            hardware_at=row.hardware_at,
            deleted_at=row.deleted_at,
        )


async def get(session: AsyncSession, node_id: uuid.UUID) -> Node | None:
    """The node, deleted or not (None: no event of it seen yet)."""
    row = (await session.execute(select(nodes).where(nodes.c.id == node_id))).first()
    return Node.of(row) if row else None


async def get_live(session: AsyncSession, node_id: uuid.UUID) -> Node | None:
    """The node unless it was deleted."""
    row = (await session.execute(select(nodes).where(nodes.c.id == node_id, nodes.c.deleted_at.is_(None)))).first()
    return Node.of(row) if row else None


async def lock_unless_locked(session: AsyncSession, node_id: uuid.UUID) -> Node | None:
    """The node under its row lock until the transaction ends; None when another transaction holds it
    (`SKIP LOCKED`: placement tries another node rather than wait)."""
    row = (await session.execute(select(nodes).where(nodes.c.id == node_id).with_for_update(skip_locked=True))).first()
    return Node.of(row) if row else None


async def hostnames(session: AsyncSession, node_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The host name of each of the nodes, in one query (a node never seen is missing)."""
    ids = set(node_ids)
    if not ids:
        return {}
    rows = await session.execute(select(nodes.c.id, nodes.c.hostname).where(nodes.c.id.in_(ids)))
    return {r.id: r.hostname for r in rows}


async def ensure(session: AsyncSession, node_id: uuid.UUID, hostname: str, at: datetime) -> None:
    """The node's row, made `pending` (older than any event) if this is the first event seen of it."""
    await session.execute(
        insert(nodes)
        .values(id=node_id, hostname=hostname, status="pending", status_at=datetime.min.replace(tzinfo=at.tzinfo))
        .on_conflict_do_nothing()
    )


async def set_status(session: AsyncSession, node_id: uuid.UUID, hostname: str, status: str, at: datetime) -> None:
    """Status (and host name) as of `at`, unless a newer event set it already or the node was revoked."""
    await session.execute(
        update(nodes)
        .where(nodes.c.id == node_id, nodes.c.status_at < at, nodes.c.status != "revoked")
        .values(status=status, status_at=at, hostname=hostname)
    )


async def set_hardware(session: AsyncSession, node_id: uuid.UUID, hardware: dict[str, object], at: datetime) -> None:
    """The hardware report as of `at`, unless a newer one was kept already."""
    await session.execute(
        update(nodes)
        .where(nodes.c.id == node_id, func.coalesce(nodes.c.hardware_at, datetime.min.replace(tzinfo=at.tzinfo)) < at)
        .values(hardware=hardware, hardware_at=at)
    )


async def set_address(session: AsyncSession, node_id: uuid.UUID, management_ip: str, ssh_port: int) -> None:
    await session.execute(
        update(nodes).where(nodes.c.id == node_id).values(management_ip=management_ip, ssh_port=ssh_port)
    )


async def mark_deleted(session: AsyncSession, node_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(nodes).where(nodes.c.id == node_id).values(status="revoked", status_at=at, deleted_at=at)
    )
