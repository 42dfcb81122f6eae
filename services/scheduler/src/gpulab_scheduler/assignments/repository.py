"""Every SQL statement on assignments and their GPUs, apart from placement's counts
(placement_repository.py) and the users' Linux account names (usernames_repository.py). Never
commits: the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import pagination
from gpulab_scheduler.models import assignment_gpus, assignments, environments, nodes


@dataclass(frozen=True, slots=True)
class Assignment:
    """An assignment with the names the user sees next to it (None: that row is missing)."""

    id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    environment_id: uuid.UUID
    environment_name: str | None
    node_id: uuid.UUID
    node_hostname: str | None
    placement: str
    cpus: int
    ram_mb: int
    linux_username: str
    status: str  # active | revoked | expired | released
    created_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    node_state: str  # pending | applied | failed
    node_message: str | None
    node_access_port: int | None
    request_id: uuid.UUID | None
    group_id: uuid.UUID | None

    @classmethod
    def of(cls, row: Row[Any]) -> Assignment:
        return cls(
            id=row.id,
            user_id=row.user_id,
            user_email=row.user_email,
            environment_id=row.environment_id,
            environment_name=row.environment_name,
            node_id=row.node_id,
            node_hostname=row.node_hostname,
            placement=row.placement,
            cpus=row.cpus,
            ram_mb=row.ram_mb,
            linux_username=row.linux_username,
            status=row.status,
            created_by=row.created_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            ended_at=row.ended_at,
            end_reason=row.end_reason,
            node_state=row.node_state,
            node_message=row.node_message,
            node_access_port=row.node_access_port,
            request_id=row.request_id,
            group_id=row.group_id,
        )


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU of an assignment, as the node reported it when it was placed."""

    index: int
    uuid: str
    name: str | None
    memory_mb: int | None


@dataclass(frozen=True, slots=True)
class Ended:
    """An assignment that has just ended: who and where, for its event."""

    id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    node_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Expiring:
    """An assignment to warn of its expiry."""

    id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    node_id: uuid.UUID
    expires_at: datetime


# Host names and Environment names live in this schema already (the node projection, environments),
# both rows are kept when a node or an Environment is deleted, and an Environment renamed shows its new
# name. Outer joins, so that a missing row (which nothing deletes) fails the reply loudly instead of
# hiding the assignment from its list.
_NAMED: Select[Any] = (
    select(
        assignments,
        nodes.c.hostname.label("node_hostname"),
        environments.c.name.label("environment_name"),
    )
    .select_from(assignments)
    .outerjoin(nodes, nodes.c.id == assignments.c.node_id)
    .outerjoin(environments, environments.c.id == assignments.c.environment_id)
)


async def get(session: AsyncSession, assignment_id: uuid.UUID, user_id: uuid.UUID | None = None) -> Assignment | None:
    """The assignment; with `user_id`, only if it is that user's."""
    query = _NAMED.where(assignments.c.id == assignment_id)
    if user_id is not None:
        query = query.where(assignments.c.user_id == user_id)
    row = (await session.execute(query)).first()
    return Assignment.of(row) if row else None


