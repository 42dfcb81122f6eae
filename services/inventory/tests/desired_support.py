"""What the desired-state tests share: the scheduler's and identity's events as the outbox relay
publishes them, and the desired state as a real agent reads it back over mutual TLS."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from gpulab.agent.v1 import assignment_pb2

from gpulab_core.contracts import events as identity_events
from gpulab_core.contracts import scheduler as s
from gpulab_core.events import Event
from gpulab_devstack.testing import new_event, relay_publish

from .conftest import Agent, ControlPlane

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1xOq0vZzZxJdQ7bDQzTQ5nq7YQm1cX2Xh0j0aGm8Aa ada@laptop"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2yPr1wAaAyKeR8cER0UR6or8ZRn2dY3Yi1k1bHn9Bb ada@desk"
KEY_C = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3 ada@old"
WAIT_S = 15  # the consumer fetches at once; generous for a loaded test machine


async def publish(plane: ControlPlane, event_type: str, data: dict[str, Any]) -> Event:
    """As the outbox relay does: the Event envelope on `gpulab.events.<type>`, Nats-Msg-Id = event id."""
    return await relay_publish(plane.inventory.js, new_event(event_type, data))


async def republish(plane: ControlPlane, event: Event, msg_id: str | None = None) -> None:
    await relay_publish(plane.inventory.js, event, msg_id=msg_id)


_GPUS = itertools.count(100)


def created(node_id: str | None, user_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "assignment_id": uuid.uuid4(),
        "user_id": user_id,
        "user_email": "ada@example.org",
        "environment_id": uuid.uuid4(),
        "environment_name": "training",
        "node_id": node_id,
        "node_hostname": "gpu-01",
        "placement": "dynamic",
        "linux_username": "gl_ada",
        "ssh_public_keys": [KEY_A],
        "enforcement_mode": "cgroup",
        # A GPU of its own: the node's desired state never holds two assignments on one GPU (supersede).
        "gpus": [{"index": n % 8, "uuid": f"GPU-{n:08x}-aaaa-bbbb-cccc-0123456789ab"} for n in [next(_GPUS)]],
        "cpus": 8,
        "ram_mb": 65536,
        "expires_at": datetime(2027, 3, 1, 12, 30, tzinfo=UTC),
    }
    values.update(fields)
    return s.AssignmentCreated.model_validate(values).model_dump(mode="json")


def ended(data: dict[str, Any]) -> dict[str, Any]:
    return s.AssignmentEnded(
        assignment_id=data["assignment_id"],
        user_id=data["user_id"],
        user_email=data["user_email"],
        node_id=data["node_id"],
        node_hostname=data["node_hostname"],
        reason="revoked",
        ended_at=datetime.now(UTC),
    ).model_dump(mode="json")


def keys_changed(user_id: uuid.UUID, keys: list[str], version: int) -> dict[str, Any]:
    return identity_events.SshKeysChanged(user_id=user_id, public_keys=keys, version=version).model_dump(mode="json")


async def assignments(agent: Agent, port: int | None = None) -> dict[str, assignment_pb2.Assignment]:
    """The desired state in the agent's next heartbeat reply, by assignment id."""
    channel = agent.heartbeat_channel(port=port) if port else None
    reply = await agent.heartbeat(channel=channel)
    return {a.assignment_id: a for a in reply.assignments}


async def has(agent: Agent, assignment_id: str, port: int | None = None) -> bool:
    return assignment_id in await assignments(agent, port)


async def keys_are(agent: Agent, assignment_id: str, keys: list[str], port: int | None = None) -> bool:
    found = (await assignments(agent, port)).get(assignment_id)
    return found is not None and list(found.ssh_public_keys) == keys
