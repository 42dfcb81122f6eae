"""Environments and assignments through the REST API, with identity and the scheduler running for
real; nodes reach the scheduler as inventory's events (published as inventory's relay does)."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from gpulab_core.contracts import inventory as inv
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import Stack, new_event, relay_publish, wait_until
from gpulab_scheduler import main as scheduler_main
from gpulab_scheduler.config import Settings as SchedulerSettings

from .conftest import Browser, UserFactory, ed25519_key

JUMP = "jump.example.org"


def closed_port() -> int:
    """A loopback port nobody listens on: NetBird that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
async def scheduler(migrated: Stack, identity: Runtime) -> AsyncIterator[Runtime]:  # noqa: ARG001 (identity runs)
    settings = SchedulerSettings.model_validate(
        {
            "database_url": migrated.service_database_url("scheduler"),
            "nats_url": migrated.nats_url,
            "metrics_port": 0,
            "ssh_jump_host": JUMP,
            "netbird_api_url": f"http://127.0.0.1:{closed_port()}",
            "netbird_api_token": "nbp_token_that_must_never_be_shown_0123",
        }
    )
    runtime = Runtime(scheduler_main.spec, settings)
    await runtime.start()
    yield runtime
    await runtime.stop()


async def publish(nc: NATS, event_type: str, data: BaseModel) -> None:
    await relay_publish(nc, new_event(event_type, data))


async def online_node(nc: NATS, gpus: int = 2) -> str:
    node_id = uuid.uuid4()
    host = f"gpu-{node_id.hex[:8]}"
    hardware = {
        "cpu_model": "EPYC",
        "cpu_cores": 32,
        "ram_mb": 256_000,
        "gpus": [
            {
                "index": i,
                "uuid": f"GPU-{node_id.hex[:8]}-{i}",
                "name": "A100",
                "memory_mb": 40960,
                "mig_capable": False,
                "mig_enabled": False,
            }
            for i in range(gpus)
        ],
    }
    await publish(
        nc,
        inv.NODE_CREATED,
        inv.NodeCreatedEvent(node_id=node_id, hostname=host, type="linux", management_ip="10.1.1.9"),
    )
    await publish(
        nc, inv.NODE_HARDWARE_CHANGED, inv.NodeHardwareChangedEvent(node_id=node_id, hostname=host, hardware=hardware)
    )
    await publish(
        nc,
        inv.NODE_ONLINE,
        inv.NodeOnlineEvent(node_id=node_id, hostname=host, previous_status="pending", at=datetime.now(UTC)),
    )
    return str(node_id)


async def user_with_key(new_user: UserFactory, folder: Path) -> Browser:
    user = await new_user()
    public, _ = ed25519_key(folder, "user@laptop")
    assert (await user.post("/me/ssh-keys", json={"public_key": public})).status_code == 201
    return user


async def environment(admin: Browser, node_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"env-{uuid.uuid4().hex[:8]}",
        "enforcement_mode": "soft",
        "tunnel_provider": "ssh_proxy_jump",
        **fields,
    }
    created = await admin.post("/environments", json=body)
    assert created.status_code == 201, created.text
    env: dict[str, Any] = created.json()

    async def attached() -> bool:
        return (await admin.post(f"/environments/{env['id']}/nodes", json={"node_id": node_id})).status_code == 204

    await wait_until(attached, timeout_s=15)  # once the node's events have reached the scheduler
    return env


