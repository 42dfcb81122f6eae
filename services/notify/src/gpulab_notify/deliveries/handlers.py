"""The consumer edge: events that ask for a mail become pending deliveries, nothing more.

Sending is left to the senders (deliveries/sender.py), so an SMTP server that is down for an hour
holds up no event: each is recorded and acknowledged in milliseconds. The durable consumer runs
this in one transaction with the event's `processed_events` row, and the delivery is unique by
event id as well, so a redelivered event (notify died before its ack) records nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.events import UserInvited
from gpulab_core.events import Event
from gpulab_notify.deliveries.service import DeliveryService

log = logging.getLogger(__name__)


def known_fields(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Contracts may gain fields (contracts/__init__.py) and forbid unknown ones; an older notify
    reading a newer event must not refuse it for a field it does not use."""
    return {k: v for k, v in data.items() if k in model.model_fields}


class InviteHandler:
    def __init__(self, service: DeliveryService, on_recorded: Callable[[], None]) -> None:
        self._service = service
        self._on_recorded = on_recorded

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        try:
            invite = UserInvited.model_validate(known_fields(UserInvited, event.data))
        except ValidationError as exc:
            # No retry can repair it: recorded as processed (and acked) so that it does not come back.
            log.error("event %s (%s) skipped, its data is not a valid invite: %s", event.id, event.type, exc)
            return
        if await self._service.record_invite(session, event.id, invite):
            # Before the commit a sender would not see the row; after it, it should not wait for its poll.
            sa_event.listen(session.sync_session, "after_commit", lambda _s: self._on_recorded(), once=True)
