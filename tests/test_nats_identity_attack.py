"""Attack tests (issue 12, finding 2): a service's NATS identity cannot forge another service's
events nor call an operation the table does not give it; nats-server itself refuses (docs/adr/0016)."""

from __future__ import annotations

import asyncio
import json
import uuid

import nats
import pytest
from nats.errors import NoRespondersError
from nats.js.errors import NotFoundError

from gpulab_core.contracts import operations as ops
from gpulab_core.events import STREAM
from gpulab_devstack.testing import Launcher, Stack, new_event, wait_until

from .nats_identity_support import connect_as

FORGED_SUBJECT = "gpulab.events.scheduler.assignment_created"


async def test_forged_scheduler_event_published_with_notify_identity_is_refused(migrated: Stack) -> None:
    watcher = await nats.connect(migrated.nats_url)
    seen = await watcher.subscribe("gpulab.events.scheduler.>")
    notify = await connect_as(migrated, "notify")
    forged = new_event("scheduler.assignment_created", {"forged": True}, source="scheduler")
    body = json.dumps(forged.model_dump(mode="json")).encode()
    try:
        with pytest.raises((nats.errors.TimeoutError, NoRespondersError)):
            await notify.nc.jetstream().publish(
                FORGED_SUBJECT, body, timeout=2, headers={"Nats-Msg-Id": str(forged.id)}
            )
        await notify.nc.publish(FORGED_SUBJECT, body)  # core NATS too: the stream listens there
        await notify.nc.flush()
        await wait_until(lambda: notify.refused(FORGED_SUBJECT), timeout_s=10)
        with pytest.raises(nats.errors.TimeoutError):  # no subscriber sees it
            await seen.next_msg(timeout=1.5)
        # Nor is it in the stream that every consumer reads.
        try:
            last = await watcher.jetstream().get_last_msg(STREAM, FORGED_SUBJECT)
        except NotFoundError:
            pass
        else:
            assert str(forged.id) not in (last.data or b"").decode()
        # The owner may: the refusal is about who, not what.
        scheduler = await connect_as(migrated, "scheduler")
        probe = "gpulab.events.scheduler.permission_probe"
        await scheduler.nc.publish(probe, b"{}")
        assert (await seen.next_msg(timeout=5)).subject == probe
        await scheduler.nc.close()
    finally:
        await notify.nc.close()
        await watcher.close()


async def test_users_update_request_made_with_notify_identity_is_refused(services: Launcher, migrated: Stack) -> None:
    services.spawn("identity")
    gateway = await connect_as(migrated, "gateway")
    notify = await connect_as(migrated, "notify")
    change = {"actor_id": str(uuid.uuid4()), "id": str(uuid.uuid4()), "role": "admin"}
    body = json.dumps(change).encode()

    async def identity_answers() -> bool:
        try:
            await gateway.nc.request(ops.HEALTH["identity"].subject, b"{}", timeout=2)
        except (NoRespondersError, nats.errors.TimeoutError):
            return False
        return True

    try:
        await wait_until(identity_answers, timeout_s=90, interval_s=0.5)
        # The gateway, which the table lists as the caller, is answered (no such user here).
        reply = json.loads((await gateway.nc.request(ops.USERS_UPDATE.subject, body, timeout=5)).data)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "not_found"
        # notify may ask users.list (it is among its callers) ...
        listed = await notify.nc.request(ops.USERS_LIST.subject, b'{"limit": 1}', timeout=5)
        assert json.loads(listed.data)["ok"] is True
        # ... but its users.update never reaches identity.
        with pytest.raises((NoRespondersError, nats.errors.TimeoutError)):
            await notify.nc.request(ops.USERS_UPDATE.subject, body, timeout=3)
        await wait_until(lambda: notify.refused(ops.USERS_UPDATE.subject), timeout_s=10)
    finally:
        await asyncio.gather(gateway.nc.close(), notify.nc.close())
