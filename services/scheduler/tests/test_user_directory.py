"""The scheduler's copy of user facts: kept from identity's events and answers, used instead of asking
identity per assignment, newest fact wins, and a disable waits for an assignment in flight."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from gpulab_core.contracts import events as identity_events
from gpulab_devstack.testing import wait_until

from .conftest import Cluster, publish


async def users_get_count(cluster: Cluster) -> int:
    """How many `users.get` requests identity has served (NATS micro's own statistics)."""
    reply = await cluster.nc.request("$SRV.STATS.identity", b"", timeout=5)
    stats = json.loads(reply.data)
    return sum(e["num_requests"] for e in stats["endpoints"] if e["name"] == "users_get")


async def facts(cluster: Cluster, user_id: uuid.UUID) -> tuple[str | None, list[str], int] | None:
    async with cluster.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, public_keys, keys_version FROM scheduler.users WHERE id = :id"), {"id": user_id}
            )
        ).first()
    return (row.status, list(row.public_keys), row.keys_version) if row else None


async def test_an_assignment_asks_identity_only_while_the_copy_cannot_answer(cluster: Cluster) -> None:
    env = await cluster.environment([await cluster.node(4)])
    user = await cluster.user()
    # The key's event reaches the copy; the user's status is not known from an event yet.
    await wait_until(lambda: _has_keys(cluster, user), timeout_s=15)
    before = await users_get_count(cluster)
    await cluster.assign(user, env)
    assert await users_get_count(cluster) == before + 1  # asked once, and remembered
    status, keys, version = await facts(cluster, user) or (None, [], -1)
    assert (status, len(keys)) == ("active", 1)
    assert version >= 1
    await cluster.assign(user, env)
    await cluster.assign(user, env)
    assert await users_get_count(cluster) == before + 1  # the copy answered


async def _has_keys(cluster: Cluster, user_id: uuid.UUID) -> bool:
    known = await facts(cluster, user_id)
    return known is not None and len(known[1]) == 1


async def test_a_disabled_user_is_refused_and_the_copy_follows_identity(cluster: Cluster) -> None:
    env = await cluster.environment([await cluster.node(4)])
    user, actor = await cluster.user(), await cluster.user(with_key=False)
    made = await cluster.assign(user, env)
    await cluster.rpc.call("identity", "users.update", {"actor_id": str(actor), "id": str(user), "status": "disabled"})
    await wait_until(lambda: _status_is(cluster, user, "disabled"), timeout_s=15)
    error = await cluster.error("assignments.create", _dynamic(user, env))
    assert error.code == "conflict"
    assert "disabled" in str(error)
    ended = await cluster.call("assignments.get", {"id": made["id"]})
    assert ended["status"] == "revoked"
    # Enabled again: the copy says disabled until the event lands, and then it is asked, not refused.
    await cluster.rpc.call("identity", "users.update", {"actor_id": str(actor), "id": str(user), "status": "active"})
    again = await cluster.assign(user, env)
    assert again["status"] == "active"


def _dynamic(user: uuid.UUID, env: dict[str, object]) -> dict[str, object]:
    return {"user_id": str(user), "environment_id": env["id"], "gpus": 1, "placement": "dynamic"}


async def _status_is(cluster: Cluster, user_id: uuid.UUID, status: str) -> bool:
    known = await facts(cluster, user_id)
    return known is not None and known[0] == status


async def test_older_facts_never_replace_newer_ones(cluster: Cluster) -> None:
    user_id = uuid.uuid4()
    now = datetime.now(UTC)
    email = f"late.{user_id.hex[:6]}@example.org"
    changed = identity_events.UserStatusChanged
    await publish(
        cluster.nc,
        identity_events.USER_STATUS_CHANGED,
        changed(user_id=user_id, email=email, status="disabled"),
        occurred_at=now,
    )
    await wait_until(lambda: _status_is(cluster, user_id, "disabled"), timeout_s=15)
    older = changed(user_id=user_id, email=email, status="active")
    await publish(cluster.nc, identity_events.USER_STATUS_CHANGED, older, occurred_at=now - timedelta(seconds=5))
    keys = identity_events.SshKeysChanged
    await publish(
        cluster.nc,
        identity_events.SSH_KEYS_CHANGED,
        keys(user_id=user_id, public_keys=["ssh-ed25519 AAAA new"], version=7),
    )
    await wait_until(lambda: _has_keys(cluster, user_id), timeout_s=15)
    await publish(
        cluster.nc,
        identity_events.SSH_KEYS_CHANGED,
        keys(user_id=user_id, public_keys=["ssh-ed25519 AAAA old", "x"], version=6),
    )
    # Both stale events were handled (a later marker event of the same consumers is through).
    marker = uuid.uuid4()
    await publish(
        cluster.nc, identity_events.USER_STATUS_CHANGED, changed(user_id=marker, email="m@example.org", status="active")
    )
    await publish(cluster.nc, identity_events.SSH_KEYS_CHANGED, keys(user_id=marker, public_keys=["k"], version=1))
    await wait_until(lambda: _status_is(cluster, marker, "active"), timeout_s=15)
    await wait_until(lambda: _has_keys(cluster, marker), timeout_s=15)
    assert await facts(cluster, user_id) == ("disabled", ["ssh-ed25519 AAAA new"], 7)


async def test_a_disable_waits_for_an_assignment_holding_the_user_and_then_ends_it(cluster: Cluster) -> None:
    env = await cluster.environment([await cluster.node(4)])
    user, actor = await cluster.user(), await cluster.user(with_key=False)
    await cluster.assign(user, env)  # the copy knows the user now
    async with cluster.engine.connect() as conn:
        # What an assignment's transaction holds while it places (users/directory.confirm_active).
        transaction = await conn.begin()
        await conn.execute(text("SELECT 1 FROM scheduler.users WHERE id = :id FOR SHARE"), {"id": user})
        await cluster.rpc.call(
            "identity", "users.update", {"actor_id": str(actor), "id": str(user), "status": "disabled"}
        )
        await asyncio.sleep(1.5)
        assert await _status_is(cluster, user, "active")  # the consumer waits on the row
        await transaction.commit()
    await wait_until(lambda: _status_is(cluster, user, "disabled"), timeout_s=15)
    mine = await cluster.call("assignments.list", {"user_id": str(user), "status": "active", "limit": 10})
    assert mine["items"] == []
