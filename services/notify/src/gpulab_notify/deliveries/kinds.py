"""Every mail notify sends, one entry each in `KINDS`: the event that asks for it, who gets it, when it
is no longer worth sending, and how it is written. The consumer edge (handlers.py) and the senders
(sender.py) know no mail by name; a new mail is a message function and one entry here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from gpulab_core import sealing
from gpulab_core.contracts.events import USER_INVITED, EventPayload, UserInvited
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
from gpulab_core.contracts.selfservice import (
    REQUEST_DENIED,
    REQUEST_GRANTED,
    REQUEST_SUBMITTED,
    RequestDenied,
    RequestGranted,
    RequestSubmitted,
)
from gpulab_notify.admins import Admin
from gpulab_notify.deliveries import assignment_messages, messages, request_messages
from gpulab_notify.deliveries.models import KIND_INVITE

P = TypeVar("P", bound=EventPayload)
P_contra = TypeVar("P_contra", bound=EventPayload, contravariant=True)

# The durable consumers, by the names the running stream knows (and operations.CONSUMERS lets notify
# use). Apart so that one waiting holds up none of the others' mails.
INVITES = "mail"
# The admins' alerts wait and retry while identity, which says who the admins are, does not answer;
# it kept its first name (`node-mail`) when it took the failed assignments too.
ADMIN_ALERTS = "node-mail"
# The users' own mails: the address is in the event, nothing to wait for, and a backlog of admin
# alerts (identity away) does not hold up "your GPUs are ready".
USER_MAILS = "assignment-mail"


class Undeliverable(Exception):
    """Nothing any retry could change (an expired invite, an address that is not one)."""


@dataclass(frozen=True)
class Recipient:
    email: str
    user_id: uuid.UUID
    invite_id: uuid.UUID | None = None  # an invite's mail: identity is told how its delivery goes


@dataclass(frozen=True)
class Directory:
    """Where recipients rules look people up. notify keeps no copy of identity's users (admins.py)."""

    admins: Callable[[], Awaitable[list[Admin]]]


@dataclass(frozen=True)
class Envelope:
    """What a mail is written with besides its event's data: its delivery row and the settings."""

    recipient: str
    mail_id: uuid.UUID  # the row's id: an event mailed to several people is one mail to each
    event_id: uuid.UUID
    created_at: datetime  # not the attempt's time: every attempt renders the same mail
    public_url: str
    sender: str
    invite_seal_key: str


@dataclass(frozen=True)
class Asked:
    """A mail an event asks for: its data as stored with each delivery, and who gets it."""

    payload: dict[str, Any]
    recipients: Callable[[Directory], Awaitable[list[Recipient]]]


@dataclass(frozen=True)
class MailKind:
    """One entry of the registry, made by `mail()`, which checks that its parts fit its payload."""

    name: str  # stored with each delivery (`deliveries.kind`): never renamed
    consumer: str
    event_type: str
    # An event older than GPULAB_MAIL_GIVE_UP_AFTER_S mails nobody (logged): such a mail would be
    # given up on anyway, and a consumer created on a stream with weeks of history must not mail it all.
    ages_out: bool
    # The event's data → the mail it asks for, or None for none. Raises ValidationError.
    asked: Callable[[dict[str, Any], datetime], Asked | None]
    # The stored data → the message, for each attempt. Raises Undeliverable.
    render: Callable[[dict[str, Any], Envelope, datetime], EmailMessage]


