"""The whole allocation path with real services and a real gRPC agent: a node enrolls and reports 4
GPUs; the scheduler learns it from inventory's events; an admin's assignment reaches the node's
heartbeat reply with the user's keys; revoking it takes it out of the next replies and frees the GPU;
the access details pass the real OpenSSH client's `ssh -G`."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gpulab.agent.v1 import heartbeat_pb2 as pb

from gpulab_core.errors import RemoteError
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import Stack, wait_until
from gpulab_identity import main as identity_main
from gpulab_identity.bootstrap import ensure_admin
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_identity.passwords import Passwords
from gpulab_scheduler import main as scheduler_main
from gpulab_scheduler.config import Settings as SchedulerSettings

from .conftest import Agent, ControlPlane, enrolled, hardware

JUMP = "bastion.example.org"


@pytest.fixture(scope="module")
async def allocation(plane: ControlPlane, migrated: Stack) -> AsyncIterator[dict[str, Runtime]]:  # noqa: ARG001 (stops before the plane)
    common: dict[str, Any] = {
        "nats_url": migrated.nats_url,
        "metrics_port": 0,
    }
    identity = Runtime(
        identity_main.spec,
        IdentitySettings.model_validate({**common, "database_url": migrated.service_database_url("identity")}),
    )
    await identity.start()
    scheduler = Runtime(
        scheduler_main.spec,
        SchedulerSettings.model_validate(
            {**common, "database_url": migrated.service_database_url("scheduler"), "ssh_jump_host": JUMP}
        ),
    )
    await scheduler.start()
    yield {"identity": identity, "scheduler": scheduler}
    await scheduler.stop()
    await identity.stop()


async def make_user(plane: ControlPlane, identity: Runtime, folder: Path) -> tuple[str, str]:
    """An active user with a key made by ssh-keygen: (user id, the public key line)."""
    settings = identity.settings
    assert isinstance(settings, IdentitySettings)
    assert identity.sessions is not None
    email = f"grace.{uuid.uuid4().hex[:6]}@example.org"
    passwords = Passwords(settings.argon2_memory_kib, settings.argon2_time_cost)
    await ensure_admin(identity.sessions, passwords, email, "correct horse battery staple", only_if_none=False)
    users = await plane.call("users.list", {"limit": 500}, service="identity")
    user_id = next(u["id"] for u in users["items"] if u["email"] == email)
    path = folder / "id_user"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(path)], check=True)
    public = path.with_suffix(".pub").read_text().strip()
    await plane.call("ssh_keys.add", {"user_id": user_id, "public_key": public}, service="identity")
    return user_id, public


async def test_assign_heartbeat_revoke_and_reach_the_node(
    plane: ControlPlane, agents: list[Agent], allocation: dict[str, Runtime], tmp_path: Path
) -> None:
    agent, channel, node_id, env = await node_in_environment(plane, agents, gpus=4, mode="cgroup")
    user_id, public_key = await make_user(plane, allocation["identity"], tmp_path)
    request = {
        "user_id": user_id,
        "environment_id": env["id"],
        "gpus": 2,
        "cpus": 8,
        "ram_mb": 32768,
        "placement": "dynamic",
    }

    async def placed() -> dict[str, Any] | None:
        try:
            made: dict[str, Any] = await plane.call("assignments.create", request, service="scheduler")
            return made
        except RemoteError:  # the node's online status may still be on its way
            return None

    made: dict[str, Any] | None = None

    async def got_one() -> bool:
        nonlocal made
        made = await placed()
        return made is not None

    await wait_until(got_one, timeout_s=20)
    assert made is not None
    assert made["node_id"] == node_id
    assert [g["index"] for g in made["gpus"]] == [0, 1]

    async def in_reply() -> bool:
        reply = await agent.heartbeat(hardware(gpus=4), channel=channel)
        return any(a.assignment_id == made["id"] for a in reply.assignments)

    await wait_until(in_reply, timeout_s=20, interval_s=0.3)
    reply = await agent.heartbeat(hardware(gpus=4), channel=channel)
    [desired] = [a for a in reply.assignments if a.assignment_id == made["id"]]
    assert desired.linux_username == made["linux_username"]
    assert list(desired.ssh_public_keys) == [public_key]
    assert [(g.index, g.uuid) for g in desired.gpus] == [(g["index"], g["uuid"]) for g in made["gpus"]]
    assert desired.cpus == 8
    assert desired.ram_mb == 32768
    assert desired.enforcement_mode == 2  # ENFORCEMENT_MODE_CGROUP

    # How the user gets there: judged by the real OpenSSH client.
    access = await plane.call("assignments.access", {"id": made["id"], "user_id": user_id}, service="scheduler")
    assert access["provider"] == "ssh_proxy_jump"
    config = tmp_path / "ssh_config"
    config.write_text(access["ssh_config"])
    alias = next(line.split()[1] for line in access["ssh_config"].splitlines() if line.startswith("Host "))
    shown = subprocess.run(["ssh", "-G", "-F", str(config), alias], capture_output=True, text=True, check=True).stdout
    settings = dict(line.split(" ", 1) for line in shown.splitlines() if " " in line)
    assert settings["hostname"] == "10.0.0.7"
    assert settings["user"] == made["linux_username"]
    # The hop logs in as the user's own account on the (managed) jump host, not as their local name.
    assert settings["proxyjump"] == f"{made['linux_username']}@{JUMP}"
    assert settings["port"] == "22"
    with pytest.raises(RemoteError) as stranger:
        await plane.call("assignments.access", {"id": made["id"], "user_id": str(uuid.uuid4())}, service="scheduler")
    assert stranger.value.code == "not_found"  # another user's assignment does not exist for them

    # Revoked: gone from the node's next replies, and the GPUs are free for the next request.
    await plane.call("assignments.revoke", {"id": made["id"]}, service="scheduler")

    async def gone() -> bool:
        reply = await agent.heartbeat(hardware(gpus=4), channel=channel)
        return all(a.assignment_id != made["id"] for a in reply.assignments)

    await wait_until(gone, timeout_s=20, interval_s=0.3)
    again = await plane.call("assignments.create", request, service="scheduler")
    assert again["gpus"] == made["gpus"]
    await plane.call("assignments.revoke", {"id": again["id"]}, service="scheduler")


async def test_a_container_assignments_port_flows_from_the_heartbeat_into_its_ssh_config(
    plane: ControlPlane, agents: list[Agent], allocation: dict[str, Runtime], tmp_path: Path
) -> None:
    """Container mode: the agent's applied report carries its container's sshd port; inventory
    announces it, the scheduler keeps it, and the access reply names it (`ssh -G`) — refused as
    `access_not_ready` until then."""
    agent, channel, node_id, env = await node_in_environment(plane, agents, gpus=2, mode="container")
    user_id, _ = await make_user(plane, allocation["identity"], tmp_path)
    request = {"user_id": user_id, "environment_id": env["id"], "gpus": 1, "placement": "dynamic"}
    made: dict[str, Any] = {}

    async def got_one() -> bool:
        try:
            made.update(await plane.call("assignments.create", request, service="scheduler"))
            return True
        except RemoteError:
            return False

    await wait_until(got_one, timeout_s=20)

    async def in_reply() -> bool:
        reply = await agent.heartbeat(hardware(gpus=2), channel=channel)
        return any(a.assignment_id == made["id"] for a in reply.assignments)

    await wait_until(in_reply, timeout_s=20, interval_s=0.3)
    mine = {"id": made["id"], "user_id": user_id}
    with pytest.raises(RemoteError) as not_ready:
        await plane.call("assignments.access", mine, service="scheduler")
    assert not_ready.value.code == "access_not_ready"

    report = pb.AppliedState(
        assignments=[pb.AppliedAssignment(assignment_id=made["id"], state=pb.APPLY_STATE_APPLIED, access_port=32770)]
    )
    await agent.heartbeat(hardware(gpus=2), channel=channel, applied=report)
    access: dict[str, Any] = {}

    async def ready() -> bool:
        try:
            access.update(await plane.call("assignments.access", mine, service="scheduler"))
            return True
        except RemoteError as exc:
            if exc.code != "access_not_ready":
                raise
            return False

    await wait_until(ready, timeout_s=20, interval_s=0.3)
    config = tmp_path / "ssh_config"
    config.write_text(access["ssh_config"])
    alias = next(line.split()[1] for line in access["ssh_config"].splitlines() if line.startswith("Host "))
    shown = subprocess.run(["ssh", "-G", "-F", str(config), alias], capture_output=True, text=True, check=True).stdout
    settings = dict(line.split(" ", 1) for line in shown.splitlines() if " " in line)
    user = made["linux_username"]
    assert (settings["hostname"], settings["port"], settings["user"]) == ("127.0.0.1", "32770", "root")
    assert settings["proxyjump"] == f"{user}@{JUMP},{user}@[10.0.0.7]"
    await plane.call("assignments.revoke", {"id": made["id"]}, service="scheduler")


async def node_in_environment(
    plane: ControlPlane, agents: list[Agent], *, gpus: int, mode: str
) -> tuple[Agent, Any, str, dict[str, Any]]:
    """An enrolled node reporting `gpus` GPUs, attached to a new `mode` Environment reached by jump
    host: (its agent, its heartbeat channel, its id, the Environment)."""
    agent = await enrolled(plane, agents)
    channel = agent.heartbeat_channel()
    await agent.heartbeat(hardware(gpus=gpus), channel=channel)
    node_id = agent.node_id or ""
    env = await plane.call(
        "environments.create",
        {"name": f"{mode}-{uuid.uuid4().hex[:6]}", "enforcement_mode": mode, "tunnel_provider": "ssh_proxy_jump"},
        service="scheduler",
    )

    async def attached() -> bool:
        # The scheduler knows the node from inventory's events once they have reached it.
        try:
            await plane.call("environments.attach_node", {"id": env["id"], "node_id": node_id}, service="scheduler")
            return True
        except RemoteError:
            return False

    await wait_until(attached, timeout_s=20)
    return agent, channel, node_id, env
