"""Every SQL statement on inventory.nodes: the admin's calls (nodes/service.py) and the heartbeat
path's reads and writes (heartbeat/). Never commits: the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import pagination
from gpulab_core.contracts.inventory import DEFAULT_SSH_PORT
from gpulab_inventory.models import nodes
from gpulab_inventory.nodes.liveness import OFFLINE, ONLINE, REVOKED

_LAST_SEEN = text(
    "UPDATE inventory.nodes AS n SET last_seen_at = v.ts "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:ts AS timestamptz[])) AS v(id, ts) "
    "WHERE n.id = v.id AND n.status = 'online' "
    "AND (n.last_seen_at IS NULL OR n.last_seen_at < v.ts) RETURNING n.id"
).bindparams(bindparam("ids"), bindparam("ts"))


async def get(session: AsyncSession, node_id: uuid.UUID, *, lock: bool = False) -> Any | None:
    """The node's row (None: no such node); `lock`: under its row lock until the transaction ends."""
    query = select(nodes).where(nodes.c.id == node_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def add(
    session: AsyncSession,
    node_id: uuid.UUID,
    hostname: str,
    node_type: str,
    management_ip: str,
    created_by: uuid.UUID | None,
    *,
    ssh_port: int = DEFAULT_SSH_PORT,
) -> Any | None:
    """The new node's row; None when a live node has that host name already (two admins adding the
    same host at once: one node)."""
    return (
        await session.execute(
            insert(nodes)
            .values(
                id=node_id,
                hostname=hostname,
                type=node_type,
                management_ip=management_ip,
                ssh_port=ssh_port,
                created_by=created_by,
            )
            .on_conflict_do_nothing(index_elements=[nodes.c.hostname], index_where=text("status <> 'revoked'"))
            .returning(*nodes.c)
        )
    ).first()


async def mark_revoked(session: AsyncSession, node_id: uuid.UUID, now: datetime) -> Any:
    return (
        await session.execute(
            update(nodes)
            .where(nodes.c.id == node_id)
            .values(status=REVOKED, revoked_at=now, status_changed_at=now)
            .returning(*nodes.c)
        )
    ).one()


async def page(
    session: AsyncSession, status: str | None, cursor: str | None, limit: int
) -> tuple[Sequence[Any], str | None]:
    query: Select[Any] = select(nodes)
    if status is not None:
        query = query.where(nodes.c.status == status)
    return await pagination.oldest_first(session, query, nodes, cursor, limit)


async def update_record(session: AsyncSession, node_id: uuid.UUID, values: Mapping[str, Any]) -> Any:
    """Write `values` on the node's row; returns the row as written."""
    return (
        await session.execute(update(nodes).where(nodes.c.id == node_id).values(**values).returning(*nodes.c))
    ).one()


async def write_last_seen(session: AsyncSession, seen: Mapping[uuid.UUID, datetime]) -> set[uuid.UUID]:
    """Every node's last contact in one statement; returns the ids written. Not written: a node that
    is no longer online, or whose recorded contact is later already (another replica wrote it)."""
    ids = list(seen)
    written = await session.execute(_LAST_SEEN, {"ids": ids, "ts": [seen[i] for i in ids]})
    return set(written.scalars())


async def mark_offline(session: AsyncSession, cutoff: datetime, now: datetime) -> Sequence[Any]:
    """Every online node last seen before `cutoff` is offline from `now`; returns their (id, hostname,
    last_seen_at). The WHERE is re-checked on each row under its lock, so with several sweepers at once
    each node is returned by exactly one."""
    return (
        await session.execute(
            update(nodes)
            .where(nodes.c.status == ONLINE, nodes.c.last_seen_at < cutoff)
            .values(status=OFFLINE, status_changed_at=now)
            .returning(nodes.c.id, nodes.c.hostname, nodes.c.last_seen_at)
        )
    ).all()
