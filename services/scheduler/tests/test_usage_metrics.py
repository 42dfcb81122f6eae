"""The accounting metrics on the scheduler's real `/metrics` (docs/adr/0020): read from the database
by the background refresh, the same on every replica."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from gpulab_devstack.testing import wait_until
from gpulab_devstack.usage_reference import Interval, insert

from .conftest import Cluster

H = timedelta(hours=1)


async def scrape(cluster: Cluster, replica: int = 0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    server = cluster.replicas[replica].health_server
    assert server is not None
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://127.0.0.1:{server.bound_port}/metrics")
    assert reply.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


async def test_gpu_seconds_counter_and_environment_gauges(cluster: Cluster) -> None:
    node = await cluster.node(4)
    env = await cluster.environment(nodes=[node])
    env_id, name = uuid.UUID(env["id"]), env["name"]
    group, user = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    ended = [
        Interval(user, "m@example.org", env_id, node, group, 2, now - 10 * H, now - 7 * H),  # 6 GPU-hours
        Interval(user, "m@example.org", env_id, node, None, 1, now - 3 * H, now - 2.5 * H),  # 0.5, no group
        Interval(user, "m@example.org", env_id, node, group, 3, now - 2 * H, now - 2 * H),  # zero-length
    ]
    running = Interval(user, "m@example.org", env_id, node, group, 2, now - H, None)
    await insert(cluster.engine, [*ended, running])
    async with cluster.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO scheduler.requests (id, kind, user_id, user_email, environment_id, gpus, cpus, ram_mb,"
                " hours, status, queued_at) VALUES (:id, 'new', :user, 'm@example.org', :env, 1, 1, 1024, 1,"
                " :status, now())"
            ),
            [
                {"id": uuid.uuid4(), "user": user, "env": env_id, "status": status}
                for status in ("queued", "queued", "pending_approval")
            ],
        )
    inserted_at = datetime.now(UTC).timestamp()

    async def refreshed() -> bool:
        got = await scrape(cluster)
        return got.get(("gpulab_usage_refreshed_timestamp_seconds", ()), 0.0) > inserted_at

    await wait_until(refreshed, timeout_s=30)
    got = await scrape(cluster)
    taken_at = datetime.fromtimestamp(got[("gpulab_usage_refreshed_timestamp_seconds", ())], UTC)
    in_group = 6 * 3600 + 0 + 2 * (taken_at - running.start).total_seconds()
    labels = (("environment", name), ("group", str(group)))
    assert abs(got[("gpulab_gpu_seconds_total", labels)] - in_group) < 0.01
    assert got[("gpulab_gpu_seconds_total", (("environment", name), ("group", "none")))] == 0.5 * 3600
    env_label = (("environment", name),)
    assert got[("gpulab_gpus_total", env_label)] == 4
    assert got[("gpulab_gpus_held", env_label)] == 2  # the running one's
    assert got[("gpulab_requests_queued", env_label)] == 2  # not the one pending approval
    # The second replica's server shows the same (in this process the replicas share the registry; in
    # production each process refreshes its own from the one database).
    other = await scrape(cluster, 1)
    assert other[("gpulab_gpu_seconds_total", (("environment", name), ("group", "none")))] == 0.5 * 3600
    assert other[("gpulab_gpus_total", env_label)] == 4
