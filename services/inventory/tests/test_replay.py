"""The steady heartbeat answered from the node's cached copy, unparsed (Directory.replay), and what
must never be replayed: a request that changed something, a stale or forgotten copy, a revoked serial."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from gpulab.agent.v1 import heartbeat_pb2 as pb

from gpulab_inventory.heartbeat import wire
from gpulab_inventory.heartbeat.directory import Directory

from .conftest import Agent, ControlPlane, CountingSessions, enrolled, hardware


def request(version: str = "1.0.0") -> bytes:
    sent: bytes = pb.HeartbeatRequest(agent_version=version, hardware=hardware(gpus=2)).SerializeToString()
    return sent


async def answer(directory: Directory[Any], node_id: uuid.UUID, serial: str, sent: bytes) -> bytes:
    """What the heartbeat port does with `sent`: a replay if it may, else the request in full."""
    replayed = directory.replay(node_id, serial, sent)
    if replayed is not None:
        return replayed
    assignments = await directory.heartbeat(node_id, serial, wire.beat(pb.HeartbeatRequest.FromString(sent), sent))
    reply: bytes = pb.HeartbeatResponse(assignments=assignments, heartbeat_interval_s=30).SerializeToString()
    directory.keep_reply(node_id, sent, reply)
    return reply


async def test_only_a_request_that_changed_nothing_is_replayed(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat(hardware(gpus=2))  # online, with this hardware and version
    sessions = CountingSessions(plane)
    directory = Directory(sessions, cache_s=300, decode=wire.assignment_from_spec)  # type: ignore[arg-type]
    node_id, serial = uuid.UUID(agent.node_id or ""), "not-revoked"

    steady = request()
    assert directory.replay(node_id, serial, steady) is None  # nothing cached yet
    first = await answer(directory, node_id, serial, steady)  # read from the database once
    assert sessions.opened == 1
    assert directory.replay(node_id, serial, steady) == first
    assert pb.HeartbeatResponse.FromString(first).heartbeat_interval_s == 30

    # Other bytes (a new agent version) are handled in full: a write, and not kept for replay.
    upgraded = request("1.0.1")
    assert directory.replay(node_id, serial, upgraded) is None
    await answer(directory, node_id, serial, upgraded)
    assert sessions.opened == 2
    assert directory.replay(node_id, serial, upgraded) is None  # it changed the node's record
    assert directory.replay(node_id, serial, steady) is None  # the old bytes: no longer what it sends
    await answer(directory, node_id, serial, upgraded)  # the same again changed nothing: kept
    assert directory.replay(node_id, serial, upgraded) is not None
    assert sessions.opened == 2

    directory.revoke_serials([serial])
    assert directory.replay(node_id, serial, upgraded) is None
    assert directory.replay(node_id, "another-serial", upgraded) is not None
    directory.forget(node_id)  # a notice: the node changed elsewhere
    assert directory.replay(node_id, "another-serial", upgraded) is None


async def test_a_replayed_reply_lasts_no_longer_than_the_cached_copy(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat(hardware(gpus=2))
    directory = Directory(CountingSessions(plane), cache_s=0, decode=wire.assignment_from_spec)  # type: ignore[arg-type]
    node_id = uuid.UUID(agent.node_id or "")
    steady = request()
    await answer(directory, node_id, "s", steady)
    await answer(directory, node_id, "s", steady)
    assert directory.replay(node_id, "s", steady) is None  # expired at once: read again every time


async def test_bytes_that_are_not_a_heartbeat_are_refused_as_invalid(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat()
    call = agent.heartbeat_channel().unary_unary("/gpulab.agent.v1.Heartbeat/Heartbeat")  # type: ignore[call-arg]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(b"\xff\xff\xff\xff", timeout=20)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a HeartbeatRequest" in (refused.value.details() or "")
    assert (await agent.heartbeat()).heartbeat_interval_s > 0  # the node itself is unaffected