@pytest.mark.usefixtures("scheduler")
async def test_an_admin_assigns_and_the_user_sees_it_and_how_to_reach_it(
    nc: NATS, admin: Browser, new_user: UserFactory, tmp_path: Path
) -> None:
    node_id = await online_node(nc)
    env = await environment(admin, node_id, default_cpus=4, default_ram_mb=8192)
    user, other = await user_with_key(new_user, tmp_path), await user_with_key(new_user, tmp_path)

    body = {"user_id": user.user_id, "environment_id": env["id"], "gpus": 1, "placement": "dynamic"}

    async def made() -> bool:
        reply = await admin.post("/assignments", json=body)
        made.reply = reply  # type: ignore[attr-defined]
        return reply.status_code == 201

    await wait_until(made, timeout_s=15)
    assignment = made.reply.json()  # type: ignore[attr-defined]
    assert assignment["node_id"] == node_id
    assert assignment["cpus"] == 4
    assert assignment["ram_mb"] == 8192
    assert assignment["status"] == "active"
    # No agent heartbeats here: nothing reported by the node yet.
    assert (assignment["node_state"], assignment["node_message"]) == ("pending", None)

    # Where and what, in words a user can read (they cannot call /nodes or /environments).
    assert assignment["node_hostname"] == f"gpu-{uuid.UUID(node_id).hex[:8]}"
    assert assignment["environment_name"] == env["name"]
    assert assignment["gpus"] == [
        {"index": 0, "uuid": f"GPU-{uuid.UUID(node_id).hex[:8]}-0", "name": "A100", "memory_mb": 40960}
    ]
    mine = await user.get("/me/assignments")
    assert [a["id"] for a in mine.json()["items"]] == [assignment["id"]]
    assert mine.json()["items"] == [assignment]
    assert (await other.get("/me/assignments")).json()["items"] == []
    access = await user.get(f"/me/assignments/{assignment['id']}/access")
    assert access.status_code == 200, access.text
    config = tmp_path / "config"
    config.write_text(access.json()["ssh_config"])
    alias = next(line.split()[1] for line in config.read_text().splitlines() if line.startswith("Host "))
    shown = subprocess.run(["ssh", "-G", "-F", str(config), alias], capture_output=True, text=True, check=True).stdout
    assert "hostname 10.1.1.9" in shown.splitlines()
    assert f"user {assignment['linux_username']}" in shown.splitlines()
    assert f"proxyjump {assignment['linux_username']}@{JUMP}" in shown.splitlines()
    assert (await other.get(f"/me/assignments/{assignment['id']}/access")).status_code == 404

    # Users do not reach the admin's routes.
    assert (await user.get("/assignments")).status_code == 403
    assert (
        await user.post("/environments", json={"name": "x", "enforcement_mode": "soft", "tunnel_provider": "netbird"})
    ).status_code == 403

    listed = await admin.get("/assignments", params={"user_id": user.user_id})
    assert listed.json()["items"] == [assignment], "the admin's list names the node, Environment and GPUs too"
    in_use = await admin.delete(f"/environments/{env['id']}")
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "environment_in_use"
    revoked = await admin.post(f"/assignments/{assignment['id']}/revoke")
    assert revoked.json()["status"] == "revoked"
    gone = await user.get(f"/me/assignments/{assignment['id']}/access")
    assert gone.status_code == 409
    assert (await admin.delete(f"/environments/{env['id']}")).status_code == 204


@pytest.mark.usefixtures("scheduler")
async def test_clear_errors_for_bad_assignments(
    nc: NATS, admin: Browser, new_user: UserFactory, tmp_path: Path
) -> None:
    node_id = await online_node(nc, gpus=1)
    env = await environment(admin, node_id)
    keyless = await new_user()
    user = await user_with_key(new_user, tmp_path)
    cases = [
        (
            {"user_id": keyless.user_id, "environment_id": env["id"], "gpus": 1, "placement": "dynamic"},
            422,
            "user_has_no_ssh_key",
        ),
        (
            {"user_id": user.user_id, "environment_id": env["id"], "gpus": 0, "placement": "dynamic"},
            422,
            "invalid_request",
        ),
        (
            {"user_id": user.user_id, "environment_id": env["id"], "gpus": 2, "placement": "fixed", "node_id": node_id},
            422,
            "invalid_request",
        ),
        (
            {"user_id": str(uuid.uuid4()), "environment_id": env["id"], "gpus": 1, "placement": "dynamic"},
            422,
            "invalid_request",
        ),
        (
            {"user_id": user.user_id, "environment_id": str(uuid.uuid4()), "gpus": 1, "placement": "dynamic"},
            404,
            "not_found",
        ),
    ]
    for body, status, code in cases:
        reply = await admin.post("/assignments", json=body)
        assert (reply.status_code, reply.json()["code"]) == (status, code), body
    assert (await admin.get("/assignments", params={"environment_id": env["id"]})).json()["items"] == []

    first = await admin.post(
        "/assignments", json={"user_id": user.user_id, "environment_id": env["id"], "gpus": 1, "placement": "dynamic"}
    )
    assert first.status_code == 201
    full = await admin.post(
        "/assignments", json={"user_id": user.user_id, "environment_id": env["id"], "gpus": 1, "placement": "dynamic"}
    )
    assert full.status_code == 409
    assert full.json()["code"] == "no_capacity"
    assert "not enough free GPUs" in full.json()["detail"]
    await admin.post(f"/assignments/{first.json()['id']}/revoke")


@pytest.mark.usefixtures("scheduler")
async def test_netbird_down_is_a_clear_502_without_the_token(
    nc: NATS, admin: Browser, new_user: UserFactory, tmp_path: Path
) -> None:
    node_id = await online_node(nc, gpus=1)
    env = await environment(admin, node_id, tunnel_provider="netbird")
    user = await user_with_key(new_user, tmp_path)
    made = await admin.post(
        "/assignments", json={"user_id": user.user_id, "environment_id": env["id"], "gpus": 1, "placement": "dynamic"}
    )
    assert made.status_code == 201, made.text
    access = await user.get(f"/me/assignments/{made.json()['id']}/access")
    assert access.status_code == 502
    body = access.json()
    assert body["code"] == "access_provider_unavailable"
    assert "NetBird" in body["detail"]
    assert "nbp_token" not in access.text
    await admin.post(f"/assignments/{made.json()['id']}/revoke")
