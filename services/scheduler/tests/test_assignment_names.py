"""Every Assignment reply names its node, its Environment and its GPUs (model and memory), so that a
user, who cannot read nodes or Environments, sees what they got."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from gpulab_core.contracts import inventory as inv
from gpulab_devstack.testing import wait_until

from .conftest import Cluster, gpus, publish


def names(a: dict[str, Any]) -> tuple[Any, ...]:
    return a["node_hostname"], a["environment_name"], a["gpus"]


async def test_every_reply_names_the_node_the_environment_and_each_gpu(cluster: Cluster) -> None:
    host = f"gpu-names-{uuid.uuid4().hex[:6]}"
    node = await cluster.node(4, hostname=host)
    env = await cluster.environment([node])
    user = await cluster.user()
    made = await cluster.assign(user, env, 2)
    assert made["node_hostname"] == host
    assert made["environment_name"] == env["name"]
    assert [(g["index"], g["name"], g["memory_mb"]) for g in made["gpus"]] == [
        (0, "NVIDIA A100-SXM4-80GB", 81920),
        (1, "NVIDIA A100-SXM4-80GB", 81920),
    ]
    assert all(g["uuid"].startswith("GPU-") for g in made["gpus"])

    got = await cluster.call("assignments.get", {"id": made["id"]})
    mine = await cluster.call("assignments.get_mine", {"id": made["id"], "user_id": str(user)})
    [listed] = (await cluster.call("assignments.list", {"user_id": str(user)}))["items"]
    assert names(got) == names(mine) == names(listed) == names(made)

    # The Environment's name is its current one; a GPU is what it was when placed, whatever the node
    # reports afterwards (here: other GPUs altogether).
    renamed = f"renamed-{uuid.uuid4().hex[:6]}"
    await cluster.call("environments.update", {"id": env["id"], "name": renamed})
    replaced = gpus(4)
    hardware = {"cpu_model": "EPYC", "cpu_cores": 64, "ram_mb": 512_000, "gpus": replaced}
    await publish(
        cluster.nc,
        inv.NODE_HARDWARE_CHANGED,
        inv.NodeHardwareChangedEvent(node_id=node, hostname=host, hardware=hardware),
    )

    async def new_hardware_seen() -> bool:
        async with cluster.engine.connect() as conn:
            row = await conn.scalar(text("SELECT hardware FROM scheduler.nodes WHERE id = :id"), {"id": node})
        return {g["uuid"] for g in row["gpus"]} == {g["uuid"] for g in replaced}

    await wait_until(new_hardware_seen, timeout_s=15)
    revoked = await cluster.call("assignments.revoke", {"id": made["id"]})
    assert revoked["environment_name"] == renamed
    assert (revoked["node_hostname"], revoked["gpus"]) == (host, made["gpus"])


async def test_a_deleted_node_keeps_its_host_name_on_the_assignments_it_ended(cluster: Cluster) -> None:
    host = f"gpu-gone-{uuid.uuid4().hex[:6]}"
    node = await cluster.node(1, hostname=host)
    env = await cluster.environment([node])
    made = await cluster.assign(await cluster.user(), env, 1)
    await publish(cluster.nc, inv.NODE_DELETED, inv.NodeDeletedEvent(node_id=node, hostname=host))

    async def ended() -> bool:
        return bool((await cluster.call("assignments.get", {"id": made["id"]}))["status"] == "revoked")

    await wait_until(ended, timeout_s=15)
    after = await cluster.call("assignments.get", {"id": made["id"]})
    assert names(after) == names(made)
