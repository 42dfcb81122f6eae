"""A node whose assignments do not fit one heartbeat reply (GPULAB_HEARTBEAT_MAX_MESSAGE_BYTES, 1 MiB
here): it still hears its whole desired state but for the largest assignments, which are recorded as
failed and named in the node's REST `problems`; every other tenant's state stays right, a revoke
included. Real inventory, events published as the outbox relay does, a real mutual-TLS heartbeat."""

from __future__ import annotations

import json
import uuid
from typing import Any

from gpulab.agent.v1 import heartbeat_pb2 as pb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import scheduler as s
from gpulab_devstack.testing import wait_until
from gpulab_inventory.config import Settings
from gpulab_inventory.desired import fitting
from gpulab_inventory.desired.service import assignment_spec
from gpulab_inventory.heartbeat.metrics import TRIMMED

from .conftest import Agent, ControlPlane, enrolled, events_of
from .desired_support import WAIT_S, assignments, created, ended, keys_changed, publish
from .test_applied_state import applied

LIMIT = Settings.model_fields["heartbeat_max_message_bytes"].default
BIG_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1xOq0vZzZxJdQ7bDQzTQ5nq7YQm1cX2Xh0j0aGm8Aa " + "x" * 8000
# Two assignments of 70 such keys (~560 kB each) do not fit one 1 MiB reply; one of them does.
HALF_REPLY = [BIG_KEY] * 70


async def node(plane: ControlPlane, agent: Agent) -> dict[str, Any]:
    found: dict[str, Any] = await plane.call("nodes.get", {"id": agent.node_id})
    return found


async def state(db: AsyncEngine, assignment_id: Any) -> Any:
    async with db.connect() as conn:
        query = text(
            "SELECT withheld, reported_state, reported_message FROM inventory.desired_assignments"
            " WHERE assignment_id = :id"
        )
        return (await conn.execute(query, {"id": str(assignment_id)})).one()


async def failed_reports(plane: ControlPlane, agent: Agent) -> list[dict[str, Any]]:
    return [
        d
        for t, d in await events_of(plane, agent.node_id or "")
        if t == inv.ASSIGNMENT_STATE_REPORTED and d["state"] == "failed"
    ]


async def test_assignments_that_do_not_fit_one_reply_are_withheld_and_every_other_tenant_s_state_stays_right(
    plane: ControlPlane, agents: list[Agent], db: AsyncEngine
) -> None:
    agent = await enrolled(plane, agents)
    channel = agent.heartbeat_channel()
    await agent.heartbeat(channel=channel)
    victim = created(agent.node_id, uuid.uuid4())
    attacker = uuid.uuid4()
    big = [created(agent.node_id, attacker, ssh_public_keys=HALF_REPLY) for _ in range(2)]
    for data in (victim, *big):
        await publish(plane, s.ASSIGNMENT_CREATED, data)

    async def fitted() -> bool:
        return bool((await node(plane, agent))["problems"])

    await wait_until(fitted, timeout_s=WAIT_S)
    # The larger id of the two equal ones is left out; the victim and the other stay.
    kept, left_out = sorted((d["assignment_id"] for d in big), key=str)
    reply = await agent.heartbeat(channel=channel)
    assert reply.ByteSize() <= LIMIT
    assert {a.assignment_id for a in reply.assignments} == {victim["assignment_id"], kept}
    assert (await node(plane, agent))["problems"] == [fitting.problem(1)]
    row = await state(db, left_out)
    assert (row.withheld, row.reported_state) == (True, "failed")
    assert row.reported_message.startswith("left out of the node's heartbeat reply: ")
    assert len(row.reported_message) <= 500

    async def announced() -> bool:
        return any(d["assignment_id"] == left_out for d in await failed_reports(plane, agent))

    await wait_until(announced, timeout_s=WAIT_S)

    # What the node says of the withheld one (it removed it, say) changes nothing: it was not sent.
    await agent.heartbeat(channel=channel, applied=applied((left_out, pb.APPLY_STATE_REMOVED, "")))
    assert (await state(db, left_out)).reported_state == "failed"

    # The victim's revoke reaches the node at its next heartbeat, as on any node.
    await publish(plane, s.ASSIGNMENT_ENDED, ended(victim))

    async def revoked() -> bool:
        return victim["assignment_id"] not in await assignments(agent)

    await wait_until(revoked, timeout_s=WAIT_S)

    # The keys shrink: everything fits again, the withheld one is sent and no longer failed.
    await publish(plane, "identity.ssh_keys_changed", keys_changed(attacker, [BIG_KEY], 1))

    async def whole() -> bool:
        return not (await node(plane, agent))["problems"]

    await wait_until(whole, timeout_s=WAIT_S)
    assert set(await assignments(agent)) == {kept, left_out}
    row = await state(db, left_out)
    assert (row.withheld, row.reported_state, row.reported_message) == (False, None, None)


async def test_a_reply_that_was_never_fitted_is_cut_at_the_edge_and_the_node_then_fitted(
    plane: ControlPlane, agents: list[Agent], db: AsyncEngine
) -> None:
    """Rows written before fitting existed (or for a larger limit): the node still hears what fits, at
    once, and the database catches up off the heartbeat path."""
    agent = await enrolled(plane, agents)
    channel = agent.heartbeat_channel()
    await agent.heartbeat(channel=channel)
    user = uuid.uuid4()
    small = created(agent.node_id, user)
    rows = [small, *(created(agent.node_id, user, ssh_public_keys=HALF_REPLY) for _ in range(2))]
    async with db.begin() as conn:
        for data in rows:
            spec = assignment_spec(s.AssignmentCreated.model_validate(data), data["ssh_public_keys"])
            await conn.execute(
                text(
                    "INSERT INTO inventory.desired_assignments (assignment_id, node_id, user_id, spec) "
                    "VALUES (:a, :n, :u, CAST(:spec AS jsonb))"
                ),
                {"a": data["assignment_id"], "n": agent.node_id, "u": user, "spec": json.dumps(spec)},
            )
    plane.directory.forget(uuid.UUID(agent.node_id or ""))
    trimmed = TRIMMED._value.get()

    reply = await agent.heartbeat(channel=channel)
    assert reply.ByteSize() <= LIMIT
    assert len(reply.assignments) == 2
    assert small["assignment_id"] in {a.assignment_id for a in reply.assignments}
    assert TRIMMED._value.get() == trimmed + 1

    async def fitted() -> bool:
        return bool((await node(plane, agent))["problems"] == [fitting.problem(1)])

    await wait_until(fitted, timeout_s=WAIT_S)
    reply = await agent.heartbeat(channel=channel)
    assert len(reply.assignments) == 2
    assert TRIMMED._value.get() == trimmed + 1, "fitted in the database: no longer cut at the edge"
