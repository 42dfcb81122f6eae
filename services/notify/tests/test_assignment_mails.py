"""Users' mails about their assignments, end to end: real `scheduler.assignment_*` events on
JetStream, notify, and a real SMTP server. The address is in the event: no identity is needed.

Whether an event was handled is read from notify's processed-events rows, after a marker event that
mails nobody (an assignment ended because its user was disabled), never guessed with a sleep.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from nats.aio.client import Client as NATS
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts.scheduler import (
    ASSIGNMENT_CREATED,
    ASSIGNMENT_ENDED,
    ASSIGNMENT_EXPIRING,
    AssignmentCreated,
    AssignmentEnded,
    AssignmentExpiring,
    EndReason,
    EventGpu,
)
from gpulab_core.events import EVENT_SUBJECT_PREFIX, Event
from gpulab_devstack.testing import wait_until
from gpulab_notify.deliveries.assignment_messages import about, assignment_created_message

from .conftest import MakeSmtp, StartNotify
from .notify_support import handled_through, processed, publish_event, rows_of
from .smtp_support import Received

CONSUMER = "notify-assignment-mail"


def unique(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def email() -> str:
    return f"{unique('user')}@example.org"


async def publish(
    nc: NATS,
    event_type: str,
    data: BaseModel,
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    return await publish_event(nc, event_type, data, source="scheduler", event_id=event_id, occurred_at=occurred_at)


def ended(reason: EndReason, *, host: str | None = None, to: str | None = None) -> AssignmentEnded:
    return AssignmentEnded(
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        user_email=to or email(),
        node_id=uuid.uuid4(),
        node_hostname=host or unique("gpu"),
        reason=reason,
        ended_at=datetime(2026, 12, 8, 9, 0, 30, tzinfo=UTC),
    )


async def consumed_all(nc: NATS, engine: AsyncEngine) -> None:
    """Until notify's assignment consumer has handled every assignment event published so far."""
    marker = ended("user_disabled", host=unique("marker"))
    await handled_through(nc, engine, CONSUMER, ASSIGNMENT_ENDED, marker, source="scheduler")


def created(*, to: str, host: str, expires_at: datetime | None) -> AssignmentCreated:
    return AssignmentCreated(
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        user_email=to,
        environment_id=uuid.uuid4(),
        environment_name="training",
        node_id=uuid.uuid4(),
        node_hostname=host,
        placement="dynamic",
        linux_username="gl_ada",
        ssh_public_keys=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDn0 ada@laptop"],
        enforcement_mode="cgroup",
        gpus=[
            EventGpu(index=2, uuid="GPU-2a6e4c8d-0000-4000-8000-000000000002"),
            EventGpu(index=5, uuid="GPU-5b7f5d9e-0000-4000-8000-000000000005"),
        ],
        cpus=16,
        ram_mb=65536,
        expires_at=expires_at,
    )


def only_mail(mails: list[Received]) -> Received:
    assert len(mails) == 1, [str(m.message["Subject"]) for m in mails]
    assert len(mails[0].rcpt_tos) == 1
    return mails[0]


def lines(mail: Received) -> list[str]:
    assert mail.message.get_content_type() == "text/plain"
    return str(mail.message.get_content()).splitlines()


