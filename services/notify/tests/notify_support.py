"""Shared pieces of the notify tests: publishing events, waiting until a consumer has handled them,
watching delivery events, reading rows."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts.events import INVITE_DELIVERY, USER_INVITED, UserInvited
from gpulab_core.events import EVENT_SUBJECT_PREFIX, Event
from gpulab_core.sealing import seal_invite_token
from gpulab_devstack.testing import TEST_INVITE_SEAL_KEY, invite_token, new_event, relay_publish, wait_until

PUBLIC_URL = "https://gpulab.example.org/"  # with the trailing slash an admin may well type
# Characters that must be escaped in a URL path, to prove the link survives any token.
TOKEN_TAIL = "/+=?&#%"


def new_invite(*, expires_in: timedelta = timedelta(days=7), name: str | None = "Ada Admin") -> UserInvited:
    """An invite as identity emits it: the token sealed with the session's key (`token_of` opens it)."""
    invite_id = uuid.uuid4()
    token = "tok-" + uuid.uuid4().hex + TOKEN_TAIL
    return UserInvited(
        user_id=uuid.uuid4(),
        invite_id=invite_id,
        email=f"user-{uuid.uuid4().hex[:10]}@example.org",
        role="user",
        sealed_token=seal_invite_token(TEST_INVITE_SEAL_KEY, invite_id, token),
        expires_at=datetime.now(UTC) + expires_in,
        invited_by=uuid.uuid4(),
        invited_by_name=name,
    )


def token_of(invite: UserInvited) -> str:
    return invite_token(invite.model_dump(mode="json"))


async def publish_invite(
    nc: NATS, invite: UserInvited, event_id: uuid.UUID | None = None, extra: dict[str, Any] | None = None
) -> Event:
    """What identity's outbox relay does: the envelope on the stream, deduplicated by its id.
    `extra`: fields a newer identity might add to the payload."""
    data = {**invite.model_dump(mode="json"), **(extra or {})}
    return await relay_publish(nc, new_event(USER_INVITED, data, event_id=event_id))


async def publish_event(
    nc: NATS,
    event_type: str,
    data: BaseModel,
    *,
    source: str,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """What a service's outbox relay does: the envelope on the stream, deduplicated by its id."""
    event = new_event(event_type, data, event_id=event_id, occurred_at=occurred_at, source=source)
    return await relay_publish(nc, event)


async def processed(engine: AsyncEngine, consumer: str, event: Event) -> bool:
    """Whether the durable consumer `consumer` has recorded the event as handled."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM notify.processed_events WHERE consumer = :c AND event_id = :id"),
            {"c": consumer, "id": event.id},
        )
    return bool(found)


async def handled_through(
    nc: NATS, engine: AsyncEngine, consumer: str, event_type: str, marker: BaseModel, *, source: str
) -> None:
    """Until `consumer` has handled every event of its subjects published so far: `marker` (an event
    that mails nobody) goes in last, and the consumer takes events in order, so once the marker is
    recorded as processed everything before it has been handled (or sent for a retry). The
    consumer's own counters are not enough: JetStream updates a filtered consumer's pending count a
    moment after the publish."""
    event = await publish_event(nc, event_type, marker, source=source)
    await wait_until(lambda: processed(engine, consumer, event), timeout_s=15)


async def rows_of(engine: AsyncEngine, event: Event) -> list[dict[str, Any]]:
    """The deliveries one event asked for, by recipient."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM notify.deliveries WHERE event_id = :id ORDER BY recipient"), {"id": event.id}
        )
        return [dict(r._mapping) for r in rows]


@dataclass
class DeliveryEvents:
    """Every `notify.invite_delivery` event published while it listens, by invite id."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    _sub: Subscription | None = None

    async def listen(self, nc: NATS) -> DeliveryEvents:
        async def got(msg: Msg) -> None:
            self.seen.append(json.loads(msg.data))

        self._sub = await nc.subscribe(f"{EVENT_SUBJECT_PREFIX}.{INVITE_DELIVERY}", cb=got)
        return self

    def states(self, invite: UserInvited) -> list[str]:
        return [e["data"]["state"] for e in self.for_invite(invite)]

    def for_invite(self, invite: UserInvited) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["data"]["invite_id"] == str(invite.invite_id)]

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


async def delivery_row(engine: AsyncEngine, invite: UserInvited) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT * FROM notify.deliveries WHERE invite_id = :id"), {"id": invite.invite_id})
        ).first()
    return None if row is None else dict(row._mapping)
