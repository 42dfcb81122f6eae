"""How assignments end (revoke, expiry, node deleted, user disabled) and the warning before expiry.
Never commits: the caller owns the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import scheduler as c
from gpulab_scheduler.models import assignment_gpus, assignments, tables
from gpulab_scheduler.nodes import repository as node_rows

SOURCE = "scheduler"


async def end_where(
    session: AsyncSession, condition: Any, reason: c.EndReason, actor_id: uuid.UUID | None = None
) -> list[Any]:
    """End every active assignment matching `condition`: free its GPUs at once, one event each.
    The UPDATE re-checks `status = 'active'` on each row under its lock, so with several replicas
    (or a revoke racing the expiry) an assignment ends exactly once."""
    now = datetime.now(UTC)
    status = "expired" if reason == "expired" else "revoked"
    ended = (
        await session.execute(
            update(assignments)
            .where(and_(assignments.c.status == "active", condition))
            .values(status=status, ended_at=now, end_reason=reason)
            .returning(*assignments.c)
        )
    ).all()
    if not ended:
        return []
    ids = [r.id for r in ended]
    await session.execute(update(assignment_gpus).where(assignment_gpus.c.assignment_id.in_(ids)).values(active=False))
    hostnames = await node_rows.hostnames(session, (r.node_id for r in ended))
    for r in ended:
        event = c.AssignmentEnded(
            assignment_id=r.id,
            user_id=r.user_id,
            user_email=r.user_email,
            node_id=r.node_id,
            node_hostname=hostnames.get(r.node_id, str(r.node_id)),
            reason=reason,
            ended_at=now,
            actor_id=actor_id,
        )
        await outbox.emit(session, tables.outbox, c.ASSIGNMENT_ENDED, event.model_dump(mode="json"), source=SOURCE)
    return list(ended)


async def expire_due(session: AsyncSession) -> int:
    return len(await end_where(session, assignments.c.expires_at <= func.now(), "expired"))


async def warn_expiring(session: AsyncSession, within: timedelta) -> int:
    """One `assignment_expiring` event per assignment, `within` before its end (exactly once)."""
    now = datetime.now(UTC)
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
    hostnames = await node_rows.hostnames(session, (r.node_id for r in due))
    for r in due:
        event = c.AssignmentExpiring(
            assignment_id=r.id,
            user_id=r.user_id,
            user_email=r.user_email,
            node_hostname=hostnames.get(r.node_id, ""),
            expires_at=r.expires_at,
        )
        await outbox.emit(session, tables.outbox, c.ASSIGNMENT_EXPIRING, event.model_dump(mode="json"), source=SOURCE)
    return len(due)
