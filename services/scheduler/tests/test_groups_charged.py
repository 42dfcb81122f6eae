"""groups.charged: a group is charged while an open request (pending approval, queued) or an
active assignment names it; decided requests and ended assignments do not count."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from .conftest import Cluster


async def charged(cluster: Cluster, group_id: uuid.UUID) -> bool:
    reply = await cluster.call("groups.charged", {"group_id": str(group_id)})
    return bool(reply["charged"])


async def test_open_requests_and_active_assignments_charge_a_group(cluster: Cluster) -> None:
    group, other = uuid.uuid4(), uuid.uuid4()
    env = await cluster.environment([await cluster.node(2)])
    user = await cluster.user()
    assert await charged(cluster, group) is False
    request_id = uuid.uuid4()
    async with cluster.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO scheduler.requests (id, kind, user_id, user_email, environment_id, group_id, gpus, "
                "cpus, ram_mb, hours, status) VALUES (:id, 'new', :u, 'ada@example.org', :e, :g, 1, 1, 1024, 4, "
                "'pending_approval')"
            ),
            {"id": request_id, "u": user, "e": env["id"], "g": group},
        )
    assert await charged(cluster, group) is True
    assert await charged(cluster, other) is False
    for status, expected in (("queued", True), ("denied", False), ("granted", False), ("cancelled", False)):
        async with cluster.engine.begin() as conn:
            await conn.execute(
                text("UPDATE scheduler.requests SET status = :s WHERE id = :id"), {"s": status, "id": request_id}
            )
        assert await charged(cluster, group) is expected, status
    made = await cluster.assign(user, env)
    async with cluster.engine.begin() as conn:
        await conn.execute(
            text("UPDATE scheduler.assignments SET group_id = :g WHERE id = :id"), {"g": group, "id": made["id"]}
        )
    assert await charged(cluster, group) is True
    await cluster.call("assignments.revoke", {"id": made["id"]})
    assert await charged(cluster, group) is False


async def test_a_malformed_group_id_is_refused(cluster: Cluster) -> None:
    error = await cluster.error("groups.charged", {"group_id": "nope"})
    assert error.code == "invalid_request"
