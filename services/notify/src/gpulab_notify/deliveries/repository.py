"""Every SQL statement on `deliveries`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_notify.deliveries.models import OPEN_STATES, Delivery


async def insert_new(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    kind: str,
    recipient: str,
    payload: dict[str, Any],
    invite_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> Delivery | None:
    """The new pending delivery, or None when this event already has one to this recipient (a redelivered event)."""
    row = await session.execute(
        insert(Delivery)
        .values(
            id=uuid.uuid4(),
            event_id=event_id,
            kind=kind,
            recipient=recipient,
            payload=payload,
            invite_id=invite_id,
            user_id=user_id,
        )
        .on_conflict_do_nothing(index_elements=[Delivery.event_id, Delivery.recipient])
        .returning(Delivery)
    )
    return row.scalar_one_or_none()


async def claim_due(session: AsyncSession) -> Delivery | None:
    """The open delivery due first, locked for this transaction.

    SKIP LOCKED: senders of every replica scan at once and each takes a different row; the lock is
    held for the whole SMTP session, so no two senders ever work on one mail. A sender that dies
    drops its connection, PostgreSQL ends the transaction, and the row is free again at once.
    """
    row = await session.execute(
        select(Delivery)
        .where(Delivery.state.in_(OPEN_STATES), Delivery.next_attempt_at <= func.now())
        .order_by(Delivery.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return row.scalar_one_or_none()


async def reschedule(session: AsyncSession, delivery: Delivery, *, state: str, error: str, delay_s: float) -> None:
    await _update(
        session,
        delivery,
        state=state,
        attempts=Delivery.attempts + 1,
        last_error=error,
        next_attempt_at=func.clock_timestamp() + timedelta(seconds=delay_s),
    )


async def finish(session: AsyncSession, delivery: Delivery, *, state: str, error: str | None) -> None:
    """A final state. The payload goes (SQL NULL, not JSON null): nothing is rendered from it again."""
    sent_at = func.clock_timestamp() if state == "sent" else None
    await _update(
        session,
        delivery,
        state=state,
        attempts=Delivery.attempts + 1,
        last_error=error,
        payload=null(),
        sent_at=sent_at,
    )


async def _update(session: AsyncSession, delivery: Delivery, **values: Any) -> None:
    # clock_timestamp(), not now(): now() is when this transaction began, before the SMTP session.
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id)
        .values(updated_at=func.clock_timestamp(), **values)
        .execution_options(synchronize_session=False)
    )


async def by_event(session: AsyncSession, event_id: uuid.UUID) -> list[Delivery]:
    """The mails one event asked for (one for an invite, one per admin for a notification)."""
    rows = await session.execute(select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.recipient))
    return list(rows.scalars())
