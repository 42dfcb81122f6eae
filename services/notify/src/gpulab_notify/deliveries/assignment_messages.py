"""The users' mails about their assignments: ready, ending in about a day, ended (plain text).

Plain text like the admins' alerts: the facts are a short table and one link, which every client
turns into a link; there is no HTML to escape and nothing in it to get wrong. Every value from an
event is folded to one line before it goes into a header or a line of the body.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

from gpulab_core.contracts.scheduler import AssignmentCreated, AssignmentEnded, AssignmentExpiring, EndReason
from gpulab_notify.deliveries.messages import display_hostname, headers, one_line

# The web app's page of one assignment (portal route `assignments/:id`): how to connect.
ASSIGNMENT_PATH = "/assignments/"
# The same page with its extend action open (the web app reads `extend=1`).
EXTEND_QUERY = "?extend=1"
# Bounds for values that only ever appear in a line of text: a Linux user name is at most 32
# characters (useradd), an environment name at most 100 (the scheduler's contract), a GPU UUID 40.
MAX_NAME = 100

_FOOTER = "You receive this mail because GPUs on gpulab were assigned to you.\n"

# What an ended assignment's mail says, by reason: subject ending, first sentence, what follows.
# `user_disabled` has none: the account is disabled, its owner is not to be mailed.
_ENDED: dict[EndReason, tuple[str, str, str]] = {
    "revoked": (
        "were revoked",
        "An administrator revoked your assignment on {host} at {at}.",
        "The node removes your access at its next heartbeat, usually within a minute.",
    ),
    "expired": (
        "have expired",
        "Your assignment on {host} expired at {at}.",
        "The node removes your access at its next heartbeat, usually within a minute.",
    ),
    "node_deleted": (
        "are gone: the node was removed",
        "Your assignment on {host} ended at {at} because an administrator removed the node from gpulab.",
        "The node no longer takes part in gpulab; its GPUs cannot be assigned again.",
    ),
}


def assignment_link(public_url: str, assignment_id: uuid.UUID) -> str:
    return public_url.rstrip("/") + ASSIGNMENT_PATH + str(assignment_id)


def when(value: datetime) -> str:
    """For people: `2026-12-08 09:00 UTC` (a naive time in an event is UTC by convention)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def about(start: datetime, end: datetime) -> str:
    """`about 24 h`, or `less than an hour`: the time from `start` to `end`, in whole hours."""
    hours = round((end - start).total_seconds() / 3600)
    return f"about {hours} h" if hours >= 1 else "less than an hour"


def _name(value: str) -> str:
    return one_line(value)[:MAX_NAME] or "(none)"


def _ram(ram_mb: int) -> str:
    if ram_mb <= 0:
        return "no limit"
    if ram_mb < 1024:
        return f"{ram_mb} MB"
    return f"{ram_mb} MB ({round(ram_mb / 1024, 1):g} GiB)"


def assignment_created_message(
    a: AssignmentCreated, *, recipient: str, mail_id: uuid.UUID, created_at: datetime, public_url: str, sender: str
) -> EmailMessage:
    """Raises ValueError for a recipient that cannot be a header value."""
    host = display_hostname(a.node_hostname)
    user = _name(a.linux_username)
    msg = headers(
        sender=sender,
        recipient=recipient,
        subject=f"[gpulab] your GPUs on {host} are ready",
        created_at=created_at,
        mail_id=mail_id,
    )
    gpus = "".join(f"  GPU {gpu.index:<8} {_name(gpu.uuid)}\n" for gpu in a.gpus)
    expires = when(a.expires_at) if a.expires_at is not None else "never (until an administrator ends it)"
    msg.set_content(
        f"Hello,\n\n"
        f"Your GPUs on {host} are ready.\n\n"
        f"Node:         {host}\n"
        f"Environment:  {_name(a.environment_name)}\n"
        f"GPUs:         {len(a.gpus)}\n"
        f"{gpus}"
        f"CPUs:         {a.cpus if a.cpus > 0 else 'no limit'}\n"
        f"RAM:          {_ram(a.ram_mb)}\n"
        f"Linux user:   {user}\n"
        f"Expires:      {expires}\n\n"
        f"How to connect (your SSH configuration, or your NetBird setup key) is on the assignment's page:\n\n"
        f"{assignment_link(public_url, a.assignment_id)}\n\n"
        f"You log in as {user} with the SSH key you added to gpulab. The node sets up your access at its\n"
        f"next heartbeat, usually within a minute.\n\n"
        f"{_FOOTER}"
    )
    return msg


def assignment_expiring_message(
    a: AssignmentExpiring, *, recipient: str, mail_id: uuid.UUID, created_at: datetime, public_url: str, sender: str
) -> EmailMessage:
    """The time left is counted from the delivery's creation, not from the attempt, so that every
    attempt renders the same mail. Raises ValueError for a recipient that cannot be a header value."""
    host = display_hostname(a.node_hostname)
    left = about(created_at, a.expires_at)
    msg = headers(
        sender=sender,
        recipient=recipient,
        subject=f"[gpulab] your GPUs on {host} end in {left}",
        created_at=created_at,
        mail_id=mail_id,
    )
    msg.set_content(
        f"Hello,\n\n"
        f"Your assignment on {host} ends in {left}, at {when(a.expires_at)}.\n\n"
        f"Then the node removes your access: copy off anything you want to keep before that time.\n\n"
        f"Need it longer, or done early? Extend or release it:\n\n"
        f"{assignment_link(public_url, a.assignment_id)}{EXTEND_QUERY}\n\n"
        f"(Where its Environment offers no self-service, an administrator extends it: ask them.)\n\n"
        f"{_FOOTER}"
    )
    return msg


def assignment_ended_message(
    a: AssignmentEnded, *, recipient: str, mail_id: uuid.UUID, created_at: datetime, public_url: str, sender: str
) -> EmailMessage:
    """Raises ValueError for a reason that mails nobody, or a recipient that cannot be a header value."""
    if a.reason not in _ENDED:
        raise ValueError(f"no mail for an assignment ended by {a.reason!r}")
    subject_end, first, then = _ENDED[a.reason]
    host = display_hostname(a.node_hostname)
    msg = headers(
        sender=sender,
        recipient=recipient,
        subject=f"[gpulab] your GPUs on {host} {subject_end}",
        created_at=created_at,
        mail_id=mail_id,
    )
    msg.set_content(
        f"Hello,\n\n"
        f"{first.format(host=host, at=when(a.ended_at))}\n"
        f"{then}\n"
        f"If you still need GPUs, ask an administrator for a new assignment.\n\n"
        f"{assignment_link(public_url, a.assignment_id)}\n\n"
        f"{_FOOTER}"
    )
    return msg


def mails_about_ending(reason: EndReason) -> bool:
    """Whether an assignment ended for this reason is mailed to its user."""
    return reason in _ENDED