async def test_a_new_assignment_mails_its_user_once_what_they_got_and_where_to_connect_even_when_redelivered(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    # A poll far longer than the waits below: the mail goes out because the consumer wakes the senders.
    await notify(server, mail_poll_s=30)
    to, host = email(), unique("gpu")
    data = created(to=to, host=host, expires_at=datetime(2026, 12, 8, 9, 0, 59, tzinfo=UTC))
    event = await publish(nc, ASSIGNMENT_CREATED, data)

    await wait_until(lambda: server.sink.to(to), timeout_s=10)
    # The same event again: once as the relay would after a restart (JetStream drops it by its
    # Nats-Msg-Id), once without the header (past the dedup window): notify itself must drop it.
    await publish(nc, ASSIGNMENT_CREATED, data, event_id=event.id)
    await nc.jetstream().publish(f"{EVENT_SUBJECT_PREFIX}.{ASSIGNMENT_CREATED}", event.model_dump_json().encode())
    await consumed_all(nc, engine)

    rows = await rows_of(engine, event)
    assert [(r["recipient"], r["kind"], r["state"]) for r in rows] == [(to, "assignment_created", "sent")]
    assert rows[0]["user_id"] == data.user_id
    mail = only_mail(server.sink.to(to))
    assert mail.rcpt_tos == [to]
    msg = mail.message
    assert msg["Subject"] == f"[gpulab] your GPUs on {host} are ready"
    assert msg["To"] == to
    assert msg["Message-ID"] == f"<{rows[0]['id']}@gpulab>"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = lines(mail)
    for expected in (
        f"Node:         {host}",
        "Environment:  training",
        "GPUs:         2",
        "  GPU 2        GPU-2a6e4c8d-0000-4000-8000-000000000002",
        "  GPU 5        GPU-5b7f5d9e-0000-4000-8000-000000000005",
        "CPUs:         16",
        "RAM:          65536 MB (64 GiB)",
        "Linux user:   gl_ada",
        "Expires:      2026-12-08 09:00 UTC",
        f"https://gpulab.example.org/assignments/{data.assignment_id}",
    ):
        assert expected in body, f"{expected!r} not in the mail:\n" + "\n".join(body)


async def test_a_day_before_the_end_the_user_is_told_when_it_ends(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    await notify(server)
    to, host = email(), unique("gpu")
    ends = datetime.now(UTC) + timedelta(hours=24)
    data = AssignmentExpiring(
        assignment_id=uuid.uuid4(), user_id=uuid.uuid4(), user_email=to, node_hostname=host, expires_at=ends
    )
    event = await publish(nc, ASSIGNMENT_EXPIRING, data)
    await wait_until(lambda: server.sink.to(to), timeout_s=10)
    await consumed_all(nc, engine)

    mail = only_mail(server.sink.to(to))
    assert mail.message["Subject"] == f"[gpulab] your GPUs on {host} end in about 24 h"
    at = ends.strftime("%Y-%m-%d %H:%M UTC")
    assert f"Your assignment on {host} ends in about 24 h, at {at}." in lines(mail)
    assert "Need it longer, or done early? Extend or release it:" in lines(mail)
    assert f"https://gpulab.example.org/assignments/{data.assignment_id}?extend=1" in lines(mail)
    assert [r["kind"] for r in await rows_of(engine, event)] == ["assignment_expiring"]


async def test_an_ended_assignment_mails_its_user_why_unless_the_account_was_disabled(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    await notify(server)
    expected: dict[EndReason, tuple[str, str]] = {
        "revoked": ("were revoked", "An administrator revoked your assignment on {host} at 2026-12-08 09:00 UTC."),
        "expired": ("have expired", "Your assignment on {host} expired at 2026-12-08 09:00 UTC."),
        "node_deleted": (
            "are gone: the node was removed",
            "Your assignment on {host} ended at 2026-12-08 09:00 UTC because an administrator removed the node"
            " from gpulab.",
        ),
    }
    reasons: tuple[EndReason, ...] = ("revoked", "expired", "node_deleted", "user_disabled")
    events = {reason: ended(reason) for reason in reasons}
    for data in events.values():
        await publish(nc, ASSIGNMENT_ENDED, data)
    mailed = [events[reason].user_email for reason in expected]
    await wait_until(lambda: all(server.sink.to(to) for to in mailed), timeout_s=10)
    await consumed_all(nc, engine)

    for reason, (subject_end, sentence) in expected.items():
        data = events[reason]
        mail = only_mail(server.sink.to(data.user_email))
        assert mail.message["Subject"] == f"[gpulab] your GPUs on {data.node_hostname} {subject_end}"
        assert sentence.format(host=data.node_hostname) in lines(mail)
        assert f"https://gpulab.example.org/assignments/{data.assignment_id}" in lines(mail)
    # The account is disabled: its owner is not mailed, and the event is handled, not left to retry.
    assert server.sink.to(events["user_disabled"].user_email) == []
    assert len(server.sink.received) == 3


async def test_old_events_and_a_reminder_handled_after_the_end_mail_nobody(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    await notify(server, mail_give_up_after_s=3600)
    old = datetime.now(UTC) - timedelta(hours=2)
    # A consumer created on a stream with weeks of history (a new deployment, a deleted durable)
    # must not mail all of it.
    too_old = await publish(
        nc, ASSIGNMENT_CREATED, created(to=email(), host=unique("gpu"), expires_at=None), occurred_at=old
    )
    # Recent, but notify comes to it after the end it announces: the `ended` mail says it instead.
    late = AssignmentExpiring(
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        user_email=email(),
        node_hostname=unique("gpu"),
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    after_the_end = await publish(nc, ASSIGNMENT_EXPIRING, late)
    await consumed_all(nc, engine)

    for event in (too_old, after_the_end):
        assert await processed(engine, CONSUMER, event), "handled, not missed"
        assert await rows_of(engine, event) == []
    assert server.sink.received == []


def test_names_from_the_event_cannot_add_headers_or_lines_to_the_mail() -> None:
    data = created(to="ada@example.org", host="gpu-01\r\nBcc: eve@example.org", expires_at=None).model_copy(
        update={
            "linux_username": "gl_ada\nBcc: eve@example.org",
            "environment_name": "training\r\n\r\nhttps://evil.example.org/",
            "cpus": 0,
            "ram_mb": 0,
        }
    )
    at = datetime(2026, 12, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    msg = assignment_created_message(
        data,
        recipient="ada@example.org",
        mail_id=uuid.uuid4(),
        created_at=at,
        public_url="https://lab.example.org/",
        sender="gpulab <gpulab@example.org>",
    )
    assert msg["Bcc"] is None
    assert msg["Subject"] == "[gpulab] your GPUs on gpu-01 Bcc: eve@example.org are ready"
    body = str(msg.get_content()).splitlines()
    assert "Linux user:   gl_ada Bcc: eve@example.org" in body
    assert "Environment:  training https://evil.example.org/" in body
    assert "https://evil.example.org/" not in body, "no line of its own, so no link of its own"
    assert "CPUs:         no limit" in body
    assert "RAM:          no limit" in body
    assert "Expires:      never (until an administrator ends it)" in body
    assert f"https://lab.example.org/assignments/{data.assignment_id}" in body


@pytest.mark.parametrize(
    ("left", "said"),
    [
        (timedelta(hours=24), "about 24 h"),
        (timedelta(hours=23, minutes=59, seconds=30), "about 24 h"),
        (timedelta(hours=3, minutes=10), "about 3 h"),
        (timedelta(minutes=20), "less than an hour"),
    ],
)
def test_the_time_left_is_said_in_whole_hours(left: timedelta, said: str) -> None:
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert about(start, start + left) == said
