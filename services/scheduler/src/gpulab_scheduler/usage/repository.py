"""Every SQL statement of GPU-hour accounting (docs/adr/0020): a report over a time range, and the
totals the metrics collector shows. One statement each, grouped in the database. Never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, FromClause, Select, Text, and_, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import assignment_gpus, assignments, environment_nodes, environments, nodes, requests


@dataclass(frozen=True, slots=True)
class UsageRow:
    key_id: uuid.UUID | None
    key_name: str | None
    gpu_seconds: float
    assignments: int


@dataclass(frozen=True, slots=True)
class GpuSeconds:
    """GPU-seconds of every assignment so far (ended and running), per group and Environment name."""

    group_id: uuid.UUID | None
    environment: str
    gpu_seconds: float


@dataclass(frozen=True, slots=True)
class EnvironmentGauges:
    environment: str
    gpus_total: int  # the GPUs of its online nodes
    gpus_held: int  # held by its active assignments
    requests_queued: int


def _gpus() -> ColumnElement[int]:
    """The number of GPUs of the assignment (its assignment_gpus rows, by their primary key)."""
    return (
        select(func.count())
        .select_from(assignment_gpus)
        .where(assignment_gpus.c.assignment_id == assignments.c.id)
        .scalar_subquery()
    )


def _seconds(start: ColumnElement[datetime], end: ColumnElement[datetime]) -> ColumnElement[float]:
    return cast(func.greatest(func.extract("epoch", end - start), 0), Float)


async def report(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    now: datetime,
    group_by: str,
    user_id: uuid.UUID | None,
) -> list[UsageRow]:
    rows = await session.execute(report_query(since, until, now, group_by, user_id))
    return [UsageRow(r.key_id, r.key_name, float(r.gpu_seconds or 0.0), r.assignments) for r in rows]


def report_query(
    since: datetime, until: datetime, now: datetime, group_by: str, user_id: uuid.UUID | None
) -> Select[Any]:
    """GPU-seconds in [since, until) per key: each assignment's [created_at, ended_at or `now`) cut to
    the range, times its GPUs. An assignment counts when it ran during the range or started in it (a
    zero-length one that started in it counts with 0 hours; one that ended exactly at `since` does not)."""
    end = func.coalesce(assignments.c.ended_at, now)
    overlap = _seconds(func.greatest(assignments.c.created_at, since), func.least(end, until)) * _gpus()
    # Written as three ORs on indexed columns (ix_assignments_ended, ix_assignments_created) so that
    # an old range reads only what touches it.
    touches = and_(
        assignments.c.created_at < until,
        or_(assignments.c.ended_at > since, assignments.c.ended_at.is_(None), assignments.c.created_at >= since),
    )
    if user_id is not None:
        touches = and_(touches, assignments.c.user_id == user_id)
    seconds = func.sum(overlap).label("gpu_seconds")
    count = func.count().label("assignments")
    key: ColumnElement[uuid.UUID | None]
    name: ColumnElement[str | None]
    source: FromClause = assignments
    if group_by == "user":
        key = assignments.c.user_id
        # A user whose email changed is named by their latest assignment's.
        name = func.array_agg(aggregate_order_by(assignments.c.user_email, assignments.c.created_at.desc()))[1]
    elif group_by == "environment":
        key = assignments.c.environment_id
        source = assignments.outerjoin(environments, environments.c.id == assignments.c.environment_id)
        name = func.max(environments.c.name)
    elif group_by == "node":
        key = assignments.c.node_id
        source = assignments.outerjoin(nodes, nodes.c.id == assignments.c.node_id)
        name = func.max(nodes.c.hostname)
    else:  # group: identity names them
        key = assignments.c.group_id
        name = literal(None, type_=Text)
    query = select(key.label("key_id"), name.label("key_name"), seconds, count).select_from(source).where(touches)
    return query.group_by(key).order_by(seconds.desc(), key)


async def gpu_seconds_so_far(session: AsyncSession, now: datetime) -> list[GpuSeconds]:
    """The counter's values: every assignment's GPU-seconds from its start to its end (or `now`)."""
    seconds = func.sum(_seconds(assignments.c.created_at, func.coalesce(assignments.c.ended_at, now)) * _gpus())
    query = (
        select(assignments.c.group_id, environments.c.name, seconds.label("gpu_seconds"))
        .select_from(assignments.join(environments, environments.c.id == assignments.c.environment_id))
        .group_by(assignments.c.group_id, environments.c.name)
    )
    rows = await session.execute(query)
    return [GpuSeconds(r.group_id, r.name, float(r.gpu_seconds or 0.0)) for r in rows]


async def environment_gauges(session: AsyncSession) -> list[EnvironmentGauges]:
    """Per live Environment: the GPUs of its online nodes, those held, and the requests queued."""
    gpus_of_node = func.coalesce(func.jsonb_array_length(nodes.c.hardware["gpus"]), 0)
    total = (
        select(func.coalesce(func.sum(gpus_of_node), 0))
        .select_from(environment_nodes.join(nodes, nodes.c.id == environment_nodes.c.node_id))
        .where(
            environment_nodes.c.environment_id == environments.c.id,
            nodes.c.status == "online",
            nodes.c.deleted_at.is_(None),
        )
        .scalar_subquery()
    )
    held = (
        select(func.count())
        .select_from(assignment_gpus.join(assignments, assignments.c.id == assignment_gpus.c.assignment_id))
        .where(
            assignments.c.environment_id == environments.c.id,
            assignments.c.status == "active",
            assignment_gpus.c.active,
        )
        .scalar_subquery()
    )
    queued = (
        select(func.count())
        .select_from(requests)
        .where(requests.c.environment_id == environments.c.id, requests.c.status == "queued")
        .scalar_subquery()
    )
    query = select(environments.c.name, total.label("total"), held.label("held"), queued.label("queued")).where(
        environments.c.deleted_at.is_(None)
    )
    rows = await session.execute(query)
    return [EnvironmentGauges(r.name, int(r.total), r.held, r.queued) for r in rows]
