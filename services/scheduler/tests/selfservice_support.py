"""What the self-service tests share: an admin, groups in identity, quotas, requests and reading the
queue back from the database."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from .conftest import Cluster


async def admin(cluster: Cluster) -> uuid.UUID:
    return await cluster.user(with_key=False)


async def group(cluster: Cluster, actor: uuid.UUID, *members: uuid.UUID) -> uuid.UUID:
    made = await cluster.rpc.call(
        "identity", "groups.create", {"actor_id": str(actor), "name": f"lab-{uuid.uuid4().hex[:6]}"}
    )
    for member in members:
        await cluster.rpc.call(
            "identity",
            "groups.add_member",
            {"actor_id": str(actor), "group_id": made["id"], "user_id": str(member)},
        )
    return uuid.UUID(made["id"])


async def quota(cluster: Cluster, actor: uuid.UUID, kind: str, subject: uuid.UUID, **limits: int | None) -> Any:
    body = {"subject_type": kind, "subject_id": str(subject), "actor_id": str(actor), **limits}
    return await cluster.call("quotas.set", body)


async def submit(
    cluster: Cluster, user: uuid.UUID, env: dict[str, Any], gpus: int = 1, hours: int = 1, **more: Any
) -> Any:
    body = {"user_id": str(user), "environment_id": env["id"], "gpus": gpus, "hours": hours, **more}
    return await cluster.call("requests.submit", body)


async def statuses(cluster: Cluster, env: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(request id, status, user) of the Environment's requests in submission order."""
    async with cluster.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id::text, status, user_id::text FROM scheduler.requests WHERE environment_id = :e ORDER BY seq"
            ),
            {"e": env["id"]},
        )
    return [(r[0], r[1], r[2]) for r in rows]


async def held_by_user(cluster: Cluster, env: dict[str, Any]) -> dict[str, int]:
    async with cluster.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT a.user_id::text, count(*) FROM scheduler.assignment_gpus g"
                " JOIN scheduler.assignments a ON a.id = g.assignment_id"
                " WHERE g.active AND a.environment_id = :e GROUP BY a.user_id"
            ),
            {"e": env["id"]},
        )
    return {r[0]: int(r[1]) for r in rows}