def mail(
    name: str,
    *,
    consumer: str,
    event_type: str,
    payload: type[P],
    about: str,
    recipients: Callable[[P, Directory], Awaitable[list[Recipient]]],
    render: Callable[[P, Envelope], EmailMessage],
    wanted: Callable[[P, datetime], bool] | None = None,
    stale: Callable[[P, datetime], str | None] | None = None,
    ages_out: bool = True,
) -> MailKind:
    """One kind of mail. `about`: what its event is, for the log and a stored payload that does not
    parse. Freshness, at the two moments it is checked: `wanted(payload, now)` when the event is
    handled (False: no delivery is recorded), `stale(payload, now)` before each attempt (a reason:
    the delivery fails with it, unsent)."""

    def asked(data: dict[str, Any], now: datetime) -> Asked | None:
        parsed = payload.model_validate(data)
        if wanted is not None and not wanted(parsed, now):
            return None

        async def who(directory: Directory) -> list[Recipient]:
            return await recipients(parsed, directory)

        return Asked(parsed.model_dump(mode="json"), who)

    def message(stored: dict[str, Any], envelope: Envelope, now: datetime) -> EmailMessage:
        try:
            parsed = payload.model_validate(stored)
        except ValidationError as exc:
            raise Undeliverable(f"stored {about} is not valid: {exc.error_count()} errors") from exc
        reason = stale(parsed, now) if stale is not None else None
        if reason is not None:
            raise Undeliverable(reason)
        try:
            return render(parsed, envelope)
        except ValueError as exc:  # a recipient or a value that cannot be written into a mail
            raise Undeliverable(str(exc)) from exc

    return MailKind(name, consumer, event_type, ages_out, asked, message)


# ---- recipients rules


async def admins(_payload: object, directory: Directory) -> list[Recipient]:
    """Every active admin, asked of identity now; its not answering rolls the event back to retry."""
    return [Recipient(admin.email, admin.id) for admin in await directory.admins()]


class OfAUser(Protocol):
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def user_email(self) -> str: ...


async def its_user(event: OfAUser, _directory: Directory) -> list[Recipient]:
    """The user the event is about, whose address it carries (no call to identity)."""
    return [Recipient(event.user_email, event.user_id)]


async def invitee(invite: UserInvited, _directory: Directory) -> list[Recipient]:
    return [Recipient(invite.email, invite.user_id, invite.invite_id)]


# ---- renderers


class Message(Protocol[P_contra]):
    """The message functions of messages.py and assignment_messages.py."""

    def __call__(
        self,
        event: P_contra,
        /,
        *,
        recipient: str,
        mail_id: uuid.UUID,
        created_at: datetime,
        public_url: str,
        sender: str,
    ) -> EmailMessage: ...


def plain(message: Message[P]) -> Callable[[P, Envelope], EmailMessage]:
    def render(event: P, m: Envelope) -> EmailMessage:
        return message(
            event,
            recipient=m.recipient,
            mail_id=m.mail_id,
            created_at=m.created_at,
            public_url=m.public_url,
            sender=m.sender,
        )

    return render


def invite_message(invite: UserInvited, m: Envelope) -> EmailMessage:
    try:
        token = sealing.open_invite_token(m.invite_seal_key, invite.invite_id, invite.sealed_token)
    except sealing.SealError as exc:
        # Permanent: the admin sees it, and a re-invite after fixing the key sends a new link.
        raise Undeliverable(f"the invite's token does not open with GPULAB_INVITE_SEAL_KEY: {exc}") from exc
    # One recipient: the event's id is the Message-ID.
    return messages.invite_message(
        invite, token=token, event_id=m.event_id, created_at=m.created_at, public_url=m.public_url, sender=m.sender
    )


# ---- freshness rules


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # a naive time in an event is UTC


def invite_expired(invite: UserInvited, now: datetime) -> str | None:
    # The link would only show "expired"; the admin sees this and invites again.
    return "the invite expired before the mail could be sent" if invite.expires_at <= now else None


def reminder_late(expiring: AssignmentExpiring, now: datetime) -> str | None:
    # A reminder after the fact tells nothing the `ended` mail does not.
    return "the assignment ended before its reminder could be sent" if aware(expiring.expires_at) <= now else None


