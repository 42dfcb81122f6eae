"""Admin mails about nodes, end to end: real `inventory.node_offline` / `node_online` events on
JetStream, notify, the real identity service (asked for the admins over NATS) and a real SMTP server.

Whether an event was handled is read from notify's processed-events rows, after a marker event
(notify_support.handled_through), never guessed with a sleep.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from nats.aio.client import Client as NATS
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts import identity as identity_contract
from gpulab_core.contracts import selfservice as ss
from gpulab_core.contracts.inventory import NODE_OFFLINE, NODE_ONLINE, NodeOfflineEvent, NodeOnlineEvent
from gpulab_core.contracts.scheduler import ASSIGNMENT_FAILED, AssignmentFailed
from gpulab_core.events import EVENT_SUBJECT_PREFIX, Event
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import Stack, wait_until
from gpulab_identity import main as identity_main
from gpulab_identity.bootstrap import ensure_admin
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_identity.passwords import Passwords
from gpulab_notify.deliveries.messages import node_offline_message

from .conftest import MakeSmtp, StartNotify
from .notify_support import handled_through, publish_event, rows_of
from .notify_support import processed as processed_by
from .smtp_support import Received, SmtpServer

CONSUMER = "notify-node-mail"
PASSWORD = "correct horse battery staple"

StartIdentity = Callable[[], Awaitable[Runtime]]


@dataclass(frozen=True)
class People:
    """identity's users for this module; nothing else in notify's test session makes any."""

    admins: tuple[str, str]  # active
    disabled_admin: str
    user: str  # an active plain user


def unique(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def identity_settings(stack: Stack) -> IdentitySettings:
    return IdentitySettings.model_validate(
        {"database_url": stack.service_database_url("identity"), "nats_url": stack.nats_url, "metrics_port": 0}
    )


@pytest.fixture(scope="module")
async def people(migrated: Stack) -> People:
    """Two active admins, a disabled admin and a plain user, made by identity's own rules."""
    runtime = Runtime(identity_main.spec, identity_settings(migrated))
    await runtime.start()
    try:
        settings = runtime.settings
        assert isinstance(settings, IdentitySettings)
        assert runtime.sessions is not None
        passwords = Passwords(settings.argon2_memory_kib, settings.argon2_time_cost)
        emails = [f"{unique(tag)}@example.org" for tag in ("admin", "admin", "was-admin", "user")]
        for email in emails:
            await ensure_admin(runtime.sessions, passwords, email, PASSWORD, only_if_none=False)
        page = identity_contract.UserPage.model_validate(
            await runtime.rpc_client.call("identity", "users.list", {"limit": 500})
        )
        ids = {u.email: u.id for u in page.items}
        actor = ids[emails[0]]
        for email, change in ((emails[2], {"status": "disabled"}), (emails[3], {"role": "user"})):
            await runtime.rpc_client.call("identity", "users.update", {"actor_id": actor, "id": ids[email], **change})
    finally:
        await runtime.stop()
    return People(admins=(emails[0], emails[1]), disabled_admin=emails[2], user=emails[3])


@pytest.fixture
async def identity(migrated: Stack, people: People) -> AsyncIterator[StartIdentity]:  # noqa: ARG001 (made first)
    """`await identity()`: the real identity service in this process, stopped after the test."""
    started: list[Runtime] = []

    async def start() -> Runtime:
        runtime = Runtime(identity_main.spec, identity_settings(migrated))
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        await runtime.stop()


