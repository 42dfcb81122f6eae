"""Assignments on exact GPUs: placement, capacity under concurrency, refusals, ends, usernames."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from gpulab_core.contracts import events as identity_events
from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import scheduler as c
from gpulab_core.errors import RemoteError
from gpulab_devstack.testing import wait_until

from .conftest import Cluster, publish


def dynamic(user: uuid.UUID, env: dict[str, Any], n: int = 1) -> dict[str, Any]:
    return {"user_id": str(user), "environment_id": env["id"], "gpus": n, "placement": "dynamic"}


async def reasons(cluster: Cluster, assignment_id: str) -> list[str]:
    return [e["reason"] for e in await events_of(cluster, "scheduler.assignment_ended", assignment_id)]


async def events_of(cluster: Cluster, event_type: str, assignment_id: str) -> list[dict[str, Any]]:
    js = cluster.nc.jetstream()
    last = (await js.stream_info("GPULAB_EVENTS")).state.last_seq
    sub = await js.subscribe(f"gpulab.events.{event_type}", ordered_consumer=True)
    found: list[dict[str, Any]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1)
            except Exception:
                return found
            import json

            data = json.loads(msg.data)["data"]
            if data.get("assignment_id") == assignment_id:
                found.append(data)
            if msg.metadata.sequence.stream >= last:
                return found
    finally:
        await sub.unsubscribe()


async def test_fifty_concurrent_requests_through_two_replicas_get_exactly_the_eight_gpus(cluster: Cluster) -> None:
    nodes = [await cluster.node(4), await cluster.node(4)]
    env = await cluster.environment(nodes)
    users = [await cluster.user() for _ in range(5)]
    before = await cluster.held()

    async def one(i: int) -> dict[str, Any] | RemoteError:
        # Alternate between the replicas' own connections: both place at the same time.
        rpc = cluster.replicas[i % 2].rpc_client
        body = {"user_id": str(users[i % 5]), "environment_id": env["id"], "gpus": 1, "placement": "dynamic"}
        try:
            made: dict[str, Any] = await rpc.call("scheduler", "assignments.create", body, timeout_s=60)
            return made
        except RemoteError as exc:
            return exc

    results = await asyncio.gather(*(one(i) for i in range(50)))
    made = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, RemoteError)]
    assert len(made) == 8
    assert len(refused) == 42
    assert {r.code for r in refused} == {"no_capacity"}
    held = [h for h in await cluster.held() if h not in before]
    assert len(held) == 8
    assert len(set(held)) == 8, "no GPU is held twice"
    assert {g["uuid"] for m in made for g in m["gpus"]} == {gpu for _, gpu in held}
    assert {m["node_id"] for m in made} == {str(n) for n in nodes}
    for m in made:
        await cluster.call("assignments.revoke", {"id": m["id"]})


async def test_dynamic_placement_is_best_fit_and_takes_the_lowest_free_gpus(cluster: Cluster) -> None:
    big, small = await cluster.node(8), await cluster.node(2)
    env = await cluster.environment([big, small])
    user = await cluster.user()
    first = await cluster.assign(user, env, 1)
    # Fewest free GPUs first: the 2-GPU node, so the 8-GPU node stays whole for big requests.
    assert first["node_id"] == str(small)
    assert [g["index"] for g in first["gpus"]] == [0]
    second = await cluster.assign(user, env, 2)
    assert second["node_id"] == str(big)
    assert [g["index"] for g in second["gpus"]] == [0, 1]
    too_many = await cluster.error("assignments.create", dynamic(user, env, 7))
    assert too_many.code == "no_capacity"
    assert "not enough free GPUs" in too_many.message
    for m in (first, second):
        await cluster.call("assignments.revoke", {"id": m["id"]})


async def test_bad_requests_get_a_clear_error_and_create_nothing(cluster: Cluster) -> None:
    inside, outside = await cluster.node(4), await cluster.node(4)
    offline = await cluster.node(4, status="pending")
    env = await cluster.environment([inside, offline])
    user = await cluster.user()
    keyless = await cluster.user(with_key=False)
    before = await cluster.held()
    base = {"user_id": str(user), "environment_id": env["id"], "gpus": 1, "placement": "fixed"}
    cases = {
        "outside": ({**base, "node_id": str(outside)}, "invalid_request"),
        "zero gpus": ({**base, "node_id": str(inside), "gpus": 0}, "invalid_request"),
        "more than it has": ({**base, "node_id": str(inside), "gpus": 5}, "invalid_request"),
        "offline": ({**base, "node_id": str(offline)}, "no_capacity"),
        "no node named": (base, "invalid_request"),
        "dynamic with a node": ({**base, "placement": "dynamic", "node_id": str(inside)}, "invalid_request"),
        "unknown user": ({**base, "node_id": str(inside), "user_id": str(uuid.uuid4())}, "invalid_request"),
        "no ssh key": ({**base, "node_id": str(inside), "user_id": str(keyless)}, "user_has_no_ssh_key"),
        "unknown environment": ({**base, "node_id": str(inside), "environment_id": str(uuid.uuid4())}, "not_found"),
        "expiry in the past": (
            {**base, "node_id": str(inside), "expires_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
            "invalid_request",
        ),
        "negative cpus": ({**base, "node_id": str(inside), "cpus": -1}, "invalid_request"),
        "more cpus than the node": ({**base, "node_id": str(inside), "cpus": 65}, "no_capacity"),
    }
    for name, (body, code) in cases.items():
        error = await cluster.error("assignments.create", body)
        assert error.code == code, (name, error)
    assert await cluster.held() == before
    listed = await cluster.call("assignments.list", {"user_id": str(user), "limit": 500})
    assert listed["items"] == []


async def test_revoke_frees_the_gpu_at_once_and_says_so(cluster: Cluster) -> None:
    node = await cluster.node(1)
    env = await cluster.environment([node])
    user, other = await cluster.user(), await cluster.user()
    made = await cluster.assign(user, env, 1)
    assert (
        await cluster.error(
            "assignments.create",
            dynamic(other, env, 1),
        )
    ).code == "no_capacity"
    revoked = await cluster.call("assignments.revoke", {"id": made["id"], "actor_id": str(other)})
    assert revoked["status"] == "revoked"
    assert revoked["ended_at"] is not None
    again = await cluster.call("assignments.revoke", {"id": made["id"]})
    assert again == revoked  # idempotent
    next_one = await cluster.assign(other, env, 1)
    assert next_one["gpus"] == made["gpus"]
    await wait_until(lambda: _has(cluster, "scheduler.assignment_ended", made["id"]), timeout_s=10)
    [ended] = await events_of(cluster, "scheduler.assignment_ended", made["id"])
    assert ended["reason"] == "revoked"
    assert ended["actor_id"] == str(other)
    await cluster.call("assignments.revoke", {"id": next_one["id"]})


async def _has(cluster: Cluster, event_type: str, assignment_id: str) -> bool:
    return bool(await events_of(cluster, event_type, assignment_id))


async def test_an_assignment_warns_then_expires_once_and_frees_its_gpus(cluster: Cluster) -> None:
    node = await cluster.node(1)
    env = await cluster.environment([node])
    user = await cluster.user()
    soon = datetime.now(UTC) + timedelta(seconds=2)
    made = await cluster.assign(user, env, 1, expires_at=soon.isoformat())
    await wait_until(lambda: _status(cluster, made["id"], "expired"), timeout_s=15)
    await wait_until(lambda: _has(cluster, "scheduler.assignment_ended", made["id"]), timeout_s=10)
    assert len(await events_of(cluster, "scheduler.assignment_expiring", made["id"])) == 1
    [ended] = await events_of(cluster, "scheduler.assignment_ended", made["id"])
    assert ended["reason"] == "expired"
    assert (await cluster.assign(user, env, 1))["gpus"] == made["gpus"]


async def _status(cluster: Cluster, assignment_id: str, status: str) -> bool:
    return bool((await cluster.call("assignments.get", {"id": assignment_id}))["status"] == status)


async def test_a_deleted_node_and_a_disabled_user_end_their_assignments(cluster: Cluster) -> None:
    node, other_node = await cluster.node(2), await cluster.node(2)
    env = await cluster.environment([node, other_node])
    user, disabled = await cluster.user(), await cluster.user()
    on_node = await cluster.assign(user, env, 2, placement="fixed", node_id=str(node))
    of_user = await cluster.assign(disabled, env, 1, placement="fixed", node_id=str(other_node))
    await publish(cluster.nc, inv.NODE_DELETED, inv.NodeDeletedEvent(node_id=node, hostname="gone"))
    await publish(
        cluster.nc,
        identity_events.USER_STATUS_CHANGED,
        identity_events.UserStatusChanged(user_id=disabled, email="x@example.org", status="disabled"),
    )
    await wait_until(lambda: _status(cluster, on_node["id"], "revoked"), timeout_s=15)
    await wait_until(lambda: _status(cluster, of_user["id"], "revoked"), timeout_s=15)
    assert await reasons(cluster, on_node["id"]) == ["node_deleted"]
    assert await reasons(cluster, of_user["id"]) == ["user_disabled"]
    env_now = await cluster.call("environments.get", {"id": env["id"]})
    assert str(node) not in env_now["node_ids"]


async def test_a_stale_disabled_event_ends_nothing_once_the_user_is_enabled_again(cluster: Cluster) -> None:
    """Disabled, then enabled again, and the `disabled` event comes back (a retry, or a redelivery after
    a replica died): the assignment made since stays."""
    node = await cluster.node(2)
    env = await cluster.environment([node])
    user = await cluster.user()
    now = datetime.now(UTC)
    enabled = identity_events.UserStatusChanged(user_id=user, email="x@example.org", status="active")
    await publish(cluster.nc, identity_events.USER_STATUS_CHANGED, enabled, occurred_at=now)
    await wait_until(lambda: _user_status_at(cluster, user, now), timeout_s=15)
    kept = await cluster.assign(user, env, 1)
    disabled = identity_events.UserStatusChanged(user_id=user, email="x@example.org", status="disabled")
    stale = await publish(
        cluster.nc, identity_events.USER_STATUS_CHANGED, disabled, occurred_at=now - timedelta(minutes=1)
    )
    await wait_until(lambda: _processed(cluster, stale.id), timeout_s=15)
    assert (await cluster.call("assignments.get", {"id": kept["id"]}))["status"] == "active"
    await cluster.call("assignments.revoke", {"id": kept["id"]})


async def _user_status_at(cluster: Cluster, user: uuid.UUID, at: datetime) -> bool:
    async with cluster.engine.connect() as conn:
        found = await conn.scalar(text("SELECT status_at FROM scheduler.users WHERE id = :u"), {"u": user})
    return found is not None and found >= at


async def _processed(cluster: Cluster, event_id: uuid.UUID) -> bool:
    async with cluster.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM scheduler.processed_events WHERE event_id = :e"), {"e": event_id}
        )
    return bool(found)


async def test_the_linux_username_is_valid_stable_and_unique(cluster: Cluster) -> None:
    node = await cluster.node(4)
    env = await cluster.environment([node])
    tag = uuid.uuid4().hex[:6]
    first = await cluster.user(email=f"Ada.Lovelace+{tag}@one.example.org")
    second = await cluster.user(email=f"ada.lovelace+{tag}@two.example.org")
    a1 = await cluster.assign(first, env, 1)
    a2 = await cluster.assign(first, env, 1)
    b = await cluster.assign(second, env, 1)
    assert a1["linux_username"] == a2["linux_username"]
    assert a1["linux_username"].startswith("ada_lovelace")
    assert b["linux_username"] != a1["linux_username"]
    import re

    for name in (a1["linux_username"], b["linux_username"]):
        assert re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", name)
    async with cluster.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM scheduler.linux_users WHERE user_id = :u"), {"u": first})
    assert count == 1
    for m in (a1, a2, b):
        await cluster.call("assignments.revoke", {"id": m["id"]})


async def test_environments_refuse_duplicates_mig_misfits_and_deletion_in_use(cluster: Cluster) -> None:
    plain, mig = await cluster.node(2), await cluster.node(2, mig=True)
    env = await cluster.environment([plain])
    same_name = {"name": env["name"], "enforcement_mode": "soft", "tunnel_provider": "netbird"}
    dup = await cluster.error("environments.create", same_name)
    assert dup.code == "environment_exists"
    mig_env = await cluster.environment(enforcement_mode="mig")
    refused = await cluster.error("environments.attach_node", {"id": mig_env["id"], "node_id": str(plain)})
    assert refused.code == c.NODE_NOT_MIG_CAPABLE
    attached = await cluster.call("environments.attach_node", {"id": mig_env["id"], "node_id": str(mig)})
    assert attached["node_ids"] == [str(mig)]
    assert (
        await cluster.error("environments.attach_node", {"id": env["id"], "node_id": str(uuid.uuid4())})
    ).code == "not_found"
    changed = await cluster.call(
        "environments.update", {"id": env["id"], "default_cpus": 4, "default_expiry_hours": 48}
    )
    assert changed["default_cpus"] == 4
    assert changed["default_expiry_hours"] == 48
    user = await cluster.user()
    made = await cluster.assign(user, env, 1)
    assert made["cpus"] == 4
    in_use = await cluster.error("environments.delete", {"id": env["id"]})
    assert in_use.code == "environment_in_use"
    await cluster.call("assignments.revoke", {"id": made["id"]})
    await cluster.call("environments.delete", {"id": env["id"]})
    assert (await cluster.error("environments.get", {"id": env["id"]})).code == "not_found"
    detached = await cluster.call("environments.detach_node", {"id": mig_env["id"], "node_id": str(mig)})
    assert detached["node_ids"] == []


async def test_a_mig_environment_counts_only_the_mig_capable_gpus_when_it_places(cluster: Cluster) -> None:
    # Best fit by the MIG-capable GPUs alone: `partly` has 1 (of 3), `whole` 2 (of 2). Counting every
    # GPU would put the first request on `whole` (2 free against 3).
    partly, whole = await cluster.node(3, mig_capable=1), await cluster.node(2, mig=True)
    env = await cluster.environment([partly, whole], enforcement_mode="mig")
    user = await cluster.user()
    first = await cluster.assign(user, env, 1)
    assert (first["node_id"], [g["index"] for g in first["gpus"]]) == (str(partly), [0])
    assert (await cluster.assign(user, env, 2))["node_id"] == str(whole)
    fixed = {"user_id": str(user), "environment_id": env["id"], "gpus": 2, "placement": "fixed", "node_id": str(partly)}
    refused = await cluster.error("assignments.create", fixed)
    assert "has 1 GPU(s); 2 were asked for" in refused.message