KINDS: tuple[MailKind, ...] = (
    # Not aged out: an invite has an expiry of its own, and identity shows how its mail went.
    mail(
        KIND_INVITE,
        consumer=INVITES,
        event_type=USER_INVITED,
        payload=UserInvited,
        about="invite",
        recipients=invitee,
        render=invite_message,
        stale=invite_expired,
        ages_out=False,
    ),
    mail(
        "node_offline",
        consumer=ADMIN_ALERTS,
        event_type=NODE_OFFLINE,
        payload=NodeOfflineEvent,
        about="node event",
        recipients=admins,
        render=plain(messages.node_offline_message),
    ),
    mail(
        "node_online",
        consumer=ADMIN_ALERTS,
        event_type=NODE_ONLINE,
        payload=NodeOnlineEvent,
        about="node event",
        recipients=admins,
        render=plain(messages.node_online_message),
        # First contact after enrollment is the expected end of adding a node, not news; only a node
        # coming back from `offline` closes an alert the admins were sent.
        wanted=lambda online, _now: online.previous_status == "offline",
    ),
    # A node could not apply an assignment. The scheduler emits it once per failure (projections.py),
    # so this is one mail per failure.
    mail(
        "assignment_failed",
        consumer=ADMIN_ALERTS,
        event_type=ASSIGNMENT_FAILED,
        payload=AssignmentFailed,
        about="node event",
        recipients=admins,
        render=plain(messages.assignment_failed_message),
    ),
    mail(
        "assignment_created",
        consumer=USER_MAILS,
        event_type=ASSIGNMENT_CREATED,
        payload=AssignmentCreated,
        about="assignment event",
        recipients=its_user,
        render=plain(assignment_messages.assignment_created_message),
    ),
    mail(
        "assignment_expiring",
        consumer=USER_MAILS,
        event_type=ASSIGNMENT_EXPIRING,
        payload=AssignmentExpiring,
        about="assignment event",
        recipients=its_user,
        render=plain(assignment_messages.assignment_expiring_message),
        # Handled after the end (notify was down for a day): the `ended` mail tells it instead.
        wanted=lambda expiring, now: reminder_late(expiring, now) is None,
        stale=reminder_late,
    ),
    mail(
        "assignment_ended",
        consumer=USER_MAILS,
        event_type=ASSIGNMENT_ENDED,
        payload=AssignmentEnded,
        about="assignment event",
        recipients=its_user,
        render=plain(assignment_messages.assignment_ended_message),
        # `user_disabled`: the account is disabled; its owner is not to be mailed about it.
        wanted=lambda ended, _now: assignment_messages.mails_about_ending(ended.reason),
    ),
    # Self-service (issue 13). Granted: only after a wait (queued or approved); an immediate grant
    # is answered in the web app, and its `assignment_created` mail says the rest.
    mail(
        "request_granted",
        consumer=USER_MAILS,
        event_type=REQUEST_GRANTED,
        payload=RequestGranted,
        about="request event",
        recipients=its_user,
        render=plain(request_messages.request_granted_message),
        wanted=lambda granted, _now: granted.waited,
    ),
    mail(
        "request_denied",
        consumer=USER_MAILS,
        event_type=REQUEST_DENIED,
        payload=RequestDenied,
        about="request event",
        recipients=its_user,
        render=plain(request_messages.request_denied_message),
    ),
    # Only a request that waits for an admin; a queued or granted one needs nobody.
    mail(
        "request_needs_approval",
        consumer=ADMIN_ALERTS,
        event_type=REQUEST_SUBMITTED,
        payload=RequestSubmitted,
        about="request event",
        recipients=admins,
        render=plain(request_messages.approval_needed_message),
        wanted=lambda submitted, _now: submitted.status == "pending_approval",
    ),
)

BY_NAME = {kind.name: kind for kind in KINDS}


def consumers(kinds: Sequence[MailKind] = KINDS) -> dict[str, list[MailKind]]:
    """The kinds by the durable consumer that records them, in the registry's order (which is the
    order of each consumer's filter subjects)."""
    found: dict[str, list[MailKind]] = {}
    for kind in kinds:
        found.setdefault(kind.consumer, []).append(kind)
    return found


def subjects(kinds: Sequence[MailKind]) -> list[str]:
    """A consumer's filter subjects: its kinds' event types, each once, in the registry's order."""
    return list(dict.fromkeys(kind.event_type for kind in kinds))
