"""What the agent reports of its last reconcile (applied_state), sent over a real mutual-TLS heartbeat:
recorded and announced once per change, for the node's own assignments only, within bounds."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from gpulab.agent.v1 import heartbeat_pb2 as pb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import scheduler as s
from gpulab_devstack.testing import Stack, wait_until
from gpulab_inventory.heartbeat import wire
from gpulab_inventory.heartbeat.directory import Directory
from gpulab_inventory.heartbeat.reports import MAX_ENTRIES, MESSAGE_MAX
from gpulab_inventory.heartbeat.server import HeartbeatServer

from .conftest import Agent, ControlPlane, CountingSessions, enrolled, events_of, hardware, start_inventory
from .desired_support import WAIT_S, created, has, publish

APPLIED, FAILED, REMOVED = pb.APPLY_STATE_APPLIED, pb.APPLY_STATE_FAILED, pb.APPLY_STATE_REMOVED


def applied(*entries: tuple[str, int, str] | tuple[str, int, str, int]) -> pb.AppliedState:
    """(assignment id, state, error[, access port]) entries."""
    return pb.AppliedState(
        assignments=[
            pb.AppliedAssignment(assignment_id=e[0], state=e[1], error=e[2], access_port=e[3] if len(e) > 3 else 0)
            for e in entries
        ]
    )


async def assigned(plane: ControlPlane, agent: Agent) -> str:
    """An assignment on the agent's node, once its heartbeat reply carries it: its id."""
    data = created(agent.node_id, uuid.uuid4())
    await publish(plane, s.ASSIGNMENT_CREATED, data)
    await wait_until(lambda: has(agent, data["assignment_id"]), timeout_s=WAIT_S)
    return str(data["assignment_id"])


async def reports(plane: ControlPlane, agent: Agent) -> list[dict[str, Any]]:
    return [d for t, d in await events_of(plane, agent.node_id or "") if t == inv.ASSIGNMENT_STATE_REPORTED]


async def reported(plane: ControlPlane, agent: Agent, n: int) -> list[dict[str, Any]]:
    """The node's reports once there are `n` of them. The relay publishes in commit order, so a report
    that is not there once a later one is was never emitted."""
    await wait_until(lambda: _has_n(plane, agent, n), timeout_s=WAIT_S)
    return await reports(plane, agent)


async def _has_n(plane: ControlPlane, agent: Agent, n: int) -> bool:
    return len(await reports(plane, agent)) >= n


async def row(db: AsyncEngine, assignment_id: str) -> Any:
    async with db.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT xmin::text AS version, reported_state, reported_message, reported_access_port, reported_at "
                    "FROM inventory.desired_assignments WHERE assignment_id = :id"
                ),
                {"id": assignment_id},
            )
        ).one()


async def test_an_outcome_is_recorded_and_announced_once_until_it_changes(
    plane: ControlPlane, agents: list[Agent], db: AsyncEngine
) -> None:
    agent = await enrolled(plane, agents)
    channel = agent.heartbeat_channel()
    await agent.heartbeat(channel=channel)
    assignment = await assigned(plane, agent)
    assert (await row(db, assignment)).reported_state is None

    await agent.heartbeat(channel=channel, applied=applied((assignment, APPLIED, "")))
    (first,) = await reported(plane, agent, 1)
    assert first["assignment_id"] == assignment
    assert first["node_id"] == agent.node_id
    assert first["state"] == "applied"
    assert first["message"] is None
    recorded = await row(db, assignment)
    assert (recorded.reported_state, recorded.reported_message) == ("applied", None)
    assert first["reported_at"] == recorded.reported_at.isoformat().replace("+00:00", "Z")

    # The same report again, also on a copy of the node just read from the database: no write, no event.
    for i in range(10):
        if i == 5:
            plane.directory.forget(uuid.UUID(agent.node_id or ""))
        await agent.heartbeat(channel=channel, applied=applied((assignment, APPLIED, "")))
    assert (await row(db, assignment)).version == recorded.version

    # A change: failed, with the node's sentence; then applied again.
    await agent.heartbeat(channel=channel, applied=applied((assignment, FAILED, "useradd failed: exit status 9.")))
    second = (await reported(plane, agent, 2))[1]
    assert (second["state"], second["message"]) == ("failed", "useradd failed: exit status 9.")
    assert second["reported_at"] > first["reported_at"]
    await agent.heartbeat(channel=channel, applied=applied((assignment, APPLIED, "")))
    third = (await reported(plane, agent, 3))[2]
    assert (third["state"], third["message"]) == ("applied", None)
    assert len(await reports(plane, agent)) == 3


