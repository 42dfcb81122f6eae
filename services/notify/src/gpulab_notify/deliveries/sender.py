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
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import sealing
from gpulab_core.contracts.events import UserInvited
from gpulab_core.contracts.inventory import NodeOfflineEvent, NodeOnlineEvent
from gpulab_core.contracts.scheduler import AssignmentCreated, AssignmentEnded, AssignmentExpiring, AssignmentFailed
from gpulab_notify.deliveries import assignment_messages, messages, repository
from gpulab_notify.deliveries.models import (
    KIND_ASSIGNMENT_CREATED,
    KIND_ASSIGNMENT_ENDED,
    KIND_ASSIGNMENT_EXPIRING,
    KIND_ASSIGNMENT_FAILED,
    KIND_INVITE,
    KIND_NODE_OFFLINE,
    KIND_NODE_ONLINE,
    Delivery,
)
from gpulab_notify.deliveries.service import DeliveryService
from gpulab_notify.smtp import DeliveryError, SmtpTransport

log = logging.getLogger(__name__)

_ASSIGNMENT_KINDS = (KIND_ASSIGNMENT_CREATED, KIND_ASSIGNMENT_EXPIRING, KIND_ASSIGNMENT_ENDED)


class Undeliverable(Exception):
    """Nothing any retry could change (an expired invite, an address that is not one)."""


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
        if delivery.kind == KIND_INVITE and delivery.payload is not None:
            return self._render_invite(delivery, delivery.payload)
        if (
            delivery.kind in (KIND_NODE_OFFLINE, KIND_NODE_ONLINE, KIND_ASSIGNMENT_FAILED)
            and delivery.payload is not None
        ):
            return self._render_node(delivery, delivery.payload)
        if delivery.kind in _ASSIGNMENT_KINDS and delivery.payload is not None:
            return self._render_assignment(delivery, delivery.payload)
        raise Undeliverable(f"nothing to render for a {delivery.kind!r} delivery")

    def _common(self, delivery: Delivery) -> dict[str, Any]:
        # The row's id, not the event's: an admin event is mailed to every admin, and each mail is its own.
        return {
            "recipient": delivery.recipient,
            "mail_id": delivery.id,
            "created_at": delivery.created_at,
            "public_url": self._public_url,
            "sender": self._from,
        }

    def _render_assignment(self, delivery: Delivery, payload: dict[str, Any]) -> EmailMessage:
        common = self._common(delivery)
        try:
            if delivery.kind == KIND_ASSIGNMENT_CREATED:
                return assignment_messages.assignment_created_message(
                    AssignmentCreated.model_validate(payload), **common
                )
            if delivery.kind == KIND_ASSIGNMENT_EXPIRING:
                expiring = AssignmentExpiring.model_validate(payload)
                if expiring.expires_at.replace(tzinfo=expiring.expires_at.tzinfo or UTC) <= datetime.now(UTC):
                    # A reminder after the fact tells nothing the `ended` mail does not.
                    raise Undeliverable("the assignment ended before its reminder could be sent")
                return assignment_messages.assignment_expiring_message(expiring, **common)
            return assignment_messages.assignment_ended_message(AssignmentEnded.model_validate(payload), **common)
        except ValidationError as exc:
            raise Undeliverable(f"stored assignment event is not valid: {exc.error_count()} errors") from exc
        except ValueError as exc:
            raise Undeliverable(str(exc)) from exc

    def _render_node(self, delivery: Delivery, payload: dict[str, Any]) -> EmailMessage:
        common = self._common(delivery)
        try:
            if delivery.kind == KIND_NODE_OFFLINE:
                return messages.node_offline_message(NodeOfflineEvent.model_validate(payload), **common)
            if delivery.kind == KIND_ASSIGNMENT_FAILED:
                return messages.assignment_failed_message(AssignmentFailed.model_validate(payload), **common)
            return messages.node_online_message(NodeOnlineEvent.model_validate(payload), **common)
        except ValidationError as exc:
            raise Undeliverable(f"stored node event is not valid: {exc.error_count()} errors") from exc
        except ValueError as exc:
            raise Undeliverable(str(exc)) from exc

    def _render_invite(self, delivery: Delivery, payload: dict[str, Any]) -> EmailMessage:
        try:
            invite = UserInvited.model_validate(payload)
        except ValidationError as exc:
            raise Undeliverable(f"stored invite is not valid: {exc.error_count()} errors") from exc
        if invite.expires_at <= datetime.now(UTC):
            # The link would only show "expired"; the admin sees this and invites again.
            raise Undeliverable("the invite expired before the mail could be sent")
        try:
            token = sealing.open_invite_token(self._invite_seal_key, invite.invite_id, invite.sealed_token)
        except sealing.SealError as exc:
            # Permanent: the admin sees it, and a re-invite after fixing the key sends a new link.
            raise Undeliverable(f"the invite's token does not open with GPULAB_INVITE_SEAL_KEY: {exc}") from exc
        try:
            return messages.invite_message(
                invite,
                token=token,
                event_id=delivery.event_id,
                created_at=delivery.created_at,
                public_url=self._public_url,
                sender=self._from,
            )
        except ValueError as exc:
            raise Undeliverable(str(exc)) from exc
