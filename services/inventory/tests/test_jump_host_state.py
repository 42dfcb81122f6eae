"""The managed jump host's desired state (docs/adr/0017): one forwarding entry per user, limited to
the nodes they hold."""

from __future__ import annotations

import uuid
from typing import Any

from gpulab.agent.v1 import assignment_pb2

from gpulab_core.contracts import scheduler as s
from gpulab_devstack.testing import wait_until

from .conftest import Agent, ControlPlane
from .desired_support import (
    KEY_A,
    KEY_C,
    WAIT_S,
    assignments,
    created,
    ended,
    publish,
)


async def _node(plane: ControlPlane, agents: list[Agent], **fields: Any) -> Agent:
    made = await plane.add_node(**fields)
    agent = plane.agent()
    agents.append(agent)
    await agent.enroll(made["enrollment"]["token"])
    return agent


async def test_the_jump_host_gets_one_forwarding_entry_per_user_limited_to_the_nodes_they_hold(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    """docs/adr/0017-managed-jump-host.md: the jump host's reply holds, per user with an active
    assignment, their keys and the `ip:port` of each node they hold; an ended assignment takes its
    node out, the last one takes the user out, and no node but the jump host gets such an entry."""
    a = await _node(plane, agents, management_ip="10.0.0.7")
    b = await _node(plane, agents, management_ip="fd00::5", ssh_port=2222)
    jump = await _node(plane, agents, type="jump", management_ip="10.0.0.1")
    user, other = uuid.uuid4(), uuid.uuid4()
    on_a, on_b = created(a.node_id, user), created(b.node_id, user)
    theirs = created(a.node_id, other, linux_username="gl_bob", ssh_public_keys=[KEY_C])
    for data in (on_a, on_b, theirs):
        await publish(plane, s.ASSIGNMENT_CREATED, data)

    async def entry(user_id: uuid.UUID) -> assignment_pb2.Assignment | None:
        return (await assignments(jump)).get(str(user_id))

    async def permits(user_id: uuid.UUID, want: list[str]) -> bool:
        found = await entry(user_id)
        return (list(found.forward_targets) if found else []) == want

    await wait_until(lambda: permits(user, ["10.0.0.7:22", "[fd00::5]:2222"]), timeout_s=WAIT_S)
    mine = await entry(user)
    assert mine is not None
    assert (mine.linux_username, list(mine.ssh_public_keys)) == ("gl_ada", [KEY_A])
    assert mine.enforcement_mode == assignment_pb2.ENFORCEMENT_MODE_JUMP
    assert not mine.gpus
    await wait_until(lambda: permits(other, ["10.0.0.7:22"]), timeout_s=WAIT_S)
    assert all(x.enforcement_mode != assignment_pb2.ENFORCEMENT_MODE_JUMP for x in (await assignments(a)).values())

    await publish(plane, s.ASSIGNMENT_ENDED, ended(on_b))
    await wait_until(lambda: permits(user, ["10.0.0.7:22"]), timeout_s=WAIT_S)
    await publish(plane, s.ASSIGNMENT_ENDED, ended(on_a))
    await wait_until(lambda: permits(user, []), timeout_s=WAIT_S)
    assert await entry(other) is not None