async def test_ids_the_node_was_not_given_are_ignored(
    plane: ControlPlane, agents: list[Agent], db: AsyncEngine
) -> None:
    a, b = await enrolled(plane, agents), await enrolled(plane, agents)
    await a.heartbeat()
    await b.heartbeat()
    mine, theirs = await assigned(plane, a), await assigned(plane, b)
    before = await row(db, theirs)

    # B's assignment, an id nobody was given, and (in upper case) A's own id as it was not sent.
    stray = applied(
        (theirs, FAILED, "not yours"), (str(uuid.uuid4()), APPLIED, ""), (mine.upper(), FAILED, "not as sent")
    )
    await a.heartbeat(applied=stray)
    # Then A's own, as a marker: once its report is out, an earlier one would be too.
    await a.heartbeat(applied=applied((mine, APPLIED, ""), (theirs, FAILED, "not yours")))
    (only,) = await reported(plane, a, 1)
    assert (only["assignment_id"], only["state"]) == (mine, "applied")
    assert await row(db, theirs) == before
    assert await reports(plane, b) == []


async def test_a_report_out_of_bounds_is_refused_and_a_long_message_is_cut(
    plane: ControlPlane, agents: list[Agent], db: AsyncEngine
) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat()
    assignment = await assigned(plane, agent)

    too_many = applied(*[(assignment, APPLIED, "")] * (MAX_ENTRIES + 1))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agent.heartbeat(applied=too_many)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "applied_state" in (refused.value.details() or "")
    assert (await row(db, assignment)).reported_state is None

    # A long, odd sentence is the node's to say: kept within bounds, never a refused heartbeat.
    await agent.heartbeat(applied=applied((assignment, FAILED, "nul\x00" + "x" * 5000)))
    (failed,) = await reported(plane, agent, 1)
    assert len(failed["message"]) == MESSAGE_MAX
    assert failed["message"].startswith("nul\ufffdxxx")
    assert failed["message"].endswith("…")
    assert (await row(db, assignment)).reported_message == failed["message"]


