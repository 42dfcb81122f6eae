"""A replica's node cache: which copies it keeps, and for how long (heartbeat/cache.py)."""

from __future__ import annotations

import uuid

from gpulab_inventory.heartbeat.cache import CachedNode, NodeCache
from gpulab_inventory.heartbeat.directory import Directory

from .conftest import Agent, ControlPlane, hardware


class _A:
    assignment_id = "a"


def copy(node_id: uuid.UUID, loaded_at: float = 0.0) -> CachedNode[_A]:
    return CachedNode(
        id=node_id,
        hostname="gpu-01",
        type="bare_metal",
        status="online",
        agent_version="1.0.0",
        hardware=None,
        hardware_wire=None,
        assignments=[],
        reported={},
        loaded_at=loaded_at,
    )


def test_a_copy_is_served_until_it_is_older_than_the_limit() -> None:
    cache: NodeCache[_A] = NodeCache(max_age_s=120)
    node = uuid.uuid4()
    cache.keep(copy(node, loaded_at=1000.0), cache.generation)
    assert cache.fresh(node, 1000.0 + 120) is not None
    assert cache.fresh(node, 1000.0 + 120.01) is None
    assert cache.fresh(uuid.uuid4(), 1000.0) is None


def test_a_copy_read_while_its_node_was_forgotten_is_not_kept() -> None:
    cache: NodeCache[_A] = NodeCache(max_age_s=120)
    node = uuid.uuid4()
    before = cache.generation  # the heartbeat starts reading the database
    cache.forget(node)  # the node changes meanwhile
    cache.keep(copy(node), before)
    assert cache.fresh(node, 0.0) is None
    cache.keep(copy(node), cache.generation)  # read after the notice: kept
    assert cache.fresh(node, 0.0) is not None


def test_other_nodes_notices_do_not_keep_a_fresh_copy_out() -> None:
    """Every node that comes online sends a notice to every replica: with one counter for all nodes,
    a fleet's first contacts kept each other's copies out of the cache, and every heartbeat read the
    database again."""
    cache: NodeCache[_A] = NodeCache(max_age_s=120)
    node = uuid.uuid4()
    before = cache.generation
    for _ in range(100):
        cache.forget(uuid.uuid4())
    cache.keep(copy(node), before)
    assert cache.fresh(node, 0.0) is not None


def test_forget_all_drops_every_copy_and_every_read_in_flight() -> None:
    cache: NodeCache[_A] = NodeCache(max_age_s=120)
    kept, reading = uuid.uuid4(), uuid.uuid4()
    cache.keep(copy(kept), cache.generation)
    cache.forget(uuid.uuid4())
    before = cache.generation
    cache.forget_all()
    cache.keep(copy(reading), before)
    assert cache.fresh(kept, 0.0) is None
    assert cache.fresh(reading, 0.0) is None
    assert len(cache) == 0
    cache.keep(copy(reading), cache.generation)
    assert cache.fresh(reading, 0.0) is not None


async def test_a_nats_reconnect_drops_every_cached_node(plane: ControlPlane, agents: list[Agent]) -> None:
    """The hook that a real reconnect runs (gpulab-core's test_natsconn) is wired to the node cache:
    notices of the gap are lost, so every node is read again at its next heartbeat."""
    created = await plane.add_node()
    agent = plane.agent()
    agents.append(agent)
    await agent.enroll(created["enrollment"]["token"])
    await agent.heartbeat(hardware(gpus=1), version="1.0.0")
    await agent.heartbeat(hardware(gpus=1), version="1.0.0")
    directory = plane.inventory.parts["directory"]
    assert isinstance(directory, Directory)
    assert len(directory.nodes) >= 1
    await plane.inventory._reconnected()
    assert len(directory.nodes) == 0
