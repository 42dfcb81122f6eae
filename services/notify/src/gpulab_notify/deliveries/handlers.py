"""The consumer edge: events that ask for a mail become pending deliveries, nothing more.

Sending is left to the senders (deliveries/sender.py), so an SMTP server that is down for an hour
holds up no event: each is recorded and acknowledged in milliseconds. The durable consumer runs
this in one transaction with the event's `processed_events` row, and a delivery is unique by
(event id, recipient) as well, so a redelivered event (notify died before its ack) records nothing new.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.events import UserInvited
from gpulab_core.contracts.inventory import NODE_OFFLINE, NODE_ONLINE, NodeOfflineEvent, NodeOnlineEvent
from gpulab_core.contracts.scheduler import (
    ASSIGNMENT_CREATED,
    ASSIGNMENT_ENDED,
    ASSIGNMENT_EXPIRING,
    ASSIGNMENT_FAILED,
    AssignmentCreated,
    AssignmentEnded,
    AssignmentExpiring,
    AssignmentFailed,
)
from gpulab_core.events import Event
from gpulab_notify.admins import Admin
from gpulab_notify.deliveries.assignment_messages import mails_about_ending
from gpulab_notify.deliveries.models import (
    KIND_ASSIGNMENT_CREATED,
    KIND_ASSIGNMENT_ENDED,
    KIND_ASSIGNMENT_EXPIRING,
    KIND_ASSIGNMENT_FAILED,
    KIND_NODE_OFFLINE,
    KIND_NODE_ONLINE,
)
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
            wake_after_commit(session, self._on_recorded)


def wake_after_commit(session: AsyncSession, wake: Callable[[], None]) -> None:
    # Before the commit a sender would not see the rows; after it, it should not wait for its poll.
    sa_event.listen(session.sync_session, "after_commit", lambda _s: wake(), once=True)


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # a naive time in an event is UTC


def too_old(event: Event, max_age: timedelta) -> bool:
    """An event older than a mail's give-up age mails nobody (logged): a mail this late would be
    given up on anyway (GPULAB_MAIL_GIVE_UP_AFTER_S), and a consumer created on a stream with weeks
    of history must not mail all of it."""
    occurred = aware(event.occurred_at)
    if datetime.now(UTC) - occurred <= max_age:
        return False
    log.warning("event %s (%s) from %s is too old to mail about; skipped", event.id, event.type, occurred)
    return True


def admin_mail(event: Event) -> tuple[str, dict[str, Any]] | None:
    """The kind of admin mail an event asks for (a node offline or back, an assignment its node could
    not apply) and the data it is rendered from; None for none.

    Raises ValidationError for data that is not the event's payload."""
    if event.type == NODE_OFFLINE:
        offline = NodeOfflineEvent.model_validate(event.data)
        return KIND_NODE_OFFLINE, offline.model_dump(mode="json")
    if event.type == NODE_ONLINE:
        online = NodeOnlineEvent.model_validate(event.data)
        # First contact after enrollment is the expected end of adding a node, not news; only a
        # node coming back from `offline` closes an alert the admins were sent.
        if online.previous_status != "offline":
            return None
        return KIND_NODE_ONLINE, online.model_dump(mode="json")
    if event.type == ASSIGNMENT_FAILED:
        # The scheduler emits it once per failure (projections.py), so this is one mail per failure.
        failed = AssignmentFailed.model_validate(known_fields(AssignmentFailed, event.data))
        return KIND_ASSIGNMENT_FAILED, failed.model_dump(mode="json")
    return None


class AdminMailHandler:
    """`inventory.node_offline` / `node_online` (back from offline) / `scheduler.assignment_failed`:
    one pending mail per active admin.

    Runs once per event (the consumer's processed-events row, in this transaction), and the rows are
    unique by (event, recipient): a redelivered event mails nobody twice. The admins are asked of
    identity here; if it does not answer, the error rolls the transaction back and the event comes
    again later (the consumer's backoff), rather than being recorded as mailed to no one.
    """

    def __init__(
        self,
        service: DeliveryService,
        admins: Callable[[], Awaitable[list[Admin]]],
        on_recorded: Callable[[], None],
        *,
        max_age_s: float,
    ) -> None:
        self._service = service
        self._admins = admins
        self._on_recorded = on_recorded
        self._max_age = timedelta(seconds=max_age_s)

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        try:
            mail = admin_mail(event)
        except ValidationError as exc:
            log.error("event %s (%s) skipped, its data is not valid: %s", event.id, event.type, exc)
            return
        if mail is None:
            return
        kind, payload = mail
        if too_old(event, self._max_age):
            return
        admins = await self._admins()
        if not admins:
            log.warning("event %s (%s): there is no active admin to mail", event.id, event.type)
            return
        recorded = 0
        for admin in admins:
            if await self._service.record_mail(
                session, event.id, kind=kind, user_id=admin.id, email=admin.email, payload=payload
            ):
                recorded += 1
        log.info("event %s (%s): %d admin mails queued", event.id, event.type, recorded)
        if recorded:
            wake_after_commit(session, self._on_recorded)


@dataclass(frozen=True)
class UserMail:
    kind: str
    user_id: uuid.UUID
    email: str
    payload: dict[str, Any]


def assignment_mail(event: Event) -> UserMail | None:
    """The mail an assignment event asks for, to the assignment's user; None for none.

    Raises ValidationError for data that is not the event's payload."""
    if event.type == ASSIGNMENT_CREATED:
        created = AssignmentCreated.model_validate(event.data)
        return UserMail(KIND_ASSIGNMENT_CREATED, created.user_id, created.user_email, created.model_dump(mode="json"))
    if event.type == ASSIGNMENT_EXPIRING:
        expiring = AssignmentExpiring.model_validate(event.data)
        if aware(expiring.expires_at) <= datetime.now(UTC):
            # Handled after the end (notify was down for a day): the `ended` mail tells it instead.
            return None
        return UserMail(
            KIND_ASSIGNMENT_EXPIRING, expiring.user_id, expiring.user_email, expiring.model_dump(mode="json")
        )
    if event.type == ASSIGNMENT_ENDED:
        ended = AssignmentEnded.model_validate(event.data)
        # `user_disabled`: the account is disabled; its owner is not to be mailed about it.
        if not mails_about_ending(ended.reason):
            return None
        return UserMail(KIND_ASSIGNMENT_ENDED, ended.user_id, ended.user_email, ended.model_dump(mode="json"))
    return None


class AssignmentMailHandler:
    """`scheduler.assignment_created` / `assignment_expiring` / `assignment_ended`: one pending mail
    to the assignment's user, whose address the event carries (no call to identity).

    Runs once per event (the consumer's processed-events row, in this transaction), and the row is
    unique by (event, recipient): a redelivered event mails nobody twice.
    """

    def __init__(self, service: DeliveryService, on_recorded: Callable[[], None], *, max_age_s: float) -> None:
        self._service = service
        self._on_recorded = on_recorded
        self._max_age = timedelta(seconds=max_age_s)

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        try:
            mail = assignment_mail(event)
        except ValidationError as exc:
            log.error("event %s (%s) skipped, its data is not valid: %s", event.id, event.type, exc)
            return
        if mail is None or too_old(event, self._max_age):
            return
        if await self._service.record_mail(
            session, event.id, kind=mail.kind, user_id=mail.user_id, email=mail.email, payload=mail.payload
        ):
            log.info("event %s (%s): mail to user %s queued", event.id, event.type, mail.user_id)
            wake_after_commit(session, self._on_recorded)