async def page(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    user_id: uuid.UUID | None = None,
    environment_id: uuid.UUID | None = None,
    node_id: uuid.UUID | None = None,
    status: str | None = None,
) -> tuple[list[Assignment], str | None]:
    """One page of the assignments matching every filter given, oldest first."""
    query = _NAMED
    for column, value in (
        (assignments.c.user_id, user_id),
        (assignments.c.environment_id, environment_id),
        (assignments.c.node_id, node_id),
        (assignments.c.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    rows, next_cursor = await pagination.oldest_first(session, query, assignments, cursor, limit)
    return [Assignment.of(r) for r in rows], next_cursor


async def gpus_of(session: AsyncSession, assignment_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Gpu]]:
    """The GPUs of each assignment in index order, in one query for all of them."""
    gpus: dict[uuid.UUID, list[Gpu]] = defaultdict(list)
    if not assignment_ids:
        return gpus
    found = await session.execute(
        select(assignment_gpus)
        .where(assignment_gpus.c.assignment_id.in_(assignment_ids))
        .order_by(assignment_gpus.c.assignment_id, assignment_gpus.c.gpu_index)
    )
    for g in found:
        gpus[g.assignment_id].append(
            Gpu(index=g.gpu_index, uuid=g.gpu_uuid, name=g.gpu_name, memory_mb=g.gpu_memory_mb)
        )
    return gpus


async def count_active(session: AsyncSession, *, environment_id: uuid.UUID) -> int:
    """How many active assignments the environment has."""
    active = await session.scalar(
        select(func.count())
        .select_from(assignments)
        .where(assignments.c.environment_id == environment_id, assignments.c.status == "active")
    )
    return int(active or 0)


async def add(
    session: AsyncSession,
    *,
    assignment_id: uuid.UUID,
    user_id: uuid.UUID,
    user_email: str,
    environment_id: uuid.UUID,
    node_id: uuid.UUID,
    placement: str,
    cpus: int,
    ram_mb: int,
    linux_username: str,
    created_by: uuid.UUID | None,
    expires_at: datetime | None,
    gpus: Sequence[Mapping[str, Any]],
    request_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
) -> datetime:
    """The assignment and its exact GPUs (`gpus`: entries of the node's hardware report); returns
    its `created_at` (the transaction's time)."""
    created_at: datetime | None = await session.scalar(
        assignments.insert()
        .values(
            id=assignment_id,
            user_id=user_id,
            user_email=user_email,
            environment_id=environment_id,
            node_id=node_id,
            placement=placement,
            cpus=cpus,
            ram_mb=ram_mb,
            linux_username=linux_username,
            created_by=created_by,
            expires_at=expires_at,
            request_id=request_id,
            group_id=group_id,
        )
        .returning(assignments.c.created_at)
    )
    await session.execute(
        assignment_gpus.insert(),
        [
            {
                "assignment_id": assignment_id,
                "gpu_uuid": g["uuid"],
                "gpu_index": g["index"],
                "node_id": node_id,
                # The node's report as placement read it (inventory's `Gpu`: both always present).
                "gpu_name": g.get("name"),
                "gpu_memory_mb": g.get("memory_mb"),
            }
            for g in gpus
        ],
    )
    assert created_at is not None
    return created_at


async def end_active(
    session: AsyncSession,
    status: str,
    reason: str,
    now: datetime,
    *,
    assignment_id: uuid.UUID | None = None,
    node_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    due: bool = False,
) -> list[Ended]:
    """End every active assignment matching every filter given (`due`: its expiry has come) and free
    its GPUs. The UPDATE re-checks `status = 'active'` on each row under its lock, so with several
    replicas (or a revoke racing the expiry) an assignment ends exactly once."""
    conditions: list[ColumnElement[bool]] = [assignments.c.status == "active"]
    if assignment_id is not None:
        conditions.append(assignments.c.id == assignment_id)
    if node_id is not None:
        conditions.append(assignments.c.node_id == node_id)
    if user_id is not None:
        conditions.append(assignments.c.user_id == user_id)
    if due:
        conditions.append(assignments.c.expires_at <= func.now())
    ended = (
        await session.execute(
            update(assignments)
            .where(and_(*conditions))
            .values(status=status, ended_at=now, end_reason=reason)
            .returning(assignments.c.id, assignments.c.user_id, assignments.c.user_email, assignments.c.node_id)
        )
    ).all()
    if not ended:
        return []
    ids = [r.id for r in ended]
    await session.execute(update(assignment_gpus).where(assignment_gpus.c.assignment_id.in_(ids)).values(active=False))
    return [Ended(id=r.id, user_id=r.user_id, user_email=r.user_email, node_id=r.node_id) for r in ended]


async def extend(session: AsyncSession, assignment_id: uuid.UUID, hours: int) -> datetime:
    """Moves an active assignment's expiry `hours` later (its warning is due again); the new expiry."""
    new: datetime | None = await session.scalar(
        update(assignments)
        .where(assignments.c.id == assignment_id, assignments.c.status == "active")
        .values(expires_at=assignments.c.expires_at + timedelta(hours=hours), expiry_warned_at=None)
        .returning(assignments.c.expires_at)
    )
    assert new is not None, "extend() of an assignment not active or without an expiry"
    return new


async def lock_mine(session: AsyncSession, assignment_id: uuid.UUID, user_id: uuid.UUID) -> Assignment | None:
    """The user's assignment under its row lock (an extension and a release take turns)."""
    locked = await session.execute(
        select(assignments.c.id)
        .where(assignments.c.id == assignment_id, assignments.c.user_id == user_id)
        .with_for_update()
    )
    if locked.first() is None:
        return None
    return await get(session, assignment_id, user_id)


async def gpu_count(session: AsyncSession, assignment_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(assignment_gpus).where(assignment_gpus.c.assignment_id == assignment_id)
        )
        or 0
    )


async def mark_expiry_warned(session: AsyncSession, now: datetime, within: timedelta) -> list[Expiring]:
    """The active assignments that expire within `within` of `now` and were not warned yet, marked
    warned (each returned by exactly one caller, however many replicas ask at once)."""
    due = (
        await session.execute(
            update(assignments)
            .where(
                assignments.c.status == "active",
                assignments.c.expiry_warned_at.is_(None),
                assignments.c.expires_at.is_not(None),
                assignments.c.expires_at > now,
                assignments.c.expires_at <= now + within,
            )
            .values(expiry_warned_at=now)
            .returning(
                assignments.c.id,
                assignments.c.user_id,
                assignments.c.user_email,
                assignments.c.node_id,
                assignments.c.expires_at,
            )
        )
    ).all()
    return [
        Expiring(id=r.id, user_id=r.user_id, user_email=r.user_email, node_id=r.node_id, expires_at=r.expires_at)
        for r in due
    ]


async def lock_for_report(
    session: AsyncSession, assignment_id: uuid.UUID, node_id: uuid.UUID, reported_at: datetime
) -> Assignment | None:
    """The assignment under its row lock, if it is on `node_id` and has no report as new as
    `reported_at` (None otherwise: the report changes nothing)."""
    row = (
        await session.execute(
            _NAMED.where(
                assignments.c.id == assignment_id,
                assignments.c.node_id == node_id,
                or_(assignments.c.node_state_at.is_(None), assignments.c.node_state_at < reported_at),
            ).with_for_update(of=assignments)
        )
    ).first()
    return Assignment.of(row) if row else None


async def record_report(
    session: AsyncSession,
    assignment_id: uuid.UUID,
    *,
    state: str,
    message: str | None,
    access_port: int | None,
    reported_at: datetime,
) -> None:
    await session.execute(
        update(assignments)
        .where(assignments.c.id == assignment_id)
        .values(node_state=state, node_message=message, node_access_port=access_port, node_state_at=reported_at)
    )
