"""The sending edge: claims a due delivery, sends it over SMTP, records the outcome, commits.

One transaction per attempt, holding the delivery's row lock for the whole SMTP session: the
outcome is committed together with its `notify.invite_delivery` event, and a process that dies
mid-session releases the row to the next sender. What remains (the server accepted the mail,
the process died before the commit) is discussed in docs/adr/0008-mail-delivery.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_notify.deliveries import kinds, repository
from gpulab_notify.deliveries.kinds import Undeliverable
from gpulab_notify.deliveries.models import Delivery
from gpulab_notify.deliveries.service import DeliveryService
from gpulab_notify.smtp import DeliveryError, SmtpTransport

log = logging.getLogger(__name__)


class Sender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        service: DeliveryService,
        transport: SmtpTransport,
        *,
        public_url: str,
        invite_seal_key: str,
        mail_from: str,
        poll_s: float,
        stop_grace_s: float,
    ) -> None:
        self._sessions = sessions
        self._service = service
        self._transport = transport
        self._public_url = public_url
        self._invite_seal_key = invite_seal_key
        self._from = mail_from
        self._poll_s = poll_s
        self._grace_s = stop_grace_s
        self._wake = asyncio.Event()
        self._stopping = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Deliveries (by row id: one event may have several) the server accepted whose `sent` this
        # process could not commit yet. In memory only: it closes the gap for a database blip, not
        # for a dead process (see the ADR).
        self._unrecorded: set[uuid.UUID] = set()

    def wake(self) -> None:
        """A delivery was committed in this process: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """One sending loop; the service runs `GPULAB_MAIL_CONCURRENCY` of them side by side."""
        while True:
            self._wake.clear()
            try:
                while await self.deliver_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: rows stay due, the next pass retries
                log.warning("mail sender pass failed: %s", exc)
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):  # not wait_for: see gpulab_core.outbox
                    await self._wake.wait()

    async def stop(self) -> None:
        """Take no new delivery and let the ones in flight finish: cancelling a send whose mail the
        server may already have accepted would roll its `sent` back and send it again later."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), self._grace_s)
        except TimeoutError:
            log.warning("mail sender stopped with %d SMTP sessions still open", self._busy)

    async def deliver_one(self) -> bool:
        """Try the delivery due first; False when none is due or the sender is stopping."""
        if self._stopping:
            return False
        self._busy += 1
        self._idle.clear()
        try:
            async with self._sessions() as session, session.begin():
                delivery = await repository.claim_due(session)
                if delivery is None:
                    return False
                delivery_id = delivery.id
                await self._attempt(session, delivery)
            self._unrecorded.discard(delivery_id)
            return True
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def _attempt(self, session: AsyncSession, delivery: Delivery) -> None:
        if delivery.id in self._unrecorded:
            # This process had the server accept it, then failed to record that (the database went
            # away, or a bug): record it now instead of sending it again on every pass.
            await self._service.sent(session, delivery)
            return
        try:
            message = self._render(delivery)
        except Undeliverable as exc:
            await self._service.failed(session, delivery, str(exc))
            return
        except Exception as exc:  # a bug of ours: keep the mail, retry on the usual schedule
            log.exception("mail %s: unexpected error while rendering", delivery.event_id)
            await self._service.retry_later(session, delivery, f"internal error: {type(exc).__name__}")
            return
        try:
            await self._transport.send(message, delivery.recipient)
        except DeliveryError as exc:
            if exc.permanent:
                await self._service.failed(session, delivery, exc.detail)
            else:
                await self._service.retry_later(session, delivery, exc.detail)
            return
        except Exception as exc:
            log.exception("mail %s: unexpected error while sending", delivery.event_id)
            await self._service.retry_later(session, delivery, f"internal error: {type(exc).__name__}")
            return
        self._unrecorded.add(delivery.id)
        await self._service.sent(session, delivery)

    def _render(self, delivery: Delivery) -> EmailMessage:
        kind = kinds.BY_NAME.get(delivery.kind)
        if kind is None or delivery.payload is None:
            raise Undeliverable(f"nothing to render for a {delivery.kind!r} delivery")
        envelope = kinds.Envelope(
            recipient=delivery.recipient,
            mail_id=delivery.id,
            event_id=delivery.event_id,
            created_at=delivery.created_at,
            public_url=self._public_url,
            sender=self._from,
            invite_seal_key=self._invite_seal_key,
        )
        return kind.render(delivery.payload, envelope, datetime.now(UTC))
