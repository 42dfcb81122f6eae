"""notify's delivery reports reach the user listing (through the stream, via identity's consumer)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gpulab_core.contracts import events as ev
from gpulab_devstack.testing import new_event, relay_publish, wait_until

from .conftest import Identity, unique_email
from .test_invites import invite


async def publish_delivery(
    identity: Identity, user: dict[str, object], invite_id: str, state: str, at: datetime, detail: str | None = None
) -> None:
    data = ev.InviteDelivery(
        invite_id=uuid.UUID(invite_id),
        user_id=uuid.UUID(str(user["id"])),
        state=state,
        detail=detail,
        at=at,
    )
    await relay_publish(identity.runtime.js, new_event(ev.INVITE_DELIVERY, data, occurred_at=at))


async def test_failed_delivery_shows_in_the_user_listing_and_older_reports_do_not_win(identity: Identity) -> None:
    email = unique_email()
    user = await invite(identity, email)
    events_page = await identity.call("audit.list", {"target_id": user["id"], "action": "user.invited"})
    invite_id = await _invite_id(identity, str(user["id"]))
    now = datetime.now(UTC)
    await publish_delivery(identity, user, invite_id, "failed", now, "550 5.1.1 no such mailbox")
    await publish_delivery(identity, user, invite_id, "retrying", now - timedelta(seconds=5), "connection refused")

    async def shows_failed() -> bool:
        got = await identity.call("users.get", {"id": user["id"]})
        return bool(got["invite_delivery"]["state"] == "failed")

    await wait_until(shows_failed, timeout_s=20)
    got = await identity.call("users.get", {"id": user["id"]})
    assert got["invite_delivery"]["detail"] == "550 5.1.1 no such mailbox"
    listed = await identity.call("users.list", {"status": "invited", "limit": 500})
    mine = [u for u in listed["items"] if u["id"] == user["id"]]
    assert mine[0]["invite_delivery"]["state"] == "failed"
    assert events_page["items"]
    failures = await identity.call("audit.list", {"target_id": user["id"], "action": "user.invite_delivery_failed"})
    assert len(failures["items"]) == 1


async def _invite_id(identity: Identity, user_id: str) -> str:
    from sqlalchemy import select

    from gpulab_identity.models import invites

    assert identity.runtime.sessions is not None
    async with identity.runtime.sessions() as session:
        return str(await session.scalar(select(invites.c.id).where(invites.c.user_id == uuid.UUID(user_id))))
