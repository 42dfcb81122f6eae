"""inventory's and pki's node events reach the audit log, once each, through identity's consumer."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import pki
from gpulab_core.events import STREAM, Event
from gpulab_devstack.testing import TEST_AUDIT_HMAC_KEY, relay_publish, wait_until
from gpulab_identity.audit import repository as audit

from .conftest import Identity

CONSUMER = "identity-node-audit"
# A time with microseconds, well before now: the row must keep the event's time, not its arrival.
OCCURRED = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def event(event_type: str, data: dict[str, Any], *, occurred_at: datetime = OCCURRED) -> Event:
    source = event_type.split(".")[0]
    return Event(id=uuid.uuid4(), type=event_type, source=source, occurred_at=occurred_at, data=data)


async def publish(identity: Identity, ev: Event, *, msg_id: str | None = None) -> None:
    """As the outbox relay does: the envelope as compact JSON, `Nats-Msg-Id` = the event id."""
    await relay_publish(identity.runtime.js, ev, msg_id=msg_id)


def created(node_id: uuid.UUID, actor_id: uuid.UUID | None) -> dict[str, Any]:
    payload = inv.NodeCreatedEvent(
        node_id=node_id, hostname="gpu-01.lab", type="linux", management_ip="10.0.0.7", actor_id=actor_id
    )
    return payload.model_dump(mode="json")


async def node_rows(identity: Identity, node_id: uuid.UUID) -> list[dict[str, Any]]:
    page = await identity.call("audit.list", {"target_type": "node", "target_id": str(node_id), "limit": 500})
    items: list[dict[str, Any]] = page["items"]
    return items


async def recorded(identity: Identity, node_id: uuid.UUID, count: int) -> list[dict[str, Any]]:
    async def enough() -> bool:
        return len(await node_rows(identity, node_id)) >= count

    await wait_until(enough, timeout_s=20)
    return await node_rows(identity, node_id)


async def chain_intact(identity: Identity) -> bool:
    assert identity.runtime.engine is not None
    async with identity.runtime.engine.connect() as conn:
        return (await audit.verify(conn, TEST_AUDIT_HMAC_KEY.encode())).intact


async def nothing_left_to_redeliver(identity: Identity) -> None:
    async def settled() -> bool:
        info = await identity.runtime.js.consumer_info(STREAM, CONSUMER)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await wait_until(settled, timeout_s=20)


async def test_node_created_token_issued_and_deleted_each_make_one_row_at_the_event_time(identity: Identity) -> None:
    node_id = uuid.uuid4()
    expires_at = OCCURRED + timedelta(hours=24)
    secret = f"gpl_enroll_{uuid.uuid4().hex}"
    issued = pki.EnrollmentTokenIssued(node_id=node_id, expires_at=expires_at, actor_id=identity.admin_id)
    deleted = inv.NodeDeletedEvent(node_id=node_id, hostname="gpu-01.lab", actor_id=None)
    await publish(identity, event(inv.NODE_CREATED, created(node_id, identity.admin_id)))
    # A producer that wrongly put the token in its event: the log must still never hold it.
    await publish(identity, event(pki.ENROLLMENT_TOKEN_ISSUED, {**issued.model_dump(mode="json"), "token": secret}))
    await publish(
        identity, event(inv.NODE_DELETED, deleted.model_dump(mode="json"), occurred_at=OCCURRED + timedelta(1))
    )

    rows = await recorded(identity, node_id, 3)
    assert [r["action"] for r in rows] == ["node.deleted", "node.enrollment_token_issued", "node.created"]
    gone, token, made = rows
    assert all(r["target_type"] == "node" and r["target_id"] == str(node_id) for r in rows)
    assert made["details"] == {"hostname": "gpu-01.lab", "type": "linux", "management_ip": "10.0.0.7"}
    assert token["details"] == {"expires_at": expires_at.isoformat()}
    assert gone["details"] == {"hostname": "gpu-01.lab"}
    for row in (made, token):
        assert (row["actor_id"], row["actor_email"]) == (str(identity.admin_id), identity.admin_email)
    assert (gone["actor_id"], gone["actor_email"]) == (None, None), "no actor: a system action"
    assert datetime.fromisoformat(made["at"]) == OCCURRED
    assert datetime.fromisoformat(gone["at"]) == OCCURRED + timedelta(1)
    assert secret not in json.dumps(rows)
    by_action = await identity.call("audit.list", {"target_id": str(node_id), "action": "node.created"})
    assert [r["id"] for r in by_action["items"]] == [made["id"]]
    assert await chain_intact(identity), "rows dated in the past still chain in append order"


async def test_the_same_event_published_twice_makes_one_row(identity: Identity) -> None:
    node_id = uuid.uuid4()
    once = event(inv.NODE_CREATED, created(node_id, identity.admin_id))
    await publish(identity, once)
    await publish(identity, once)  # the relay again after a crash: JetStream's dedup window drops it
    await publish(identity, once, msg_id=f"{once.id}-late")  # past that window: the consumer's record drops it
    # Events are handled in stream order: once this later one is in, every copy before it was handled.
    later = inv.NodeDeletedEvent(node_id=node_id, hostname="gpu-01.lab", actor_id=identity.admin_id)
    await publish(identity, event(inv.NODE_DELETED, later.model_dump(mode="json")))

    rows = await recorded(identity, node_id, 2)
    await nothing_left_to_redeliver(identity)
    assert [r["action"] for r in await node_rows(identity, node_id)] == ["node.deleted", "node.created"]
    assert len(rows) == 2


async def test_a_malformed_event_writes_nothing_and_the_consumer_goes_on(
    identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    bad_node = uuid.uuid4()
    secret = f"gpl_enroll_{uuid.uuid4().hex}"
    js = identity.runtime.js
    # Not an event at all: the consumer terminates it.
    await js.publish(f"gpulab.events.{inv.NODE_CREATED}", b"{not json", headers={"Nats-Msg-Id": str(uuid.uuid4())})
    # Valid envelopes, payloads that are not: a missing field, a node id that is no UUID, a bad date.
    await publish(identity, event(inv.NODE_CREATED, {"node_id": str(bad_node), "type": "linux"}))
    await publish(identity, event(inv.NODE_DELETED, {"node_id": "node-7", "hostname": "gpu-01.lab"}))
    bad_token = {"node_id": str(bad_node), "expires_at": "soon", "token": secret}
    await publish(identity, event(pki.ENROLLMENT_TOKEN_ISSUED, bad_token))
    good_node = uuid.uuid4()
    await publish(identity, event(inv.NODE_CREATED, created(good_node, None)))

    assert [r["action"] for r in await recorded(identity, good_node, 1)] == ["node.created"]
    await nothing_left_to_redeliver(identity)
    assert await node_rows(identity, bad_node) == []
    assert (await identity.call("audit.list", {"target_type": "node", "target_id": "node-7"}))["items"] == []
    dropped = [r for r in caplog.records if "has a malformed payload" in r.getMessage()]
    assert len(dropped) == 3
    assert secret not in caplog.text, "a rejected payload's values are not logged"
    assert await chain_intact(identity)