async def publish(
    nc: NATS,
    event_type: str,
    data: BaseModel,
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    return await publish_event(nc, event_type, data, source="inventory", event_id=event_id, occurred_at=occurred_at)


async def consumed_all(nc: NATS, engine: AsyncEngine) -> None:
    """Until notify's node consumer has handled every node event published so far (see
    `handled_through`); the marker is a first contact, which mails nobody."""
    marker = NodeOnlineEvent(
        node_id=uuid.uuid4(), hostname=unique("marker"), previous_status="pending", at=datetime.now(UTC)
    )
    await handled_through(nc, engine, CONSUMER, NODE_ONLINE, marker, source="inventory")


def mails_about(server: SmtpServer, hostname: str) -> list[Received]:
    return [r for r in list(server.sink.received) if hostname in str(r.message["Subject"])]


def body(message: EmailMessage) -> str:
    assert message.get_content_type() == "text/plain"
    return str(message.get_content())


async def processed(engine: AsyncEngine, event: Event) -> bool:
    return await processed_by(engine, CONSUMER, event)


async def test_a_node_going_offline_mails_each_active_admin_once_and_a_redelivery_mails_nobody_again(
    smtp: MakeSmtp, notify: StartNotify, identity: StartIdentity, people: People, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    await identity()
    # A poll far longer than the waits below: the mails go out because the consumer wakes the senders.
    await notify(server, mail_poll_s=30)
    host, node_id = unique("gpu"), uuid.uuid4()
    last_seen = datetime(2026, 12, 1, 9, 30, 15, 250_000, tzinfo=UTC)
    offline = NodeOfflineEvent(
        node_id=node_id, hostname=host, last_seen_at=last_seen, at=last_seen + timedelta(seconds=90)
    )
    event = await publish(nc, NODE_OFFLINE, offline)

    await wait_until(lambda: len(mails_about(server, host)) >= 2, timeout_s=10)
    # The same event again: once as the relay would after a restart (JetStream drops it by its
    # Nats-Msg-Id), once without the header (past the dedup window): notify itself must drop it.
    await publish(nc, NODE_OFFLINE, offline, event_id=event.id)
    await nc.jetstream().publish(f"{EVENT_SUBJECT_PREFIX}.{NODE_OFFLINE}", event.model_dump_json().encode())
    await consumed_all(nc, engine)

    rows = await rows_of(engine, event)
    assert sorted(r["recipient"] for r in rows) == sorted(people.admins)
    mails = mails_about(server, host)
    assert len(mails) == 2
    assert sorted(m.rcpt_tos[0] for m in mails) == sorted(people.admins)
    assert all(len(m.rcpt_tos) == 1 for m in mails), "one mail per admin, each to that admin alone"
    assert server.sink.to(people.disabled_admin) == []
    assert server.sink.to(people.user) == []

    msg = mails[0].message
    assert msg["Subject"] == f"[gpulab] node {host} is offline"
    assert msg["To"] == mails[0].rcpt_tos[0]
    assert msg["Auto-Submitted"] == "auto-generated"
    # Each admin's mail is its own message: ids from the rows, not the one event.
    assert {str(m.message["Message-ID"]) for m in mails} == {f"<{r['id']}@gpulab>" for r in rows}
    text_body = body(msg)
    assert host in text_body
    assert str(node_id) in text_body
    assert "Last seen:      2026-12-01T09:30:15Z" in text_body
    assert "Offline since:  2026-12-01T09:31:45Z" in text_body
    assert f"https://gpulab.example.org/nodes/{node_id}" in text_body.splitlines()


async def test_an_assignment_its_node_could_not_apply_mails_each_active_admin_with_the_nodes_reason(
    smtp: MakeSmtp, notify: StartNotify, identity: StartIdentity, people: People, nc: NATS, engine: AsyncEngine
) -> None:
    """`scheduler.assignment_failed` (emitted once per failure, see the scheduler's test_node_state):
    one mail to each active admin, saying which node, user and assignment, and the node's reason."""
    server = smtp("tls")
    await identity()
    await notify(server)
    host, node_id, assignment_id = unique("gpu"), uuid.uuid4(), uuid.uuid4()
    failed = AssignmentFailed(
        assignment_id=assignment_id,
        user_id=uuid.uuid4(),
        user_email="ada@example.org",
        node_id=node_id,
        node_hostname=host,
        linux_username="ada",
        message="soft: reload sshd: no systemd and no sshd PID file\nBcc: eve@example.org",
        reported_at=datetime(2026, 12, 7, 4, 0, 1, tzinfo=UTC),
    )
    event = await publish_event(nc, ASSIGNMENT_FAILED, failed, source="scheduler")
    await wait_until(lambda: len(mails_about(server, host)) >= 2, timeout_s=10)
    await consumed_all(nc, engine)
    mails = mails_about(server, host)
    assert sorted(m.rcpt_tos[0] for m in mails) == sorted(people.admins)
    assert len(await rows_of(engine, event)) == 2
    msg = mails[0].message
    assert msg["Subject"] == f"[gpulab] node {host} could not set up access for ada"
    assert msg["Bcc"] is None
    lines = body(msg).splitlines()
    assert f"Assignment:     {assignment_id}" in lines
    assert "User:           ada@example.org" in lines
    assert "Reported at:    2026-12-07T04:00:01Z" in lines
    assert "Node's reason:  soft: reload sshd: no systemd and no sshd PID file Bcc: eve@example.org" in lines
    assert f"https://gpulab.example.org/nodes/{node_id}" in lines


async def test_first_contact_mails_nobody_and_coming_back_from_offline_mails_each_admin(
    smtp: MakeSmtp, notify: StartNotify, identity: StartIdentity, people: People, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    await identity()
    await notify(server)
    host, node_id = unique("gpu"), uuid.uuid4()
    now = datetime.now(UTC)

    # Enrolled and heard from for the first time: the expected end of adding a node, not news.
    first = await publish(
        nc, NODE_ONLINE, NodeOnlineEvent(node_id=node_id, hostname=host, previous_status="pending", at=now)
    )
    await consumed_all(nc, engine)
    assert await processed(engine, first), "handled, not missed"
    assert await rows_of(engine, first) == []

    since = datetime(2026, 12, 1, 22, 0, 5, tzinfo=UTC)
    back = NodeOnlineEvent(node_id=node_id, hostname=host, previous_status="offline", at=now, offline_since=since)
    came_back = await publish(nc, NODE_ONLINE, back)
    await wait_until(lambda: len(mails_about(server, host)) >= 2, timeout_s=10)
    await consumed_all(nc, engine)

    mails = mails_about(server, host)
    assert sorted(m.rcpt_tos[0] for m in mails) == sorted(people.admins)
    assert {str(m.message["Subject"]) for m in mails} == {f"[gpulab] node {host} is back online"}
    text_body = body(mails[0].message)
    assert str(node_id) in text_body
    assert "Offline since:  2026-12-01T22:00:05Z" in text_body
    assert f"https://gpulab.example.org/nodes/{node_id}" in text_body.splitlines()
    assert len(await rows_of(engine, came_back)) == 2


async def test_while_identity_is_unreachable_the_event_waits_and_is_mailed_once_it_answers(
    smtp: MakeSmtp,
    notify: StartNotify,
    identity: StartIdentity,
    people: People,
    nc: NATS,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = smtp("tls")
    await notify(server)  # and no identity yet
    host = unique("gpu")
    offline = NodeOfflineEvent(node_id=uuid.uuid4(), hostname=host, last_seen_at=None, at=datetime.now(UTC))
    with caplog.at_level(logging.WARNING, logger="gpulab_core.events"):
        event = await publish(nc, NODE_OFFLINE, offline)
        await wait_until(lambda: f"event {event.id}" in caplog.text and "identity is not running" in caplog.text, 10)
    assert not await processed(engine, event), "not recorded as done: it will come again"
    assert await rows_of(engine, event) == []

    await identity()
    # The consumer's first retry comes 2 s after the failure.
    await wait_until(lambda: len(mails_about(server, host)) >= 2, timeout_s=15)
    await consumed_all(nc, engine)
    assert sorted(m.rcpt_tos[0] for m in mails_about(server, host)) == sorted(people.admins)
    assert "Last seen:      never" in body(mails_about(server, host)[0].message)


async def test_a_request_that_needs_approval_mails_each_active_admin_and_a_queued_one_nobody(
    smtp: MakeSmtp, notify: StartNotify, identity: StartIdentity, people: People, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    await identity()
    await notify(server)
    env, who = unique("env"), f"{unique('ada')}@example.org"

    def submitted(status: ss.RequestStatus) -> ss.RequestSubmitted:
        return ss.RequestSubmitted(
            request_id=uuid.uuid4(),
            kind="new",
            user_id=uuid.uuid4(),
            user_email=who,
            environment_id=uuid.uuid4(),
            environment_name=env,
            group_id=None,
            assignment_id=None,
            gpus=4,
            hours=48,
            note="deadline friday",
            status=status,
            position=2 if status == "queued" else None,
        )

    pending = await publish_event(nc, ss.REQUEST_SUBMITTED, submitted("pending_approval"), source="scheduler")
    queued = await publish_event(nc, ss.REQUEST_SUBMITTED, submitted("queued"), source="scheduler")
    await wait_until(lambda: len(mails_about(server, env)) >= 2, timeout_s=10)
    await consumed_all(nc, engine)

    mails = mails_about(server, env)
    assert sorted(m.rcpt_tos[0] for m in mails) == sorted(people.admins)
    assert mails[0].message["Subject"] == f"[gpulab] {who} asks for 4 GPUs for 48 h in {env}"
    text_body = body(mails[0].message).splitlines()
    for expected in (
        f"User:           {who}",
        "GPUs:           4",
        "Hours:          48",
        "Note:           deadline friday",
        "https://gpulab.example.org/admin/requests",
    ):
        assert expected in text_body, f"{expected!r} not in the mail:\n" + "\n".join(text_body)
    assert len(await rows_of(engine, pending)) == 2
    assert await rows_of(engine, queued) == [], "a queued request needs nobody"


async def test_an_event_older_than_the_give_up_age_is_handled_without_mailing_anyone(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine
) -> None:
    # No identity needed: the age is checked before the admins are asked for. A consumer created on
    # a stream with weeks of history (a new deployment, a deleted durable) must not mail all of it.
    server = smtp("tls")
    await notify(server, mail_give_up_after_s=3600)
    old = datetime.now(UTC) - timedelta(hours=2)
    offline = NodeOfflineEvent(node_id=uuid.uuid4(), hostname=unique("gpu"), last_seen_at=old, at=old)
    event = await publish(nc, NODE_OFFLINE, offline, occurred_at=old)
    await consumed_all(nc, engine)
    assert await processed(engine, event)
    assert await rows_of(engine, event) == []


def test_a_hostname_cannot_add_headers_or_lines_to_the_mail() -> None:
    at = datetime(2026, 12, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    node = NodeOfflineEvent(node_id=uuid.uuid4(), hostname="gpu-01\r\nBcc: eve@example.org", last_seen_at=None, at=at)
    msg = node_offline_message(
        node,
        recipient="admin@example.org",
        mail_id=uuid.uuid4(),
        created_at=at,
        public_url="https://lab.example.org",
        sender="gpulab <gpulab@example.org>",
    )
    assert msg["Bcc"] is None
    assert msg["Subject"] == "[gpulab] node gpu-01 Bcc: eve@example.org is offline"
    lines = str(msg.get_content()).splitlines()
    assert "Last seen:      never" in lines
    assert "Offline since:  2026-12-01T08:00:00Z" in lines, "in UTC, whatever zone the event used"
    assert f"https://lab.example.org/nodes/{node.node_id}" in lines
