"""The mails about self-service requests (issue 13): to the user when a request that waited is
granted or when it is denied, to the admins when one needs their approval. Plain text, every value
from an event folded to one line and bounded, as in assignment_messages.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from email.message import EmailMessage

from gpulab_core.contracts.selfservice import RequestDenied, RequestEvent, RequestGranted, RequestSubmitted
from gpulab_notify.deliveries.assignment_messages import MAX_NAME, assignment_link, when
from gpulab_notify.deliveries.messages import admin_alert, headers, one_line

# The admins' list of requests in the web app (portal route `admin/requests`).
ADMIN_REQUESTS_PATH = "/admin/requests"
# A note and a reason are people's sentences: long enough for one, not for a letter.
MAX_TEXT = 1000

_FOOTER = "You receive this mail because you asked gpulab for GPUs.\n"


def _text(value: str | None, missing: str = "(none)") -> str:
    return one_line(value or "")[:MAX_TEXT] or missing


def _what(r: RequestEvent) -> str:
    """`2 GPUs in training for 24 h`, or `24 more hours` for an extension."""
    env = one_line(r.environment_name)[:MAX_NAME] or "(unnamed)"
    if r.kind == "extension":
        return f"{r.hours} more hours on your assignment in {env}"
    return f"{r.gpus} GPU{'s' if r.gpus != 1 else ''} in {env} for {r.hours} h"


def _facts(r: RequestEvent) -> str:
    return (
        f"Environment:  {one_line(r.environment_name)[:MAX_NAME] or '(unnamed)'}\n"
        f"GPUs:         {r.gpus}\n"
        f"Hours:        {r.hours}\n"
        f"Your note:    {_text(r.note)}\n"
    )


def _to_user(
    subject: str, text: str, *, recipient: str, mail_id: uuid.UUID, created_at: datetime, sender: str
) -> EmailMessage:
    """The user's mail: greeting, `text`, footer. Raises ValueError for a recipient that cannot be a
    header value."""
    msg = headers(
        sender=sender, recipient=recipient, subject=f"[gpulab] {subject}", created_at=created_at, mail_id=mail_id
    )
    msg.set_content(f"Hello,\n\n{text}\n\n{_FOOTER}")
    return msg


def request_granted_message(
    r: RequestGranted, *, recipient: str, mail_id: uuid.UUID, created_at: datetime, public_url: str, sender: str
) -> EmailMessage:
    what = _what(r)
    expires = when(r.expires_at) if r.expires_at is not None else "never (until an administrator ends it)"
    link = assignment_link(public_url, r.assignment_id) if r.assignment_id else public_url.rstrip("/") + "/assignments"
    where = (
        "The node, its GPUs and how to connect are on the assignment's page:"
        if r.kind == "new"
        else "The assignment's page:"
    )
    text = f"Your request for {what} was granted.\n\n{_facts(r)}Expires:      {expires}\n\n{where}\n\n{link}"
    return _to_user(
        f"granted: {what}", text, recipient=recipient, mail_id=mail_id, created_at=created_at, sender=sender
    )


def request_denied_message(
    r: RequestDenied, *, recipient: str, mail_id: uuid.UUID, created_at: datetime, public_url: str, sender: str
) -> EmailMessage:
    what = _what(r)
    text = (
        f"An administrator denied your request for {what}.\n\n"
        f"Reason:       {_text(r.reason, '(no reason given)')}\n"
        f"{_facts(r)}\n"
        f"You can ask again on gpulab:\n\n"
        f"{public_url.rstrip('/')}"
    )
    return _to_user(f"denied: {what}", text, recipient=recipient, mail_id=mail_id, created_at=created_at, sender=sender)


def approval_needed_message(
    r: RequestSubmitted, *, recipient: str, mail_id: uuid.UUID, created_at: datetime, public_url: str, sender: str
) -> EmailMessage:
    """To each active admin. Raises ValueError for a recipient that cannot be a header value."""
    who = one_line(r.user_email)[:MAX_NAME] or "(unknown)"
    asks = f"{r.hours} more hours on an assignment" if r.kind == "extension" else f"{r.gpus} GPUs for {r.hours} h"
    env = one_line(r.environment_name)[:MAX_NAME] or "(unnamed)"
    facts = [
        ("User", who),
        ("Kind", "extension" if r.kind == "extension" else "new assignment"),
        ("Environment", env),
        ("GPUs", str(r.gpus)),
        ("Hours", str(r.hours)),
        ("Group", str(r.group_id) if r.group_id else "(none)"),
        ("Note", _text(r.note)),
        ("Request", str(r.request_id)),
    ]
    if r.assignment_id is not None:
        facts.insert(2, ("Assignment", str(r.assignment_id)))
    return admin_alert(
        subject=f"{who} asks for {asks} in {env}",
        opening=f"{who} asks for {asks} in {env}. The Environment asks an administrator to approve it.",
        facts=facts,
        note="Approve or deny it (with a reason the user is mailed) on the requests page:",
        links=[public_url.rstrip("/") + ADMIN_REQUESTS_PATH],
        recipient=recipient,
        mail_id=mail_id,
        created_at=created_at,
        sender=sender,
    )
