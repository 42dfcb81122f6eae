"""The real Go agent against real service processes (identity, pki, inventory, scheduler): it enrolls
with the token and the CA fingerprint, heartbeats the GPUs of a recorded 8-GPU nvidia-smi, saves the
assignment an admin makes (with the user's SSH key), reports it applied (the assignment's node_state)
and drops it once revoked, stops cleanly on SIGTERM, and after its node is deleted exits with 78,
"re-enroll needed"."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from gpulab_devstack.testing import Launcher, Stack, wait_until

from .agent_support import (
    EXIT_REENROLL,
    INTERVAL_S,
    RECORDING,
    VERSION,
    Agents,
    assign_two_gpus,
    assignments_in,
    recorded_gpus,
    start_plane,
)

pytestmark = pytest.mark.slow


async def test_real_agent_enrolls_heartbeats_applies_and_loses_an_assignment_and_must_reenroll_once_deleted(
    services: Launcher, nc: NATS, migrated: Stack, agents: Agents, tmp_path: Path
) -> None:
    plane = await start_plane(services, nc)
    hostname = f"gpu-e2e-{uuid.uuid4().hex[:8]}"
    created = await plane.call(
        "inventory", "nodes.create", {"hostname": hostname, "type": "linux", "management_ip": "10.0.0.9"}
    )
    node_id = created["node"]["id"]
    enrollment = created["enrollment"]

    enrolled = await agents.enroll(f"127.0.0.1:{plane.enroll_port}", enrollment["ca_fingerprint"], enrollment["token"])
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"enrolled as node {node_id}" in enrolled.stdout
    assert f"heartbeats go to 127.0.0.1:{plane.heartbeat_port}" in enrolled.stdout

    # Online, with the recorded GPUs, within a few seconds of the first heartbeat.
    agent = agents.run()
    node: dict[str, Any] = {}

    async def online() -> bool:
        nonlocal node
        node = await plane.call("inventory", "nodes.get", {"id": node_id})
        return node["status"] == "online" and node["hardware"] is not None

    started = time.monotonic()
    try:
        await wait_until(online, timeout_s=10, interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"not online: {node}; agent output:\n{agent.output()}") from None
    online_after_s = time.monotonic() - started
    expected = recorded_gpus(RECORDING)
    gpus = node["hardware"]["gpus"]
    assert [(g["index"], g["uuid"], g["name"], g["memory_mb"]) for g in gpus] == expected
    assert all(g["mig_capable"] and not g["mig_enabled"] for g in gpus)  # H200: MIG mode reported, Disabled
    assert node["agent_version"] == VERSION
    # The CPUs and memory are this machine's (the agent reads /proc): the request below fits any.
    assert node["hardware"]["cpu_cores"] >= 1
    assert node["hardware"]["ram_mb"] >= 512
    assert online_after_s < 10

    # An assignment on it reaches the agent's saved desired state, with the user's key.
    made, public_key = await assign_two_gpus(plane, migrated, tmp_path, node_id)
    assert made["node_id"] == node_id
    assert [(g["index"], g["uuid"]) for g in made["gpus"]] == [(i, u) for i, u, _, _ in expected[:2]]

    started = time.monotonic()
    await wait_until(lambda: made["id"] in assignments_in(agents.desired()), timeout_s=10, interval_s=0.1)
    saved_after_s = time.monotonic() - started
    saved = agents.desired()
    assert saved is not None
    assert saved["node_id"] == node_id
    assert saved["desired"]["heartbeat_interval_s"] == INTERVAL_S
    desired = assignments_in(saved)[made["id"]]
    assert desired["linux_username"] == made["linux_username"]
    assert desired["ssh_public_keys"] == [public_key]
    # protojson leaves out zero values: GPU 0 has no "index".
    assert [(g.get("index", 0), g["uuid"]) for g in desired["gpus"]] == [(g["index"], g["uuid"]) for g in made["gpus"]]
    assert desired["cpus"] == 1
    assert desired["ram_mb"] == "512"  # protojson writes int64 as a string
    assert desired["enforcement_mode"] == "ENFORCEMENT_MODE_SOFT"
    # A few intervals: the next heartbeat brings it. Generous, since a loaded 2-core machine (a
    # fresh-clone run beside other tests saw 5.4 s) delays the services' consumers as well.
    assert saved_after_s < 8 * INTERVAL_S, f"saved after {saved_after_s:.1f}s"
    assert os.stat(agents.dir / "desired-state.json").st_mode & 0o777 == 0o600

    # The agent applies it and says so in its next heartbeat; the scheduler hears of it from inventory.
    assert made["node_state"] == "pending"
    reply: dict[str, Any] = {}

    async def applied() -> bool:
        nonlocal reply
        reply = await plane.call("scheduler", "assignments.get", {"id": made["id"]})
        return bool(reply["node_state"] != "pending")

    try:
        await wait_until(applied, timeout_s=15, interval_s=0.1)
    except AssertionError:
        raise AssertionError(f"still pending: {reply}; agent output:\n{agent.output()}") from None
    applied_after_s = time.monotonic() - started
    assert (reply["node_state"], reply["node_message"]) == ("applied", None), agent.output()
    assert applied_after_s < 6 * INTERVAL_S, f"applied after {applied_after_s:.1f}s"

    # Revoked: gone from the saved state within one or two intervals.
    await plane.call("scheduler", "assignments.revoke", {"id": made["id"]})
    started = time.monotonic()
    await wait_until(lambda: made["id"] not in assignments_in(agents.desired()), timeout_s=10, interval_s=0.1)
    gone_after_s = time.monotonic() - started
    assert gone_after_s < 8 * INTERVAL_S, f"gone after {gone_after_s:.1f}s"

    # SIGTERM: a clean stop.
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.wait(15) == 0, agent.output()
    assert "agent stopped" in agent.output()

    # Deleted node: the next start is refused and says the node must enroll again.
    await plane.call("inventory", "nodes.delete", {"id": node_id})
    again = agents.run()
    assert again.wait(30) == EXIT_REENROLL, again.output()
    assert "RE-ENROLL NEEDED" in again.output()
    assert enrollment["ca_fingerprint"].replace(":", "").lower() in again.output().lower()


async def test_the_first_certificate_is_refused_after_a_re_enroll(
    services: Launcher, nc: NATS, agent_binary: Path, tmp_path: Path
) -> None:
    """The node's first identity (its key and certificate, perhaps copied off a stolen disk) stops
    working as soon as the admin makes a new enrollment token: its agent is refused at the next
    heartbeat, while the node enrolled again with that token works. Each enrollment is in the audit
    log with the address it came from."""
    plane = await start_plane(services, nc)
    created = await plane.call(
        "inventory",
        "nodes.create",
        {"hostname": f"gpu-again-{uuid.uuid4().hex[:8]}", "type": "linux", "management_ip": "10.0.0.12"},
    )
    node_id, enrollment = created["node"]["id"], created["enrollment"]
    server = f"127.0.0.1:{plane.enroll_port}"
    first, second = (
        Agents(agent_binary, tmp_path / "first", RECORDING),
        Agents(agent_binary, tmp_path / "second", RECORDING),
    )
    try:
        enrolled = await first.enroll(server, enrollment["ca_fingerprint"], enrollment["token"])
        assert enrolled.returncode == 0, enrolled.stderr
        old = first.run()

        async def seen() -> bool:
            node = await plane.call("inventory", "nodes.get", {"id": node_id})
            return bool(node["status"] == "online")

        await wait_until(seen, timeout_s=15, interval_s=0.2)

        again = await plane.call("inventory", "nodes.new_token", {"id": node_id})
        # Refused at its next heartbeat (INTERVAL_S), well before the certificate would expire.
        assert await asyncio.to_thread(old.wait, 30) == EXIT_REENROLL, old.output()
        assert "RE-ENROLL NEEDED" in old.output()

        enrolled = await second.enroll(server, again["ca_fingerprint"], again["token"])
        assert enrolled.returncode == 0, enrolled.stderr
        new = second.run()
        last_seen = (await plane.call("inventory", "nodes.get", {"id": node_id}))["last_seen_at"]

        async def heartbeats_again() -> bool:
            node = await plane.call("inventory", "nodes.get", {"id": node_id})
            return bool(node["status"] == "online" and node["last_seen_at"] != last_seen)

        try:
            await wait_until(heartbeats_again, timeout_s=15, interval_s=0.2)
        except AssertionError:
            raise AssertionError(f"the re-enrolled node does not heartbeat; output:\n{new.output()}") from None
        # The first identity, started again, is still refused.
        retried = first.run()
        assert await asyncio.to_thread(retried.wait, 30) == EXIT_REENROLL, retried.output()

        async def audited() -> list[dict[str, Any]]:
            page = await plane.call(
                "identity", "audit.list", {"target_type": "node", "target_id": node_id, "limit": 50}
            )
            return list(page["items"])

        await wait_until(lambda: _count(audited, "node.enrolled", 2), timeout_s=20, interval_s=0.3)
        rows = await audited()
        enrollments = [r for r in rows if r["action"] == "node.enrolled"]
        assert [r["details"]["address"] for r in enrollments] == ["127.0.0.1", "127.0.0.1"]
        revocations = [r for r in rows if r["action"] == "node.certificates_revoked"]
        assert [r["details"]["reason"] for r in revocations] == ["new_token"], rows
        new.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(new.wait, 15) == 0, new.output()
    finally:
        first.close()
        second.close()


async def _count(rows: Callable[[], Awaitable[list[dict[str, Any]]]], action: str, count: int) -> bool:
    return len([r for r in await rows() if r["action"] == action]) >= count
