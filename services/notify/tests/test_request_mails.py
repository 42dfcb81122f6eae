"""The users' mails about their self-service requests, end to end: real `scheduler.request_*` events
on JetStream, notify, and a real SMTP server (the address is in the event: no identity is needed).
The admins' mail about a request that needs approval is in test_node_mails.py, with the admins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts import selfservice as ss
from gpulab_devstack.testing import wait_until

from .conftest import MakeSmtp, StartNotify
from .notify_support import rows_of
from .test_assignment_mails import consumed_all, email, lines, only_mail, publish


def request(status: ss.RequestStatus, *, to: str, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": uuid.uuid4(),
        "kind": "new",
        "user_id": uuid.uuid4(),
        "user_email": to,
        "environment_id": uuid.uuid4(),
        "environment_name": "training",
        "group_id": None,
        "assignment_id": None,
        "gpus": 2,
        "hours": 24,
        "note": "thesis run\nBcc: eve@example.org",
        "status": status,
        **extra,
    }


async def test_a_request_granted_after_waiting_mails_its_user_where_to_find_it(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    await notify(server)
    waited, at_once = email(), email()
    assignment = uuid.uuid4()
    expires = datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    granted = ss.RequestGranted(
        **request("granted", to=waited, assignment_id=assignment), waited=True, expires_at=expires
    )
    immediate = ss.RequestGranted(
        **request("granted", to=at_once, assignment_id=uuid.uuid4()), waited=False, expires_at=expires
    )
    event = await publish(nc, ss.REQUEST_GRANTED, granted)
    quiet = await publish(nc, ss.REQUEST_GRANTED, immediate)
    await wait_until(lambda: server.sink.to(waited), timeout_s=10)
    await consumed_all(nc, engine)

    mail = only_mail(server.sink.to(waited))
    assert mail.message["Subject"] == "[gpulab] granted: 2 GPUs in training for 24 h"
    body = lines(mail)
    for expected in (
        "Your request for 2 GPUs in training for 24 h was granted.",
        "Environment:  training",
        "GPUs:         2",
        "Expires:      2026-12-09 09:00 UTC",
        "Your note:    thesis run Bcc: eve@example.org",
        f"https://gpulab.example.org/assignments/{assignment}",
    ):
        assert expected in body, f"{expected!r} not in the mail:\n" + "\n".join(body)
    assert [r["kind"] for r in await rows_of(engine, event)] == ["request_granted"]
    # Granted at once: the web app said so, and the assignment's own mail follows; no second mail.
    assert server.sink.to(at_once) == []
    assert await rows_of(engine, quiet) == []


async def test_a_denied_request_mails_its_user_the_reason(
    smtp: MakeSmtp, notify: StartNotify, nc: NATS, engine: AsyncEngine
) -> None:
    server = smtp("tls")
    await notify(server)
    to = email()
    denied = ss.RequestDenied(
        **request("denied", to=to, kind="extension", assignment_id=uuid.uuid4(), hours=12),
        reason="the cluster is reserved for the review week",
    )
    event = await publish(nc, ss.REQUEST_DENIED, denied)
    await wait_until(lambda: server.sink.to(to), timeout_s=10)
    await consumed_all(nc, engine)

    mail = only_mail(server.sink.to(to))
    assert mail.message["Subject"] == "[gpulab] denied: 12 more hours on your assignment in training"
    body = lines(mail)
    assert "An administrator denied your request for 12 more hours on your assignment in training." in body
    assert "Reason:       the cluster is reserved for the review week" in body
    assert "https://gpulab.example.org" in body
    assert [r["kind"] for r in await rows_of(engine, event)] == ["request_denied"]
