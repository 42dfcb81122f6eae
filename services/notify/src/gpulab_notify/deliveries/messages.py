"""The mails themselves, built only from a delivery's stored data: the invite (text and HTML
alternatives), the admins' node alerts (plain text), and the parts every mail shares (headers,
safe one-line values). The users' assignment mails are in assignment_messages.py.

A mail is rendered again for every attempt, from the same row, with the same Message-ID and Date,
so that a copy sent again after a crash (see docs/adr/0008-mail-delivery.md) is the same mail and
clients that collapse duplicates by Message-ID show it once.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import quote

from gpulab_core.contracts.events import UserInvited
from gpulab_core.contracts.inventory import NodeOfflineEvent, NodeOnlineEvent
from gpulab_core.contracts.scheduler import AssignmentFailed

# The web app's accept page (frontend route `invite/:token`).
INVITE_PATH = "/invite/"
# The web app's node page (admin route `nodes/:id`).
NODE_PATH = "/nodes/"
# The admin dashboard's assignments page (admin route `assignments`).
ASSIGNMENTS_PATH = "/assignments"
# The node's sentence is at most 500 characters (inventory's bound); a mail shows no more.
MAX_NODE_MESSAGE = 500
# RFC 1123's longest host name; a subject line needs no more of whatever an event carries.
MAX_HOSTNAME = 253


def message_id(event_id: uuid.UUID) -> str:
    return f"<{event_id}@gpulab>"


def accept_link(public_url: str, token: str) -> str:
    # `safe=""`: a token is opaque; whatever it holds must stay one path segment.
    return public_url.rstrip("/") + INVITE_PATH + quote(token, safe="")


def node_link(public_url: str, node_id: uuid.UUID) -> str:
    return public_url.rstrip("/") + NODE_PATH + str(node_id)


def rfc3339(value: datetime | None, *, missing: str = "unknown") -> str:
    """UTC, to the second, with `Z`: `2026-12-01T09:30:00Z`."""
    if value is None:
        return missing
    if value.tzinfo is None:  # a naive time in an event is UTC by convention
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_recipient(address: str) -> str:
    """The address alone, or ValueError: a display name, a list or a line break would let the
    contents of an event choose extra recipients or headers."""
    if parseaddr(address)[1] != address or address.count("@") != 1 or any(c in address for c in ",;<>\r\n "):
        raise ValueError(f"not a single mail address: {address!r}")
    return address


def one_line(value: str) -> str:
    """A name from an event (the inviter's, a node's, a Linux user's), folded to one line: it goes into a
    header and a sentence."""
    return " ".join(value.split())


def invite_message(
    invite: UserInvited, *, token: str, event_id: uuid.UUID, created_at: datetime, public_url: str, sender: str
) -> EmailMessage:
    """Raises ValueError for a recipient that cannot be a header value (a permanent failure). `token`:
    the invite's token, opened from `invite.sealed_token` only now, for this message."""
    link = accept_link(public_url, token)
    inviter = one_line(invite.invited_by_name or "") or "An administrator"
    as_role = " as an administrator" if invite.role == "admin" else ""
    expires = invite.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

    msg = headers(
        sender=sender,
        recipient=invite.email,
        subject=f"{inviter} invited you to gpulab",
        created_at=created_at,
        mail_id=event_id,
    )
    msg.set_content(
        f"Hello,\n\n"
        f"{inviter} invited you to gpulab{as_role}, the lab's GPU sharing portal.\n\n"
        f"To accept, open this link and choose your name and password:\n\n"
        f"{link}\n\n"
        f"The link works once and expires on {expires}.\n"
        f"If you did not expect this invitation, you can ignore this mail.\n"
    )
    e = html.escape
    msg.add_alternative(
        "<!DOCTYPE html>\n"
        '<html><body style="font-family: sans-serif; line-height: 1.5">\n'
        "<p>Hello,</p>\n"
        f"<p>{e(inviter)} invited you to gpulab{e(as_role)}, the lab's GPU sharing portal.</p>\n"
        f'<p><a href="{e(link, quote=True)}">Accept the invitation</a> and choose your name and password.</p>\n'
        f"<p>The link works once and expires on {e(expires)}. If the button does not work, copy this address"
        f" into your browser:<br>\n{e(link)}</p>\n"
        "<p>If you did not expect this invitation, you can ignore this mail.</p>\n"
        "</body></html>\n",
        subtype="html",
    )
    return msg


def headers(*, sender: str, recipient: str, subject: str, created_at: datetime, mail_id: uuid.UUID) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = check_recipient(recipient)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(created_at.astimezone(UTC))
    msg["Message-ID"] = message_id(mail_id)
    # RFC 3834: machine-sent, so vacation responders and the like stay quiet.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"  # the same for Exchange, which ignores RFC 3834
    return msg


def display_hostname(value: str) -> str:
    # Validated by inventory when the node was created, but an event is data: one line, bounded.
    return one_line(value)[:MAX_HOSTNAME] or "(unnamed)"


_FOOTER = "You receive this mail because you are an administrator of gpulab.\n"
# The labels of an alert's facts are padded to one column ("Offline since:  ").
_LABEL_WIDTH = 16


def admin_alert(
    *,
    subject: str,
    opening: str,
    facts: Sequence[tuple[str, str]],
    note: str | None,
    links: Sequence[str],
    recipient: str,
    mail_id: uuid.UUID,
    created_at: datetime,
    sender: str,
) -> EmailMessage:
    """The admins' alerts, all of one shape: a sentence, a table of facts, perhaps a note, the links
    to act on, the footer. Plain text: read as often in a terminal or a pager as in a browser.
    Raises ValueError for a recipient that cannot be a header value."""
    msg = headers(
        sender=sender, recipient=recipient, subject=f"[gpulab] {subject}", created_at=created_at, mail_id=mail_id
    )
    table = "".join(f"{label + ':':<{_LABEL_WIDTH}}{value}\n" for label, value in facts)
    then = f"{note}\n\n" if note else ""
    msg.set_content(f"{opening}\n\n{table}\n{then}" + "".join(f"{link}\n" for link in links) + f"\n{_FOOTER}")
    return msg


def node_offline_message(
    node: NodeOfflineEvent,
    *,
    recipient: str,
    mail_id: uuid.UUID,
    created_at: datetime,
    public_url: str,
    sender: str,
) -> EmailMessage:
    """Raises ValueError for a recipient that cannot be a header value."""
    host = display_hostname(node.hostname)
    return admin_alert(
        subject=f"node {host} is offline",
        opening=f"The node {host} stopped sending heartbeats and is now offline.",
        facts=[
            ("Host name", host),
            ("Node id", str(node.node_id)),
            ("Last seen", rfc3339(node.last_seen_at, missing="never")),
            ("Offline since", rfc3339(node.at)),
        ],
        note="You will get another mail when it is back online.",
        links=[node_link(public_url, node.node_id)],
        recipient=recipient,
        mail_id=mail_id,
        created_at=created_at,
        sender=sender,
    )


def node_online_message(
    node: NodeOnlineEvent,
    *,
    recipient: str,
    mail_id: uuid.UUID,
    created_at: datetime,
    public_url: str,
    sender: str,
) -> EmailMessage:
    """Raises ValueError for a recipient that cannot be a header value."""
    host = display_hostname(node.hostname)
    return admin_alert(
        subject=f"node {host} is back online",
        opening=f"The node {host} is sending heartbeats again and is back online.",
        facts=[
            ("Host name", host),
            ("Node id", str(node.node_id)),
            ("Offline since", rfc3339(node.offline_since)),
            ("Back online", rfc3339(node.at)),
        ],
        note=None,
        links=[node_link(public_url, node.node_id)],
        recipient=recipient,
        mail_id=mail_id,
        created_at=created_at,
        sender=sender,
    )


def assignment_failed_message(
    failed: AssignmentFailed,
    *,
    recipient: str,
    mail_id: uuid.UUID,
    created_at: datetime,
    public_url: str,
    sender: str,
) -> EmailMessage:
    """A node could not apply an assignment: its user has no working access until an admin acts.
    Raises ValueError for a recipient that cannot be a header value."""
    host = display_hostname(failed.node_hostname)
    user = one_line(failed.linux_username)[:32] or "(none)"
    reason = one_line(failed.message or "")[:MAX_NODE_MESSAGE] or "(the node gave no reason)"
    return admin_alert(
        subject=f"node {host} could not set up access for {user}",
        opening=f"The node {host} could not apply an assignment: its user cannot log in until this is fixed.",
        facts=[
            ("Node", host),
            ("Node id", str(failed.node_id)),
            ("Assignment", str(failed.assignment_id)),
            ("User", one_line(failed.user_email)),
            ("Linux user", user),
            ("Reported at", rfc3339(failed.reported_at)),
            ("Node's reason", reason),
        ],
        note="The node tries again at every heartbeat; you get this mail once per failure.",
        links=[public_url.rstrip("/") + ASSIGNMENTS_PATH, node_link(public_url, failed.node_id)],
        recipient=recipient,
        mail_id=mail_id,
        created_at=created_at,
        sender=sender,
    )
