"""Every SQL statement of the desired-state projection."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

from gpulab_inventory.models import desired_assignments, ended_assignments, nodes, user_ssh_keys


async def _lock(session: AsyncSession, name: str) -> None:
    # Held until the transaction ends; two names hashing alike only make unrelated events take turns.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))


async def lock_assignment(session: AsyncSession, assignment_id: uuid.UUID) -> None:
    """Created and ended of one assignment, applied by two replicas at once, take turns."""
    await _lock(session, f"gpulab-inventory:assignment:{assignment_id}")


async def lock_node_gpus(session: AsyncSession, node_id: uuid.UUID) -> None:
    """Two assignments created on one node, applied at once by two replicas, take turns: each sees the
    other's row, so that of two on one GPU only the newer stays (service.supersede)."""
    await _lock(session, f"gpulab-inventory:node-gpus:{node_id}")


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """A new assignment and a change of its user's keys, applied at once, take turns: either the
    assignment reads the new keys, or the key change sees (and rewrites) the new assignment."""
    await _lock(session, f"gpulab-inventory:ssh-keys:{user_id}")


async def has_ended(session: AsyncSession, assignment_id: uuid.UUID) -> bool:
    found = await session.execute(
        select(ended_assignments.c.assignment_id).where(ended_assignments.c.assignment_id == assignment_id)
    )
    return found.first() is not None


async def node_of(session: AsyncSession, assignment_id: uuid.UUID) -> uuid.UUID | None:
    found = await session.execute(
        select(desired_assignments.c.node_id).where(desired_assignments.c.assignment_id == assignment_id)
    )
    return found.scalar_one_or_none()


async def put_assignment(
    session: AsyncSession,
    assignment_id: uuid.UUID,
    node_id: uuid.UUID,
    user_id: uuid.UUID,
    spec: dict[str, Any],
    created_at: datetime,
) -> None:
    values = {"node_id": node_id, "user_id": user_id, "spec": spec, "created_at": created_at}
    stmt = insert(desired_assignments).values(assignment_id=assignment_id, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[desired_assignments.c.assignment_id], set_={**values, "updated_at": func.now()}
        )
    )


async def on_node(session: AsyncSession, node_id: uuid.UUID) -> list[Any]:
    """(assignment_id, created_at, spec) of every assignment in the node's desired state."""
    d = desired_assignments
    found = await session.execute(select(d.c.assignment_id, d.c.created_at, d.c.spec).where(d.c.node_id == node_id))
    return list(found.all())


async def spec_of(session: AsyncSession, assignment_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, Any]] | None:
    """(node, spec) of the assignment's row, if it has one."""
    found = await session.execute(
        select(desired_assignments.c.node_id, desired_assignments.c.spec).where(
            desired_assignments.c.assignment_id == assignment_id
        )
    )
    row = found.first()
    return (row.node_id, row.spec) if row else None


async def set_spec(session: AsyncSession, assignment_id: uuid.UUID, spec: dict[str, Any]) -> None:
    await session.execute(
        update(desired_assignments)
        .where(desired_assignments.c.assignment_id == assignment_id)
        .values(spec=spec, updated_at=func.now())
    )


async def end_assignment(
    session: AsyncSession, assignment_id: uuid.UUID, node_id: uuid.UUID, ended_at: datetime
) -> list[uuid.UUID]:
    """Record that it ended (for a created event still to come) and drop its row; returns the node
    the row was on, if there was one."""
    await session.execute(
        insert(ended_assignments)
        .values(assignment_id=assignment_id, node_id=node_id, ended_at=ended_at)
        .on_conflict_do_nothing()
    )
    gone = await session.execute(
        delete(desired_assignments)
        .where(desired_assignments.c.assignment_id == assignment_id)
        .returning(desired_assignments.c.node_id)
    )
    return list(gone.scalars())


async def user_keys(session: AsyncSession, user_id: uuid.UUID) -> list[str] | None:
    """The user's keys as identity last said, or None when no change of them has been seen."""
    found = await session.execute(select(user_ssh_keys.c.public_keys).where(user_ssh_keys.c.user_id == user_id))
    keys = found.scalar_one_or_none()
    return None if keys is None else list(keys)


async def store_keys(session: AsyncSession, user_id: uuid.UUID, keys: list[str], version: int) -> bool:
    """Keep the user's keys if `version` is newer than what is kept; True if it was."""
    stmt = insert(user_ssh_keys).values(user_id=user_id, public_keys=keys, version=version)
    stored = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[user_ssh_keys.c.user_id],
            set_={"public_keys": stmt.excluded.public_keys, "version": stmt.excluded.version, "updated_at": func.now()},
            where=user_ssh_keys.c.version < stmt.excluded.version,
        ).returning(user_ssh_keys.c.user_id)
    )
    return stored.first() is not None


