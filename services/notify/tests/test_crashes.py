"""notify as a real process, SIGKILLed at the moments that matter for "never sent twice".

Where each kill lands is made certain by the SMTP server (it stalls the session until the test has
killed notify) or by the database (the delivery is already recorded), never by a sleep.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.events import STREAM, ensure_stream
from gpulab_devstack.testing import Launcher, ServiceProcess, wait_until

from .conftest import MakeSmtp, smtp_env
from .notify_support import delivery_row, new_invite, publish_invite
from .smtp_support import SmtpServer, TlsFiles

pytestmark = pytest.mark.slow


def kill(proc: ServiceProcess) -> None:
    assert proc.proc is not None
    proc.proc.kill()
    proc.proc.wait(10)


async def row_state(engine: AsyncEngine, invite: Any) -> tuple[str, int] | None:
    row = await delivery_row(engine, invite)
    return None if row is None else (row["state"], row["attempts"])


async def start(services: Launcher, server: SmtpServer, tls: TlsFiles) -> ServiceProcess:
    return services.spawn("notify", **smtp_env(server, tls))


async def test_killed_after_sending_and_before_any_ack_sends_nothing_again(
    services: Launcher, smtp: MakeSmtp, tls: TlsFiles, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    js = nc.jetstream()
    await ensure_stream(js)
    first = await start(services, server, tls)
    invite = new_invite()
    await publish_invite(nc, invite)
    await wait_until(lambda: len(server.sink.to(invite.email)) == 1, timeout_s=20)
    await wait_until(lambda: _is_sent(engine, invite), timeout_s=10)
    kill(first)

    # Lose every acknowledgement notify ever gave: its durable consumer starts again from the
    # first event, as if notify had died before acking any of them.
    await js.delete_consumer(STREAM, "notify-mail")
    await start(services, server, tls)
    probe = new_invite()
    await publish_invite(nc, probe)
    # The stream is delivered in order: once the probe's mail is out, the replay passed the invite.
    await wait_until(lambda: len(server.sink.to(probe.email)) == 1, timeout_s=60)
    assert len(server.sink.to(invite.email)) == 1
    assert await row_state(engine, invite) == ("sent", 1)


async def _is_sent(engine: AsyncEngine, invite: Any) -> bool:
    state = await row_state(engine, invite)
    return state is not None and state[0] == "sent"


async def test_killed_during_the_smtp_session_sends_the_mail_once_after_restart(
    services: Launcher, smtp: MakeSmtp, tls: TlsFiles, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("starttls")
    server.sink.hold_rcpt = True  # the first session stalls after RCPT TO, before any DATA
    await ensure_stream(nc.jetstream())
    first = await start(services, server, tls)
    invite = new_invite()
    await publish_invite(nc, invite)
    await wait_until(server.sink.reached.is_set, timeout_s=60)
    kill(first)
    server.sink.release.set()

    # The attempt died with its transaction: the row is open again, not lost and not half-done.
    await wait_until(lambda: _row_is(engine, invite, ("pending", 0)), timeout_s=10)
    await start(services, server, tls)
    await wait_until(lambda: _is_sent(engine, invite), timeout_s=60)
    await asyncio.sleep(1.5)  # a second copy would be on its way by now (the poll is 0.2 s)
    assert len(server.sink.to(invite.email)) == 1
    assert await row_state(engine, invite) == ("sent", 1)


async def _row_is(engine: AsyncEngine, invite: Any, expected: tuple[str, int]) -> bool:
    return await row_state(engine, invite) == expected


async def test_killed_after_the_server_took_the_mail_but_before_its_reply_resends_the_same_message(
    services: Launcher, smtp: MakeSmtp, tls: TlsFiles, nc: NATS, engine: AsyncEngine
) -> None:
    """The one window SMTP leaves open (RFC 1047; docs/adr/0008-mail-delivery.md): the server has the
    mail, notify never heard so. notify sends it again, once, as the same message (same Message-ID
    and Date), which mail clients and stores that collapse duplicates show once."""
    server = smtp("tls")
    server.sink.hold_data = True
    await ensure_stream(nc.jetstream())
    first = await start(services, server, tls)
    invite = new_invite()
    await publish_invite(nc, invite)
    await wait_until(server.sink.reached.is_set, timeout_s=60)
    kill(first)
    server.sink.release.set()

    await start(services, server, tls)
    await wait_until(lambda: _is_sent(engine, invite), timeout_s=60)
    await asyncio.sleep(1.5)
    copies = server.sink.to(invite.email)
    assert len(copies) == 2
    first_copy, second_copy = (c.message for c in copies)
    assert first_copy["Message-ID"] == second_copy["Message-ID"]
    assert first_copy["Date"] == second_copy["Date"]
    assert first_copy.get_body(("plain",)).get_content() == second_copy.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_two_replicas_share_the_mail_and_send_each_once(
    services: Launcher, smtp: MakeSmtp, tls: TlsFiles, nc: NATS
) -> None:
    server = smtp("tls")
    await ensure_stream(nc.jetstream())
    replicas = [await start(services, server, tls), await start(services, server, tls)]
    invites = [new_invite() for _ in range(30)]
    for invite in invites:
        await publish_invite(nc, invite)

    await wait_until(lambda: all(server.sink.to(i.email) for i in invites), timeout_s=60)
    await asyncio.sleep(1.5)
    assert [len(server.sink.to(i.email)) for i in invites] == [1] * len(invites)
    assert all(r.proc is not None and r.proc.poll() is None for r in replicas)
