"""The mails themselves: text and HTML alternatives, built only from a delivery's stored data.

A mail is rendered again for every attempt, from the same row, with the same Message-ID and Date,
so that a copy sent again after a crash (see docs/adr/0008-mail-delivery.md) is the same mail and
clients that collapse duplicates by Message-ID show it once.
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import quote

from gpulab_core.contracts.events import UserInvited

# The web app's accept page (frontend route `invite/:token`).
INVITE_PATH = "/invite/"


def message_id(event_id: uuid.UUID) -> str:
    return f"<{event_id}@gpulab>"


def accept_link(public_url: str, token: str) -> str:
    # `safe=""`: a token is opaque; whatever it holds must stay one path segment.
    return public_url.rstrip("/") + INVITE_PATH + quote(token, safe="")


def check_recipient(address: str) -> str:
    """The address alone, or ValueError: a display name, a list or a line break would let the
    contents of an event choose extra recipients or headers."""
    if parseaddr(address)[1] != address or address.count("@") != 1 or any(c in address for c in ",;<>\r\n "):
        raise ValueError(f"not a single mail address: {address!r}")
    return address


def _one_line(value: str) -> str:
    """A name from the inviter's account, folded to one line: it goes into a header and a sentence."""
    return " ".join(value.split())


def invite_message(
    invite: UserInvited, *, event_id: uuid.UUID, created_at: datetime, public_url: str, sender: str
) -> EmailMessage:
    """Raises ValueError for a recipient that cannot be a header value (a permanent failure)."""
    link = accept_link(public_url, invite.token)
    inviter = _one_line(invite.invited_by_name or "") or "An administrator"
    as_role = " as an administrator" if invite.role == "admin" else ""
    expires = invite.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = check_recipient(invite.email)
    msg["Subject"] = f"{inviter} invited you to gpulab"
    msg["Date"] = format_datetime(created_at.astimezone(UTC))
    msg["Message-ID"] = message_id(event_id)
    # RFC 3834: machine-sent, so vacation responders and the like stay quiet.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"  # the same for Exchange, which ignores RFC 3834

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
