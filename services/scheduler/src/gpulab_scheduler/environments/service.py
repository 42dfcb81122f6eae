"""Environments and the nodes attached to them. Never commits: the NATS edge owns the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox, pagination
from gpulab_core.contracts import scheduler as c
from gpulab_core.contracts.common import Page
from gpulab_core.errors import Conflict, InvalidRequest, NotFound
from gpulab_scheduler.models import assignments, environment_nodes, environments, nodes, tables

SOURCE = "scheduler"
FIELDS = ("name", "enforcement_mode", "tunnel_provider", "default_cpus", "default_ram_mb", "default_expiry_hours")


async def _emit(session: AsyncSession, event_type: str, payload: Any) -> None:
    await outbox.emit(session, tables.outbox, event_type, payload.model_dump(mode="json"), source=SOURCE)


async def _node_ids(session: AsyncSession, environment_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.execute(
        select(environment_nodes.c.node_id)
        .where(environment_nodes.c.environment_id == environment_id)
        .order_by(environment_nodes.c.attached_at, environment_nodes.c.node_id)
    )
    return list(rows.scalars())


async def _to_environment(session: AsyncSession, row: Any) -> c.Environment:
    return c.Environment(
        id=row.id,
        node_ids=await _node_ids(session, row.id),
        created_at=row.created_at,
        **{f: getattr(row, f) for f in FIELDS},
    )


async def live_row(session: AsyncSession, environment_id: uuid.UUID, *, lock: bool = False) -> Any:
    query = select(environments).where(environments.c.id == environment_id, environments.c.deleted_at.is_(None))
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound("no such environment")
    return row


async def create(session: AsyncSession, req: c.CreateEnvironmentRequest) -> c.Environment:
    row = (
        await session.execute(
            insert(environments)
            .values(id=uuid.uuid4(), created_by=req.actor_id, **{f: getattr(req, f) for f in FIELDS})
            .on_conflict_do_nothing(index_elements=[environments.c.name], index_where=text("deleted_at IS NULL"))
            .returning(*environments.c)
        )
    ).first()
    if row is None:
        raise Conflict(f"an environment named {req.name!r} exists already", code=c.ENVIRONMENT_EXISTS)
    changes = {f: getattr(req, f) for f in FIELDS}
    await _emit(
        session,
        c.ENVIRONMENT_CREATED,
        c.EnvironmentEvent(environment_id=row.id, name=row.name, actor_id=req.actor_id, changes=changes),
    )
    return await _to_environment(session, row)


async def get(session: AsyncSession, req: c.EnvironmentIdRequest) -> c.Environment:
    return await _to_environment(session, await live_row(session, req.id))


async def list_page(session: AsyncSession, req: Page) -> c.EnvironmentPage:
    query = select(environments).where(environments.c.deleted_at.is_(None))
    rows, cursor = await pagination.oldest_first(session, query, environments, req.cursor, req.limit)
    return c.EnvironmentPage(items=[await _to_environment(session, r) for r in rows], next_cursor=cursor)


async def update_environment(session: AsyncSession, req: c.UpdateEnvironmentRequest) -> c.Environment:
    row = await live_row(session, req.id, lock=True)
    given = req.model_dump(exclude_unset=True, exclude={"id", "actor_id"})
    if "default_expiry_hours" not in req.model_fields_set:
        given.pop("default_expiry_hours", None)
    changes = {k: v for k, v in given.items() if k in FIELDS and v != getattr(row, k)}
    for required in ("name", "enforcement_mode", "tunnel_provider", "default_cpus", "default_ram_mb"):
        if required in changes and changes[required] is None:
            raise InvalidRequest(f"{required} cannot be null", details={"field": required})
    if not changes:
        return await _to_environment(session, row)
    if "name" in changes:
        taken = await session.scalar(
            select(func.count())
            .select_from(environments)
            .where(
                environments.c.name == changes["name"], environments.c.deleted_at.is_(None), environments.c.id != req.id
            )
        )
        if taken:
            raise Conflict(f"an environment named {changes['name']!r} exists already", code=c.ENVIRONMENT_EXISTS)
    if changes.get("enforcement_mode") == "mig":
        for node_id in await _node_ids(session, req.id):
            await _require_mig(session, node_id)
    row = (
        await session.execute(
            update(environments).where(environments.c.id == req.id).values(**changes).returning(*environments.c)
        )
    ).one()
    await _emit(
        session,
        c.ENVIRONMENT_UPDATED,
        c.EnvironmentEvent(environment_id=row.id, name=row.name, actor_id=req.actor_id, changes=changes),
    )
    return await _to_environment(session, row)


async def delete_environment(session: AsyncSession, req: c.EnvironmentIdRequest) -> dict[str, str]:
    row = await live_row(session, req.id, lock=True)  # an assignment being made in it waits, or sees this
    active = await session.scalar(
        select(func.count())
        .select_from(assignments)
        .where(assignments.c.environment_id == req.id, assignments.c.status == "active")
    )
    if active:
        raise Conflict(
            f"the environment has {active} active assignment(s); revoke them first", code=c.ENVIRONMENT_IN_USE
        )
    await session.execute(update(environments).where(environments.c.id == req.id).values(deleted_at=datetime.now(UTC)))
    await session.execute(delete(environment_nodes).where(environment_nodes.c.environment_id == req.id))
    await _emit(
        session, c.ENVIRONMENT_DELETED, c.EnvironmentEvent(environment_id=row.id, name=row.name, actor_id=req.actor_id)
    )
    return {}


async def _node(session: AsyncSession, node_id: uuid.UUID) -> Any:
    row = (await session.execute(select(nodes).where(nodes.c.id == node_id, nodes.c.deleted_at.is_(None)))).first()
    if row is None:
        raise NotFound("no such node")
    return row


async def _require_mig(session: AsyncSession, node_id: uuid.UUID) -> None:
    node = await _node(session, node_id)
    gpus = (node.hardware or {}).get("gpus", [])
    if not any(g.get("mig_capable") for g in gpus):
        raise Conflict(
            f"node {node.hostname} has reported no MIG-capable GPU; it cannot serve a `mig` environment",
            code=c.NODE_NOT_MIG_CAPABLE,
        )


async def attach(session: AsyncSession, req: c.EnvironmentNodeRequest) -> c.Environment:
    row = await live_row(session, req.id, lock=True)
    node = await _node(session, req.node_id)
    if row.enforcement_mode == "mig":
        await _require_mig(session, req.node_id)
    added = await session.scalar(
        insert(environment_nodes)
        .values(environment_id=req.id, node_id=req.node_id)
        .on_conflict_do_nothing()
        .returning(environment_nodes.c.node_id)
    )
    if added is not None:
        await _emit(
            session,
            c.NODE_ATTACHED,
            c.EnvironmentNodeEvent(
                environment_id=req.id, environment_name=row.name, node_id=node.id, actor_id=req.actor_id
            ),
        )
    return await _to_environment(session, row)


async def detach(session: AsyncSession, req: c.EnvironmentNodeRequest) -> c.Environment:
    """The node serves no new assignment of this environment; the ones it has go on until they end."""
    row = await live_row(session, req.id, lock=True)
    removed = await session.scalar(
        delete(environment_nodes)
        .where(environment_nodes.c.environment_id == req.id, environment_nodes.c.node_id == req.node_id)
        .returning(environment_nodes.c.node_id)
    )
    if removed is None:
        raise NotFound("the node is not attached to this environment")
    await _emit(
        session,
        c.NODE_DETACHED,
        c.EnvironmentNodeEvent(
            environment_id=req.id, environment_name=row.name, node_id=req.node_id, actor_id=req.actor_id
        ),
    )
    return await _to_environment(session, row)
