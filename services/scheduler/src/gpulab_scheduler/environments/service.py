"""Environments and the nodes attached to them. Never commits: the NATS edge owns the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import scheduler as c
from gpulab_core.contracts.common import Page
from gpulab_core.errors import Conflict, InvalidRequest, NotFound
from gpulab_scheduler.assignments import repository as assignment_rows
from gpulab_scheduler.environments import repository
from gpulab_scheduler.models import tables
from gpulab_scheduler.nodes import repository as node_rows

SOURCE = "scheduler"
FIELDS = (
    "name",
    "enforcement_mode",
    "tunnel_provider",
    "default_cpus",
    "default_ram_mb",
    "default_expiry_hours",
    "self_service",
    "max_hours",
)
# A PATCH may set these to null (no expiry, no longest request); the others may not be null.
NULLABLE = ("default_expiry_hours", "max_hours")


async def _emit(session: AsyncSession, event_type: str, payload: Any) -> None:
    await outbox.emit(session, tables.outbox, event_type, payload.model_dump(mode="json"), source=SOURCE)


def _to_environment(row: repository.Environment, node_ids: list[uuid.UUID]) -> c.Environment:
    return c.Environment(
        id=row.id,
        node_ids=node_ids,
        created_at=row.created_at,
        **{f: getattr(row, f) for f in FIELDS},
    )


async def _with_nodes(session: AsyncSession, row: repository.Environment) -> c.Environment:
    return _to_environment(row, (await repository.node_ids(session, [row.id]))[row.id])


async def live_row(session: AsyncSession, environment_id: uuid.UUID, *, lock: bool = False) -> repository.Environment:
    row = await repository.get_live(session, environment_id, lock=lock)
    if row is None:
        raise NotFound("no such environment")
    return row


async def create(session: AsyncSession, req: c.CreateEnvironmentRequest) -> c.Environment:
    row = await repository.add(session, req.actor_id, {f: getattr(req, f) for f in FIELDS})
    if row is None:
        raise Conflict(f"an environment named {req.name!r} exists already", code=c.ENVIRONMENT_EXISTS)
    changes = {f: getattr(req, f) for f in FIELDS}
    await _emit(
        session,
        c.ENVIRONMENT_CREATED,
        c.EnvironmentEvent(environment_id=row.id, name=row.name, actor_id=req.actor_id, changes=changes),
    )
    return _to_environment(row, [])


async def get(session: AsyncSession, req: c.EnvironmentIdRequest) -> c.Environment:
    return await _with_nodes(session, await live_row(session, req.id))


async def list_page(session: AsyncSession, req: Page) -> c.EnvironmentPage:
    rows, cursor = await repository.page(session, req.cursor, req.limit)
    attached = await repository.node_ids(session, [r.id for r in rows])  # one query for the page
    return c.EnvironmentPage(items=[_to_environment(r, attached[r.id]) for r in rows], next_cursor=cursor)


async def update_environment(session: AsyncSession, req: c.UpdateEnvironmentRequest) -> c.Environment:
    row = await live_row(session, req.id, lock=True)
    given = req.model_dump(exclude_unset=True, exclude={"id", "actor_id"})
    changes = {k: v for k, v in given.items() if k in FIELDS and v != getattr(row, k)}
    for required in (f for f in FIELDS if f not in NULLABLE):
        if required in changes and changes[required] is None:
            raise InvalidRequest(f"{required} cannot be null", details={"field": required})
    if not changes:
        return await _with_nodes(session, row)
    if "name" in changes:
        if await repository.name_taken(session, changes["name"], other_than=req.id):
            raise Conflict(f"an environment named {changes['name']!r} exists already", code=c.ENVIRONMENT_EXISTS)
    if changes.get("enforcement_mode") == "mig":
        for node_id in (await repository.node_ids(session, [req.id]))[req.id]:
            await _require_mig(session, node_id)
    row = await repository.change(session, req.id, changes)
    await _emit(
        session,
        c.ENVIRONMENT_UPDATED,
        c.EnvironmentEvent(environment_id=row.id, name=row.name, actor_id=req.actor_id, changes=changes),
    )
    return await _with_nodes(session, row)


async def delete_environment(session: AsyncSession, req: c.EnvironmentIdRequest) -> dict[str, str]:
    row = await live_row(session, req.id, lock=True)  # an assignment being made in it waits, or sees this
    active = await assignment_rows.count_active(session, environment_id=req.id)
    if active:
        raise Conflict(
            f"the environment has {active} active assignment(s); revoke them first", code=c.ENVIRONMENT_IN_USE
        )
    await repository.mark_deleted(session, req.id, datetime.now(UTC))
    await _emit(
        session, c.ENVIRONMENT_DELETED, c.EnvironmentEvent(environment_id=row.id, name=row.name, actor_id=req.actor_id)
    )
    return {}


async def _node(session: AsyncSession, node_id: uuid.UUID) -> node_rows.Node:
    row = await node_rows.get_live(session, node_id)
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
    if await repository.attach(session, req.id, req.node_id):
        await _emit(
            session,
            c.NODE_ATTACHED,
            c.EnvironmentNodeEvent(
                environment_id=req.id, environment_name=row.name, node_id=node.id, actor_id=req.actor_id
            ),
        )
    return await _with_nodes(session, row)


async def detach(session: AsyncSession, req: c.EnvironmentNodeRequest) -> c.Environment:
    """The node serves no new assignment of this environment; the ones it has go on until they end."""
    row = await live_row(session, req.id, lock=True)
    if not await repository.detach(session, req.id, req.node_id):
        raise NotFound("the node is not attached to this environment")
    await _emit(
        session,
        c.NODE_DETACHED,
        c.EnvironmentNodeEvent(
            environment_id=req.id, environment_name=row.name, node_id=req.node_id, actor_id=req.actor_id
        ),
    )
    return await _with_nodes(session, row)
