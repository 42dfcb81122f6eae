"""Invite mail end to end: a real `identity.user_invited` event on JetStream, notify, a real SMTP server."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_devstack.testing import wait_until

from .conftest import MakeSmtp, StartNotify
from .notify_support import PUBLIC_URL, DeliveryEvents, delivery_row, new_invite, publish_invite, token_of
from .smtp_support import Received


def parts(message: EmailMessage) -> tuple[str, str]:
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert isinstance(text_part, EmailMessage)
    assert isinstance(html_part, EmailMessage)
    return str(text_part.get_content()), str(html_part.get_content())


def the_link(text_body: str) -> str:
    return next(line.strip() for line in text_body.splitlines() if line.strip().startswith("https://"))


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_invite_mail_arrives_once_with_a_working_link(
    smtp: MakeSmtp,
    notify: StartNotify,
    nc: NATS,
    engine: AsyncEngine,
    delivery_events: DeliveryEvents,
    mode: str,
) -> None:
    server = smtp(mode)
    # A poll far longer than the wait below: the mail goes out because the consumer wakes the sender.
    await notify(server, mail_poll_s=30)
    invite = new_invite(name='<b>Ada</b> & "Bob"')
    event = await publish_invite(nc, invite)

    await wait_until(lambda: delivery_events.states(invite) == ["pending", "sent"], timeout_s=10)
    got = server.sink.to(invite.email)
    assert len(got) == 1
    mail: Received = got[0]
    assert mail.tls, "the session was encrypted"
    assert mail.authenticated == (mode == "starttls"), "credentials are used where the server asks for them"
    assert mail.rcpt_tos == [invite.email]
    assert mail.mail_from == "noreply@gpulab.example.org"

    msg = mail.message
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Message-ID"] == f"<{event.id}@gpulab>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == invite.email
    text_body, html_body = parts(msg)

    # The link is the web app's accept page under the public URL, and gives back the exact token.
    link = the_link(text_body)
    assert link.startswith("https://gpulab.example.org/invite/")
    url = urlsplit(link)
    assert f"{url.scheme}://{url.netloc}/" == PUBLIC_URL
    assert unquote(url.path.removeprefix("/invite/")) == token_of(invite)
    assert url.query == url.fragment == "", "the token's ? and # are escaped, not cut off"
    # The HTML part links to the same place and shows the inviter's name as text, not markup.
    assert f'href="{link}"' in html_body
    assert "&lt;b&gt;Ada&lt;/b&gt; &amp; &quot;Bob&quot;" in html_body
    assert "<b>Ada" not in html_body
    assert '<b>Ada</b> & "Bob" invited you' in text_body

    row = await delivery_row(engine, invite)
    assert row is not None
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    assert row["payload"] is None, "the invite token is not kept once the mail is out"
    sent = delivery_events.for_invite(invite)[-1]["data"]
    assert (sent["user_id"], sent["detail"]) == (str(invite.user_id), None)

    # A second copy of the same event (JetStream dedup window passed, or a second publisher)
    # changes nothing: the delivery is keyed by the event id.
    await publish_invite(nc, invite, event_id=event.id)
    await nc.jetstream().publish("gpulab.events.identity.user_invited", event.model_dump_json().encode())
    await asyncio.sleep(1.5)
    assert len(server.sink.to(invite.email)) == 1
    assert delivery_events.states(invite) == ["pending", "sent"]


@pytest.mark.slow
async def test_mail_arrives_exactly_once_after_the_smtp_server_was_down_for_a_minute(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine, delivery_events: DeliveryEvents
) -> None:
    server = smtp("starttls", start=False)
    await notify(server, mail_retry_initial_s=2, mail_retry_max_s=10)
    invite = new_invite()
    down_since = time.monotonic()
    await publish_invite(nc, invite)

    await wait_until(lambda: delivery_events.states(invite) == ["pending", "retrying"], timeout_s=20)
    detail = delivery_events.for_invite(invite)[-1]["data"]["detail"]
    assert "Connection refused" in detail, detail
    # Down for a minute; the mail is retried on its backoff meanwhile and stays `retrying`.
    await asyncio.sleep(max(0.0, 60 - (time.monotonic() - down_since)))
    row = await delivery_row(engine, invite)
    assert row is not None
    assert row["state"] == "retrying"
    assert row["attempts"] >= 5, row  # 2 s, 4 s, 8 s, then every 8-10 s over the minute
    assert row["payload"] is not None, "kept until the mail is out"

    server.start()
    await wait_until(lambda: len(server.sink.to(invite.email)) >= 1, timeout_s=20)
    await wait_until(lambda: delivery_events.states(invite)[-1:] == ["sent"], timeout_s=10)
    await asyncio.sleep(2)  # a second copy would be sent within this (the poll is 0.2 s)
    assert len(server.sink.to(invite.email)) == 1
    assert delivery_events.states(invite) == ["pending", "retrying", "sent"]
    row = await delivery_row(engine, invite)
    assert row is not None
    assert row["state"] == "sent"
    assert row["last_error"] is None


async def test_temporary_refusal_451_is_retried_then_sent(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine, delivery_events: DeliveryEvents
) -> None:
    server = smtp("tls")
    invite = new_invite()
    server.sink.replies[invite.email] = ["451 4.3.0 mailbox busy, try later"] * 2
    await notify(server)
    # A field this notify does not know (a newer identity) does not make the invite invalid.
    await publish_invite(nc, invite, extra={"locale": "de"})

    await wait_until(lambda: delivery_events.states(invite)[-1:] == ["sent"], timeout_s=20)
    assert delivery_events.states(invite) == ["pending", "retrying", "sent"]
    assert "451 4.3.0 mailbox busy" in delivery_events.for_invite(invite)[1]["data"]["detail"]
    assert len(server.sink.to(invite.email)) == 1
    row = await delivery_row(engine, invite)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("sent", 3)


async def test_unknown_recipient_550_fails_at_once_with_the_reason_recorded(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine, delivery_events: DeliveryEvents
) -> None:
    server = smtp("starttls")
    invite = new_invite()
    server.sink.replies[invite.email] = ["550 5.1.1 no such user here"] * 5
    await notify(server)
    await publish_invite(nc, invite)

    await wait_until(lambda: delivery_events.states(invite)[-1:] == ["failed"], timeout_s=20)
    assert delivery_events.states(invite) == ["pending", "failed"]
    detail = delivery_events.for_invite(invite)[-1]["data"]["detail"]
    assert detail == "recipient refused: 550 5.1.1 no such user here"
    row = await delivery_row(engine, invite)
    assert row is not None
    assert (row["state"], row["attempts"], row["last_error"]) == ("failed", 1, detail)
    assert len(server.sink.replies[invite.email]) == 4, "asked once, never again"
    assert server.sink.to(invite.email) == []


async def test_an_invite_that_expired_before_it_could_be_sent_fails_without_a_mail(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, delivery_events: DeliveryEvents
) -> None:
    from datetime import timedelta

    server = smtp("tls")
    await notify(server)
    invite = new_invite(expires_in=timedelta(seconds=-1))
    await publish_invite(nc, invite)

    await wait_until(lambda: delivery_events.states(invite)[-1:] == ["failed"], timeout_s=20)
    assert (
        delivery_events.for_invite(invite)[-1]["data"]["detail"] == "the invite expired before the mail could be sent"
    )
    assert server.sink.to(invite.email) == []


@pytest.mark.parametrize(
    ("server_mode", "notify_settings", "says"),
    [
        # The server offers no STARTTLS: notify must not fall back to sending in clear text.
        ("none", {"smtp_security": "starttls"}, "does not offer STARTTLS"),
        # A certificate from a CA notify does not trust (the system store, not ours).
        ("tls", {"smtp_ca_file": None}, "CERTIFICATE_VERIFY_FAILED"),
    ],
)
async def test_an_insecure_server_gets_no_mail_and_the_delivery_waits(
    smtp: MakeSmtp,
    notify: StartNotify,
    nc: NATS,
    delivery_events: DeliveryEvents,
    server_mode: str,
    notify_settings: dict[str, object],
    says: str,
) -> None:
    server = smtp(server_mode)
    await notify(server, **notify_settings)
    invite = new_invite()
    await publish_invite(nc, invite)

    await wait_until(lambda: delivery_events.states(invite) == ["pending", "retrying"], timeout_s=20)
    assert says in delivery_events.for_invite(invite)[-1]["data"]["detail"]
    assert server.sink.received == []


async def test_without_a_security_setting_notify_insists_on_starttls_and_sends_nothing_in_clear(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, delivery_events: DeliveryEvents
) -> None:
    # The attack: a deployment that forgot GPULAB_SMTP_SECURITY would mail every invite token in
    # clear text past anyone on the path to the relay. Clear text is only ever chosen explicitly.
    server = smtp("none")
    await notify(server, unset=("GPULAB_SMTP_SECURITY",))
    invite = new_invite()
    await publish_invite(nc, invite)

    await wait_until(lambda: delivery_events.states(invite) == ["pending", "retrying"], timeout_s=20)
    assert "does not offer STARTTLS" in delivery_events.for_invite(invite)[-1]["data"]["detail"]
    assert server.sink.received == []


async def test_database_lost_after_the_server_accepted_does_not_send_the_mail_again(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine, delivery_events: DeliveryEvents
) -> None:
    server = smtp("tls")
    server.sink.hold_data = True
    await notify(server)
    invite = new_invite()
    await publish_invite(nc, invite)
    await wait_until(server.sink.reached.is_set, timeout_s=20)
    # The sender's connection (the one holding the delivery's row lock) dies while the server
    # finishes taking the mail: notify hears 250, then cannot record it.
    async with engine.begin() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = 'deliveries' AND l.mode = 'RowShareLock' AND l.pid <> pg_backend_pid()"
            )
        )
    assert killed == 1
    server.sink.release.set()

    await wait_until(lambda: delivery_events.states(invite)[-1:] == ["sent"], timeout_s=20)
    await asyncio.sleep(1)
    assert len(server.sink.to(invite.email)) == 1
    assert delivery_events.states(invite) == ["pending", "sent"]
    row = await delivery_row(engine, invite)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("sent", 1)