async def rewrite_keys(session: AsyncSession, user_id: uuid.UUID, keys: list[str]) -> list[uuid.UUID]:
    """Put `keys` into every assignment of the user that holds others; returns the nodes whose desired
    state changed."""
    path = bindparam("path", ["ssh_public_keys"], type_=ARRAY(Text))
    value = bindparam("keys", keys, type_=JSONB)
    changed = await session.execute(
        update(desired_assignments)
        .where(
            desired_assignments.c.user_id == user_id,
            desired_assignments.c.spec["ssh_public_keys"].is_distinct_from(value),
        )
        .values(spec=func.jsonb_set(desired_assignments.c.spec, path, value), updated_at=func.now())
        .returning(desired_assignments.c.node_id)
    )
    return list(changed.scalars())


async def lock_node(session: AsyncSession, node_id: uuid.UUID) -> None:
    """Fitting one node's reply (desired/fitting.py), by two replicas at once, takes turns. Taken last,
    after any assignment or user lock, and for several nodes in id order: no cycle."""
    await _lock(session, f"gpulab-inventory:node-reply:{node_id}")


async def node_assignments(session: AsyncSession, node_id: uuid.UUID) -> list[Any]:
    """(assignment_id, spec, withheld) of every desired assignment of the node."""
    d = desired_assignments
    query = select(d.c.assignment_id, d.c.spec, d.c.withheld).where(d.c.node_id == node_id)
    return list((await session.execute(query.order_by(d.c.assignment_id))).all())


async def node_desired_state(session: AsyncSession, node_id: uuid.UUID) -> list[Any]:
    """(spec, reported_state, reported_message, reported_access_port) of each assignment the node's
    heartbeat reply carries, in assignment id order. Withheld ones are left out: the node's state would
    not fit one reply (desired/fitting.py); recorded as failed, never sent, their reports ignored."""
    d = desired_assignments
    query = (
        select(d.c.spec, d.c.reported_state, d.c.reported_message, d.c.reported_access_port)
        .where(d.c.node_id == node_id, d.c.withheld.is_(False))
        .order_by(d.c.assignment_id)
    )
    return list((await session.execute(query)).all())


async def jump_rows(session: AsyncSession) -> list[Any]:
    """(user_id, spec, management_ip, ssh_port) of every assignment sent to a node that is neither
    deleted nor a jump host, by user then assignment id: what the jump host's state is made of
    (heartbeat/jump.py)."""
    d = desired_assignments
    query = (
        select(d.c.user_id, d.c.spec, nodes.c.management_ip, nodes.c.ssh_port)
        .join(nodes, nodes.c.id == d.c.node_id)
        .where(d.c.withheld.is_(False), nodes.c.status != "revoked", nodes.c.type != "jump")
        .order_by(d.c.user_id, d.c.assignment_id)
    )
    return list((await session.execute(query)).all())


async def withhold(session: AsyncSession, node_id: uuid.UUID, reasons: dict[uuid.UUID, str]) -> list[Any]:
    """Mark these assignments of the node withheld, recorded as `failed` with their reasons; returns
    (assignment_id, reported_state, reported_message, reported_access_port, reported_at) of each, for its
    event."""
    rows: list[Any] = []
    d = desired_assignments
    for assignment_id, reason in reasons.items():
        rows += (
            await session.execute(
                update(d)
                .where(d.c.assignment_id == assignment_id, d.c.node_id == node_id)
                .values(
                    withheld=True,
                    reported_state="failed",
                    reported_message=reason,
                    reported_access_port=None,
                    reported_at=func.clock_timestamp(),
                )
                .returning(
                    d.c.assignment_id,
                    d.c.reported_state,
                    d.c.reported_message,
                    d.c.reported_access_port,
                    d.c.reported_at,
                )
            )
        ).all()
    return rows


async def release(session: AsyncSession, node_id: uuid.UUID, ids: set[uuid.UUID]) -> None:
    """Send these again: nothing is known of what the node did with them (the agent's next report is new)."""
    d = desired_assignments
    await session.execute(
        update(d)
        .where(d.c.node_id == node_id, d.c.assignment_id.in_(ids))
        .values(withheld=False, reported_state=None, reported_message=None, reported_access_port=None, reported_at=None)
    )


async def withheld_counts(session: AsyncSession, node_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many assignments of each of these nodes are withheld (nodes with none are left out)."""
    d = desired_assignments
    query = (
        select(d.c.node_id, func.count()).where(d.c.node_id.in_(node_ids), d.c.withheld.is_(True)).group_by(d.c.node_id)
    )
    return {row[0]: int(row[1]) for row in (await session.execute(query)).all()}
