"""The consumer edge: events that ask for a mail become pending deliveries, nothing more.

Sending is left to the senders (deliveries/sender.py), so an SMTP server that is down for an hour
holds up no event: each is recorded and acknowledged in milliseconds. The durable consumer runs
this in one transaction with the event's `processed_events` row, and a delivery is unique by
(event id, recipient) as well, so a redelivered event (notify died before its ack) records nothing new.
Which events ask for which mail, to whom, is the registry's (kinds.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.events import Event
from gpulab_notify.deliveries.kinds import Directory, MailKind, aware
from gpulab_notify.deliveries.service import DeliveryService

log = logging.getLogger(__name__)


class MailHandler:
    """One durable consumer's events: for each kind of mail an event asks for, one pending delivery
    per recipient.

    Runs once per event (the consumer's processed-events row, in this transaction), and the rows are
    unique by (event, recipient): a redelivered event mails nobody twice. A recipients rule that
    cannot answer (identity away, asked for the admins) raises: the transaction rolls back and the
    event comes again later (the consumer's backoff), rather than being recorded as mailed to no one.
    """

    def __init__(
        self,
        kinds: Sequence[MailKind],
        service: DeliveryService,
        directory: Directory,
        on_recorded: Callable[[], None],
        *,
        max_age_s: float,
    ) -> None:
        self._kinds: dict[str, list[MailKind]] = {}
        for kind in kinds:
            self._kinds.setdefault(kind.event_type, []).append(kind)
        self._service = service
        self._directory = directory
        self._on_recorded = on_recorded
        self._max_age = timedelta(seconds=max_age_s)

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        recorded = 0
        for kind in self._kinds.get(event.type, ()):
            recorded += await self._record(session, event, kind)
        if recorded:
            wake_after_commit(session, self._on_recorded)

    async def _record(self, session: AsyncSession, event: Event, kind: MailKind) -> int:
        try:
            asked = kind.asked(event.data, datetime.now(UTC))
        except ValidationError as exc:
            # No retry can repair it: recorded as processed (and acked) so that it does not come back.
            log.error("event %s (%s) skipped, its data is not valid: %s", event.id, event.type, exc)
            return 0
        if asked is None or (kind.ages_out and too_old(event, self._max_age)):
            return 0
        recipients = await asked.recipients(self._directory)
        if not recipients:
            log.warning("event %s (%s): there is no one to send a %s mail to", event.id, event.type, kind.name)
            return 0
        recorded = 0
        for recipient in recipients:
            if await self._service.record(session, event.id, kind.name, recipient, asked.payload):
                recorded += 1
        log.info("event %s (%s): %d %s mails queued", event.id, event.type, recorded, kind.name)
        return recorded


def wake_after_commit(session: AsyncSession, wake: Callable[[], None]) -> None:
    # Before the commit a sender would not see the rows; after it, it should not wait for its poll.
    sa_event.listen(session.sync_session, "after_commit", lambda _s: wake(), once=True)


def too_old(event: Event, max_age: timedelta) -> bool:
    """Whether an event is older than a mail's give-up age (GPULAB_MAIL_GIVE_UP_AFTER_S); logged."""
    occurred = aware(event.occurred_at)
    if datetime.now(UTC) - occurred <= max_age:
        return False
    log.warning("event %s (%s) from %s is too old to mail about; skipped", event.id, event.type, occurred)
    return True
