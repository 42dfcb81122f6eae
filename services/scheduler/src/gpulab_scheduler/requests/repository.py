"""Every SQL statement on self-service requests and the queue's view of an Environment's nodes.
Never commits: the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import pagination
from gpulab_scheduler.environments.repository import Environment
from gpulab_scheduler.models import assignment_gpus, assignments, environment_nodes, environments, nodes, requests

OPEN = ("pending_approval", "queued")


@dataclass(frozen=True, slots=True)
class Request:
    id: uuid.UUID
    seq: int
    kind: str
    user_id: uuid.UUID
    user_email: str
    environment_id: uuid.UUID
    environment_name: str
    group_id: uuid.UUID | None
    assignment_id: uuid.UUID | None
    gpus: int
    cpus: int
    ram_mb: int
    hours: int
    note: str | None
    status: str
    reason: str | None
    created_at: datetime
    queued_at: datetime | None
    decided_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Request:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class Running:
    """An active assignment on a node of the Environment: what the queue waits for."""

    node_id: uuid.UUID
    gpus: int
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class EnvironmentNode:
    """An online node attached to an Environment, with its hardware report (for its GPU count)."""

    environment_id: uuid.UUID
    id: uuid.UUID
    hostname: str
    hardware: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class QueueSize:
    requests: int
    gpus: int


_NAMED: Select[Any] = select(requests, environments.c.name.label("environment_name")).join(
    environments, environments.c.id == requests.c.environment_id
)


async def add(session: AsyncSession, values: dict[str, Any]) -> Request:
    await session.execute(requests.insert().values(**values))
    found = await get(session, values["id"])
    assert found is not None
    return found


async def get(
    session: AsyncSession, request_id: uuid.UUID, user_id: uuid.UUID | None = None, *, lock: bool = False
) -> Request | None:
    """The request; with `user_id` only if it is that user's; `lock`: under its row lock."""
    query = _NAMED.where(requests.c.id == request_id)
    if user_id is not None:
        query = query.where(requests.c.user_id == user_id)
    if lock:
        query = query.with_for_update(of=requests)
    row = (await session.execute(query)).first()
    return Request.of(row) if row else None


async def page(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    user_id: uuid.UUID | None = None,
    environment_id: uuid.UUID | None = None,
    status: str | None = None,
) -> tuple[list[Request], str | None]:
    query = _NAMED
    for column, value in (
        (requests.c.user_id, user_id),
        (requests.c.environment_id, environment_id),
        (requests.c.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    rows, next_cursor = await pagination.oldest_first(session, query, requests, cursor, limit)
    return [Request.of(r) for r in rows], next_cursor


async def queued(session: AsyncSession, environment_id: uuid.UUID, limit: int | None = None) -> list[Request]:
    """The Environment's queue in submission order (its first `limit` requests)."""
    query = _NAMED.where(requests.c.environment_id == environment_id, requests.c.status == "queued")
    return [Request.of(r) for r in await session.execute(query.order_by(requests.c.seq).limit(limit))]


async def change_status(
    session: AsyncSession,
    request_id: uuid.UUID,
    status: str,
    *,
    was: Sequence[str],
    decided: bool,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
    assignment_id: uuid.UUID | None = None,
) -> bool:
    """Moves the request to `status` if it is in one of `was` (re-checked under the row's lock, so that
    of two replicas or two admins exactly one moves it); False when it was not."""
    values: dict[str, Any] = {"status": status}
    if decided:
        values.update(decided_at=func.now(), decided_by=actor_id)
    if status == "queued":
        values["queued_at"] = func.now()
    if reason is not None:
        values["reason"] = reason
    if assignment_id is not None:
        values["assignment_id"] = assignment_id
    moved = await session.execute(
        update(requests)
        .where(requests.c.id == request_id, requests.c.status.in_(was))
        .values(**values)
        .returning(requests.c.id)
    )
    return moved.first() is not None


async def queue_sizes(session: AsyncSession, environment_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, QueueSize]:
    if not environment_ids:
        return {}
    query = (
        select(requests.c.environment_id, func.count(), func.coalesce(func.sum(requests.c.gpus), 0))
        .where(requests.c.environment_id.in_(environment_ids), requests.c.status == "queued")
        .group_by(requests.c.environment_id)
    )
    return {r[0]: QueueSize(int(r[1]), int(r[2])) for r in await session.execute(query)}


async def environments_with_queue(session: AsyncSession) -> list[uuid.UUID]:
    query = select(requests.c.environment_id).where(requests.c.status == "queued").distinct()
    return list(await session.scalars(query))


async def lock_environment(session: AsyncSession, environment_id: uuid.UUID, *, wait: bool) -> bool:
    """The Environment's queue lock (transaction-scoped): one dispatch at a time per Environment,
    whatever the replicas. `wait=False`: False at once when another holds it."""
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    got = await session.scalar(
        text(f"SELECT {function}(hashtextextended(:key, 7))"), {"key": f"queue:{environment_id}"}
    )
    return got is None or bool(got)


async def self_service_environments(session: AsyncSession) -> list[Environment]:
    """The live Environments users may request GPUs in, by name."""
    query = (
        select(environments)
        .where(environments.c.deleted_at.is_(None), environments.c.self_service != "off")
        .order_by(environments.c.name)
    )
    return [Environment.of(r) for r in await session.execute(query)]


async def environment_nodes_online(
    session: AsyncSession, environment_ids: Sequence[uuid.UUID]
) -> list[EnvironmentNode]:
    """Each online, live node attached to the Environments, in one query."""
    if not environment_ids:
        return []
    query = (
        select(environment_nodes.c.environment_id, nodes.c.id, nodes.c.hostname, nodes.c.hardware)
        .join(nodes, nodes.c.id == environment_nodes.c.node_id)
        .where(
            environment_nodes.c.environment_id.in_(environment_ids),
            nodes.c.status == "online",
            nodes.c.deleted_at.is_(None),
        )
    )
    return [EnvironmentNode(r.environment_id, r.id, r.hostname, r.hardware) for r in await session.execute(query)]


async def running_on(session: AsyncSession, node_ids: Sequence[uuid.UUID]) -> list[Running]:
    """The active assignments on the nodes (of any Environment: a node may serve several), with their
    GPU counts, in one query."""
    if not node_ids:
        return []
    gpus = (
        select(func.count())
        .select_from(assignment_gpus)
        .where(assignment_gpus.c.assignment_id == assignments.c.id, assignment_gpus.c.active)
        .scalar_subquery()
    )
    query = select(assignments.c.node_id, gpus.label("gpus"), assignments.c.created_at, assignments.c.expires_at).where(
        assignments.c.node_id.in_(node_ids), assignments.c.status == "active"
    )
    return [Running(r.node_id, int(r.gpus), r.created_at, r.expires_at) for r in await session.execute(query)]