async def test_removed_and_unknown_states_of_a_desired_assignment(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat()
    assignment = await assigned(plane, agent)
    # APPLY_STATE_UNSPECIFIED is never sent by a correct agent: skipped. REMOVED (the node's clock
    # says it expired) is recorded like any other outcome.
    await agent.heartbeat(applied=applied((assignment, pb.APPLY_STATE_UNSPECIFIED, "")))
    await agent.heartbeat(applied=applied((assignment, REMOVED, "")))
    (removed,) = await reported(plane, agent, 1)
    assert (removed["state"], removed["message"]) == ("removed", None)


async def test_two_replicas_recording_the_same_report_at_once_emit_one_event(
    plane: ControlPlane, agents: list[Agent], migrated: Stack, tmp_path: Path
) -> None:
    other = await start_inventory(migrated, tmp_path)
    try:
        agent = await enrolled(plane, agents)
        await agent.heartbeat()
        assignment = await assigned(plane, agent)
        server = other.parts["heartbeat"]
        assert isinstance(server, HeartbeatServer)
        port = server.port
        await wait_until(lambda: has(agent, assignment, port), timeout_s=WAIT_S)
        channels = [agent.heartbeat_channel(), agent.heartbeat_channel(port=port)] * 3
        report = applied((assignment, FAILED, "enforcement failed."))
        await asyncio.gather(*(agent.heartbeat(channel=c, applied=report) for c in channels))
        await agent.heartbeat(applied=applied((assignment, APPLIED, "")))  # the marker
        found = await reported(plane, agent, 2)
        assert [(r["state"], r["message"]) for r in found] == [("failed", "enforcement failed."), ("applied", None)]
    finally:
        await other.stop()


async def test_the_same_report_again_costs_no_database_round_trip(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat()
    assignment = await assigned(plane, agent)
    sessions = CountingSessions(plane)
    directory = Directory(sessions, cache_s=300, decode=wire.assignment_from_spec)  # type: ignore[arg-type]
    node_id, serial = uuid.UUID(agent.node_id or ""), "not-revoked"
    hw = hardware()

    async def beat(report: pb.AppliedState) -> None:
        request = pb.HeartbeatRequest(agent_version="1.0.0", hardware=hw, applied_state=report)
        await directory.heartbeat(node_id, serial, wire.beat(request, request.SerializeToString()))

    await beat(applied((assignment, APPLIED, "")))
    assert sessions.opened == 2  # the node read once, the outcome written once
    for _ in range(5):
        await beat(applied((assignment, APPLIED, "")))
    # Another message with the same outcomes (an entry for an id it was not given): compared, not written.
    await beat(applied((assignment, APPLIED, ""), (str(uuid.uuid4()), FAILED, "stray")))
    assert sessions.opened == 2
    await beat(applied((assignment, FAILED, "nope.")))
    assert sessions.opened == 3
    await reported(plane, agent, 2)


async def test_a_container_assignments_access_port_is_recorded_and_announced_when_it_changes(
    plane: ControlPlane, agents: list[Agent], db: AsyncEngine
) -> None:
    agent = await enrolled(plane, agents)
    channel = agent.heartbeat_channel()
    await agent.heartbeat(channel=channel)
    assignment = await assigned(plane, agent)

    await agent.heartbeat(channel=channel, applied=applied((assignment, APPLIED, "", 32768)))
    (first,) = await reported(plane, agent, 1)
    assert (first["state"], first["access_port"]) == ("applied", 32768)
    assert (await row(db, assignment)).reported_access_port == 32768
    # The same port again: nothing; the container recreated on another port: a new report.
    await agent.heartbeat(channel=channel, applied=applied((assignment, APPLIED, "", 32768)))
    await agent.heartbeat(channel=channel, applied=applied((assignment, APPLIED, "", 32769)))
    second = (await reported(plane, agent, 2))[1]
    assert second["access_port"] == 32769
    # A failure has no port, whatever the agent sent with it.
    await agent.heartbeat(channel=channel, applied=applied((assignment, FAILED, "engine down.", 32769)))
    third = (await reported(plane, agent, 3))[2]
    assert (third["state"], third["access_port"]) == ("failed", None)
    assert (await row(db, assignment)).reported_access_port is None


@pytest.mark.parametrize(("sent", "kept"), [(65535, 65535), (1, 1), (65536, None), (0, None)])
async def test_an_access_port_is_kept_only_when_it_is_a_tcp_port(
    plane: ControlPlane,
    agents: list[Agent],
    db: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    sent: int,
    kept: int | None,
) -> None:
    """1..65535 kept; 0 is the agent's "none"; anything above is ignored with a log line, never a
    refused heartbeat (the node's liveness and desired state go on)."""
    agent = await enrolled(plane, agents)
    await agent.heartbeat()
    assignment = await assigned(plane, agent)
    with caplog.at_level(logging.WARNING, logger="gpulab_inventory.heartbeat.reports"):
        await agent.heartbeat(applied=applied((assignment, APPLIED, "", sent)))
        (only,) = await reported(plane, agent, 1)
    assert (only["state"], only["access_port"]) == ("applied", kept)
    assert (await row(db, assignment)).reported_access_port == kept
    ignored = [r.getMessage() for r in caplog.records if "access port" in r.getMessage()]
    assert ignored == (
        [f"assignment {assignment}: the agent reported access port {sent}, not 1 to 65535: ignored"]
        if sent > 65535
        else []
    )
