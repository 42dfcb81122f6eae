"""The fair queue with two scheduler replicas: concurrent requests within quotas, grants in order
within 2 s of GPUs freed, and backfill that never delays the head of the queue."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

from gpulab_core.errors import RemoteError
from gpulab_devstack.testing import wait_until

from .conftest import Cluster
from .selfservice_support import admin, held_by_user, quota, statuses, submit


async def test_fifty_concurrent_requests_ten_users_eight_gpus_quota_two(cluster: Cluster) -> None:
    nodes = [await cluster.node(4), await cluster.node(4)]
    env = await cluster.environment(nodes, self_service="auto")
    boss = await admin(cluster)
    users = [await cluster.user() for _ in range(10)]
    for user in users:
        await quota(cluster, boss, "user", user, max_gpus=2)

    async def ask(i: int) -> dict[str, object] | RemoteError:
        rpc = cluster.replicas[i % 2].rpc_client  # both replicas take requests at once
        body = {"user_id": str(users[i % 10]), "environment_id": env["id"], "gpus": 1, "hours": 4}
        try:
            reply: dict[str, object] = await rpc.call("scheduler", "requests.submit", body)
        except RemoteError as exc:
            return exc
        return reply

    replies = await asyncio.gather(*(ask(i) for i in range(50)))
    refused = [r for r in replies if isinstance(r, RemoteError)]
    assert {r.code for r in refused} == {"quota_exceeded"}
    assert len(refused) == 30  # each user may have 2 GPUs held or asked for: 20 accepted
    held = await cluster.held()
    mine = [h for h in held if h[0] in {str(n) for n in nodes}]
    assert len(mine) == len(set(mine)) == 8  # every GPU once
    per_user = await held_by_user(cluster, env)
    assert max(per_user.values()) <= 2
    rows = await statuses(cluster, env)
    assert Counter(s for _, s, _ in rows) == {"granted": 8, "queued": 12}
    # Queued in order: nothing granted after the first request that had to wait.
    first_wait = next(i for i, (_, s, _) in enumerate(rows) if s == "queued")
    assert all(s == "queued" for _, s, _ in rows[first_wait:])
    listed = await cluster.call("requests.list", {"environment_id": env["id"], "status": "queued", "limit": 50})
    position = {r["id"]: r["position"] for r in listed["items"]}
    in_order = [rid for rid, s, _ in rows if s == "queued"]  # submission order
    assert [position[rid] for rid in in_order] == list(range(1, 13))

    # Revoke 4 (through one replica): the next 4 queued, in order, within 2 s.
    granted = in_order[:4]
    active = await cluster.call("assignments.list", {"environment_id": env["id"], "status": "active", "limit": 50})
    started = time.monotonic()
    await asyncio.gather(
        *(
            cluster.replicas[1].rpc_client.call(
                "scheduler", "assignments.revoke", {"id": a["id"], "actor_id": str(boss)}
            )
            for a in active["items"][:4]
        )
    )

    async def next_four() -> bool:
        now = {rid: s for rid, s, _ in await statuses(cluster, env)}
        return all(now[rid] == "granted" for rid in granted)

    await wait_until(next_four, timeout_s=2, interval_s=0.05)
    elapsed = time.monotonic() - started
    assert elapsed < 2
    after = await statuses(cluster, env)
    assert Counter(s for _, s, _ in after) == {"granted": 12, "queued": 8}
    assert max((await held_by_user(cluster, env)).values()) <= 2
    mine = [h for h in await cluster.held() if h[0] in {str(n) for n in nodes}]
    assert len(mine) == len(set(mine)) == 8


async def test_backfill_starts_a_small_request_only_when_the_head_is_not_delayed(cluster: Cluster) -> None:
    """Plain "first that fits" would start `long` (it fits the 2 free GPUs now) and delay the head."""
    node = await cluster.node(4)
    env = await cluster.environment([node], self_service="auto")
    holder, head_user, long_user, short_user = [await cluster.user() for _ in range(4)]
    await submit(cluster, holder, env, 2, 2)  # 2 GPUs held for 2 h
    head = await submit(cluster, head_user, env, 4, 1)  # needs all 4: in 2 h
    long = await submit(cluster, long_user, env, 2, 3)  # fits now, but would hold 2 GPUs past the head's start
    short = await submit(cluster, short_user, env, 2, 1)  # fits now and ends before the head's start
    assert head["status"] == "queued"
    assert long["status"] == "queued"
    assert short["status"] == "granted"
    listed = await cluster.call("requests.list", {"environment_id": env["id"], "status": "queued"})
    by_id = {r["id"]: r for r in listed["items"]}
    assert by_id[head["id"]]["position"] == 1
    assert by_id[long["id"]]["position"] == 2
    head_start = by_id[head["id"]]["estimated_start_at"]
    long_start = by_id[long["id"]]["estimated_start_at"]
    assert head_start is not None
    assert long_start is not None
    assert long_start > head_start  # after the head, never before it
    # The estimate for a new request says where it would stand.
    est = await cluster.call("environments.estimate", {"environment_id": env["id"], "gpus": 1, "hours": 1})
    assert est["position"] == 3
    assert est["fits_now"] is False
    offers = await cluster.call("environments.offers", {})
    offer = next(o for o in offers["items"] if o["id"] == env["id"])
    assert offer["gpus_total"] == 4
    assert offer["gpus_free"] == 0
    assert offer["queued_requests"] == 2
    assert offer["queued_gpus"] == 6
    for r in (head, long):
        await cluster.call("requests.cancel", {"id": r["id"], "user_id": str(uuid.UUID(r["user_id"]))})


async def test_a_node_attached_to_the_environment_serves_its_queue(cluster: Cluster) -> None:
    """GPUs that arrive (a node attached, or coming online) are found by the replicas' poll."""
    env = await cluster.environment([await cluster.node(1)], self_service="auto")
    holder, waiter = await cluster.user(), await cluster.user()
    await submit(cluster, holder, env, 1, 8)
    waiting = await submit(cluster, waiter, env, 2, 1)
    assert waiting["status"] == "queued"
    node = await cluster.node(2)  # online, in no Environment yet
    started = time.monotonic()
    await cluster.call("environments.attach_node", {"id": env["id"], "node_id": str(node)})

    async def granted() -> bool:
        return any(rid == waiting["id"] and s == "granted" for rid, s, _ in await statuses(cluster, env))

    await wait_until(granted, timeout_s=2, interval_s=0.05)
    assert time.monotonic() - started < 2  # found by a replica's poll (every 0.5 s)
