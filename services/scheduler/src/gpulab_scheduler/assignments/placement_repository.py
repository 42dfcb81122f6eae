"""Placement's SQL: what each node of an Environment, and one locked node, already hold in active
assignments. Never commits: the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import assignment_gpus, assignments, environment_nodes, nodes
from gpulab_scheduler.nodes.repository import Node


@dataclass(frozen=True, slots=True)
class Candidate:
    """A node of the environment with what its active assignments hold (placement's first guess)."""

    node: Node
    held_gpus: int
    used_cpus: int
    used_ram_mb: int


async def candidates(
    session: AsyncSession, environment_id: uuid.UUID, node_id: uuid.UUID | None = None
) -> list[Candidate]:
    """The environment's live nodes (only `node_id` if given) with what their active assignments
    hold, in one query."""
    held = (
        select(func.count())
        .select_from(assignment_gpus)
        .where(assignment_gpus.c.node_id == nodes.c.id, assignment_gpus.c.active.is_(True))
        .scalar_subquery()
    )
    active = and_(assignments.c.node_id == nodes.c.id, assignments.c.status == "active")
    used_cpus = select(func.coalesce(func.sum(assignments.c.cpus), 0)).where(active).scalar_subquery()
    used_ram = select(func.coalesce(func.sum(assignments.c.ram_mb), 0)).where(active).scalar_subquery()
    query = (
        select(nodes, held.label("held_gpus"), used_cpus.label("used_cpus"), used_ram.label("used_ram"))
        .join(environment_nodes, environment_nodes.c.node_id == nodes.c.id)
        .where(environment_nodes.c.environment_id == environment_id, nodes.c.deleted_at.is_(None))
    )
    if node_id is not None:
        query = query.where(nodes.c.id == node_id)
    return [
        Candidate(node=Node.of(r), held_gpus=int(r.held_gpus), used_cpus=int(r.used_cpus), used_ram_mb=int(r.used_ram))
        for r in (await session.execute(query)).all()
    ]


async def held_gpu_uuids(session: AsyncSession, node_id: uuid.UUID) -> set[str]:
    """The GPUs of the node that active assignments hold."""
    held = await session.scalars(
        select(assignment_gpus.c.gpu_uuid).where(
            assignment_gpus.c.node_id == node_id, assignment_gpus.c.active.is_(True)
        )
    )
    return set(held)


async def used_cpus_ram(session: AsyncSession, node_id: uuid.UUID) -> tuple[int, int]:
    """(CPUs, RAM in MiB) that the node's active assignments hold."""
    used = (
        await session.execute(
            select(
                func.coalesce(func.sum(assignments.c.cpus), 0), func.coalesce(func.sum(assignments.c.ram_mb), 0)
            ).where(assignments.c.node_id == node_id, assignments.c.status == "active")
        )
    ).one()
    return int(used[0]), int(used[1])
