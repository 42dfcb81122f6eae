"""The rules of a delivery: when it is recorded, retried, given up; what each change tells the others.

Never commits: the consumer (a new delivery) and the sender (an attempt's outcome) own the transaction,
and every state change emits `notify.invite_delivery` through the outbox in that same transaction, so
identity's view of an invite's mail can never disagree with ours for longer than the relay's lag.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts.events import INVITE_DELIVERY, InviteDelivery
from gpulab_notify.deliveries import repository
from gpulab_notify.deliveries.kinds import Recipient
from gpulab_notify.deliveries.models import KIND_INVITE, Delivery, State

log = logging.getLogger(__name__)

SOURCE = "notify"

OUTCOMES = Counter("gpulab_notify_mail_attempts_total", "SMTP attempts by outcome", ["kind", "outcome"])


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float
    max_s: float
    max_attempts: int
    give_up_after_s: float

    def delay_s(self, attempts: int) -> float:
        """Wait after the `attempts`-th failure: initial * 2^(n-1), capped, less up to 20 % so that
        mails that failed together (the server was down) do not all come back in the same second."""
        base = min(self.initial_s * 2.0 ** min(attempts - 1, 30), self.max_s)
        return base * random.uniform(0.8, 1.0)

    def exhausted(self, attempts: int, age_s: float) -> bool:
        return attempts >= self.max_attempts or age_s >= self.give_up_after_s


class DeliveryService:
    def __init__(self, outbox_table: Table, policy: RetryPolicy) -> None:
        self._outbox = outbox_table
        self.policy = policy

    async def record(
        self, session: AsyncSession, event_id: uuid.UUID, kind: str, recipient: Recipient, payload: dict[str, Any]
    ) -> bool:
        """A pending delivery of this event to this recipient; False (and nothing emitted) if the event
        had one for them already. Only an invite's tells identity (`notify.invite_delivery`)."""
        delivery = await repository.insert_new(
            session,
            event_id=event_id,
            kind=kind,
            recipient=recipient.email,
            payload=payload,
            invite_id=recipient.invite_id,
            user_id=recipient.user_id,
        )
        if delivery is None:
            return False
        await self._tell(session, delivery, "pending", None)
        return True

    async def sent(self, session: AsyncSession, delivery: Delivery) -> None:
        await repository.finish(session, delivery, state="sent", error=None)
        OUTCOMES.labels(delivery.kind, "sent").inc()
        log.info("mail %s (%s) sent to %s", delivery.event_id, delivery.kind, delivery.recipient)
        await self._tell(session, delivery, "sent", None)

    async def failed(self, session: AsyncSession, delivery: Delivery, detail: str) -> None:
        await repository.finish(session, delivery, state="failed", error=detail)
        OUTCOMES.labels(delivery.kind, "failed").inc()
        log.warning(
            "mail %s (%s) to %s failed for good: %s", delivery.event_id, delivery.kind, delivery.recipient, detail
        )
        await self._tell(session, delivery, "failed", detail)

    async def retry_later(self, session: AsyncSession, delivery: Delivery, detail: str) -> None:
        previous, attempts = delivery.state, delivery.attempts + 1
        age_s = (datetime.now(UTC) - delivery.created_at).total_seconds()
        if self.policy.exhausted(attempts, age_s):
            await self.failed(session, delivery, f"gave up after {attempts} attempts in {age_s:.0f}s; last: {detail}")
            return
        delay = self.policy.delay_s(attempts)
        await repository.reschedule(session, delivery, state="retrying", error=detail, delay_s=delay)
        OUTCOMES.labels(delivery.kind, "retry").inc()
        log.warning(
            "mail %s (%s) to %s: attempt %d failed, next in %.1fs: %s",
            delivery.event_id,
            delivery.kind,
            delivery.recipient,
            attempts,
            delay,
            detail,
        )
        # Emitted on the change only: a mail retried 200 times is one `retrying`, not 200 events.
        if previous != "retrying":
            await self._tell(session, delivery, "retrying", detail)

    async def _tell(self, session: AsyncSession, delivery: Delivery, state: State, detail: str | None) -> None:
        if delivery.kind != KIND_INVITE or delivery.invite_id is None or delivery.user_id is None:
            return
        data = InviteDelivery(
            invite_id=delivery.invite_id, user_id=delivery.user_id, state=state, detail=detail, at=datetime.now(UTC)
        )
        await outbox.emit(session, self._outbox, INVITE_DELIVERY, data.model_dump(mode="json"), source=SOURCE)
