"""How assignments end (revoke, release by its user, expiry, node deleted, user disabled) and the warning before expiry.
Never commits: the caller owns the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import scheduler as c
from gpulab_scheduler.assignments import repository
from gpulab_scheduler.models import tables
from gpulab_scheduler.nodes import repository as node_rows

SOURCE = "scheduler"


async def end_active(
    session: AsyncSession,
    reason: c.EndReason,
    actor_id: uuid.UUID | None = None,
    *,
    assignment_id: uuid.UUID | None = None,
    node_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    due: bool = False,
) -> list[repository.Ended]:
    """End every active assignment matching every filter given (`due`: its expiry has come): free its
    GPUs at once, one event each. Each ends exactly once, whatever the replicas (repository.end_active)."""
    now = datetime.now(UTC)
    status = reason if reason in ("expired", "released") else "revoked"
    ended = await repository.end_active(
        session, status, reason, now, assignment_id=assignment_id, node_id=node_id, user_id=user_id, due=due
    )
    if not ended:
        return []
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
    return ended


async def expire_due(session: AsyncSession) -> int:
    return len(await end_active(session, "expired", due=True))


async def warn_expiring(session: AsyncSession, within: timedelta) -> int:
    """One `assignment_expiring` event per assignment, `within` before its end (exactly once)."""
    now = datetime.now(UTC)
    due = await repository.mark_expiry_warned(session, now, within)
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
