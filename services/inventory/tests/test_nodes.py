"""Nodes over NATS RPC, as the gateway calls them: create with a one-time token, list, get, new token, delete."""

from __future__ import annotations

import asyncio
import shlex
import uuid

import grpc
import pytest

from gpulab_devstack.testing import wait_until

from .conftest import PUBLIC_URL, ControlPlane, events_of


async def test_a_new_node_is_pending_with_a_one_time_token_and_the_install_command(plane: ControlPlane) -> None:
    actor = str(uuid.uuid4())
    created = await plane.add_node("GPU-01.Lab.Example.org", type="proxmox", management_ip="10.1.2.3", actor_id=actor)
    node, enrollment = created["node"], created["enrollment"]
    assert node["hostname"] == "gpu-01.lab.example.org"
    assert node["type"] == "proxmox"
    assert node["management_ip"] == "10.1.2.3"
    assert node["status"] == "pending"
    assert node["last_seen_at"] is None
    assert node["hardware"] is None

    ca = await plane.call("ca.get", service="pki")
    assert enrollment["ca_fingerprint"] == ca["sha256_fingerprint"]
    assert len(enrollment["token"]) >= 22  # >= 128 bits, URL-safe base64
    # The token only in printf's (a shell builtin's) words, never an argument of a process.
    feed, run = enrollment["install_command"].split(" | ", 1)
    assert feed == f"{{ curl -fsSL {PUBLIC_URL}/install-agent.sh && printf '%s\\n' {enrollment['token']}; }}"
    words = shlex.split(run)
    assert words[:4] == ["sudo", "bash", "-s", "--"]
    args = dict(zip(words[4::2], words[5::2], strict=True))
    assert args == {"--url": PUBLIC_URL, "--ca-fingerprint": ca["sha256_fingerprint"], "--token-file": "-"}
    assert enrollment["token"] not in run

    assert await plane.call("nodes.get", {"id": node["id"]}) == node
    await wait_until(lambda: _has(plane, node["id"], "inventory.node_created"), timeout_s=10)
    [(_, data)] = [e for e in await events_of(plane, node["id"]) if e[0] == "inventory.node_created"]
    assert data["actor_id"] == actor
    assert data["hostname"] == "gpu-01.lab.example.org"


async def test_a_nodes_ssh_port_is_22_unless_said_and_reaches_the_event(plane: ControlPlane) -> None:
    default = (await plane.add_node())["node"]
    assert default["ssh_port"] == 22
    jump = (await plane.add_node(type="jump", ssh_port=65535))["node"]  # the last port: accepted
    assert (jump["type"], jump["ssh_port"]) == ("jump", 65535)
    assert await plane.call("nodes.get", {"id": jump["id"]}) == jump
    await wait_until(lambda: _has(plane, jump["id"], "inventory.node_created"), timeout_s=10)
    [(_, data)] = [e for e in await events_of(plane, jump["id"]) if e[0] == "inventory.node_created"]
    assert (data["type"], data["ssh_port"]) == ("jump", 65535)


async def _has(plane: ControlPlane, node_id: str, event_type: str) -> bool:
    return any(t == event_type for t, _ in await events_of(plane, node_id))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hostname", "-leading-hyphen"),
        ("hostname", "under_score"),
        ("hostname", "a" * 64),
        ("hostname", ""),
        ("hostname", "nul\x00byte"),
        ("type", "windows"),
        ("management_ip", "10.0.0.300"),
        ("management_ip", "example.org"),
        ("hostname", 42),
        ("ssh_port", 0),
        ("ssh_port", 65536),  # one over the last port
        ("ssh_port", "22; rm"),
    ],
)
async def test_a_bad_node_is_refused_and_nothing_is_created(plane: ControlPlane, field: str, value: object) -> None:
    before = await _records(plane)
    body = {"hostname": f"ok-{uuid.uuid4().hex[:8]}", "type": "linux", "management_ip": "10.0.0.1", field: value}
    error = await plane.error("nodes.create", body)
    assert error.code == "invalid_request"
    assert await _records(plane) == before


async def _records(plane: ControlPlane) -> dict[str, tuple[object, ...]]:
    """Every node's own record, less its liveness (earlier tests' nodes turn offline and have their
    last contact written on their own, whatever this test does)."""
    listed = await plane.call("nodes.list", {"limit": 500})
    fields = ("hostname", "type", "management_ip", "ssh_port")
    return {n["id"]: tuple(n.get(f) for f in fields) for n in listed["items"]}


async def test_two_live_nodes_cannot_share_a_hostname_even_when_added_at_once(plane: ControlPlane) -> None:
    name = f"twin-{uuid.uuid4().hex[:8]}"
    body = {"hostname": name, "type": "linux", "management_ip": "10.0.0.9"}
    results = await asyncio.gather(*(plane.call("nodes.create", body) for _ in range(10)), return_exceptions=True)
    made = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if not isinstance(r, dict)]
    assert len(made) == 1
    assert len(refused) == 9
    assert {getattr(r, "code", None) for r in refused} == {"node_exists"}

    # Deleting frees the name.
    await plane.call("nodes.delete", {"id": made[0]["node"]["id"]})
    again = await plane.call("nodes.create", body)
    assert again["node"]["id"] != made[0]["node"]["id"]


async def test_unknown_nodes_are_not_found(plane: ControlPlane) -> None:
    for operation in ("nodes.get", "nodes.delete", "nodes.new_token"):
        error = await plane.error(operation, {"id": str(uuid.uuid4())})
        assert error.code == "not_found"
    error = await plane.error("nodes.get", {"id": "not-a-uuid"})
    assert error.code == "invalid_request"


async def test_the_list_pages_through_every_node_once_and_filters_by_status(plane: ControlPlane) -> None:
    made = {(await plane.add_node())["node"]["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        page = await plane.call("nodes.list", {"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert len(page["items"]) <= 2
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert made <= set(seen)
    pending = await plane.call("nodes.list", {"limit": 500, "status": "pending"})
    assert made <= {n["id"] for n in pending["items"]}
    assert all(n["status"] == "pending" for n in pending["items"])
    assert (await plane.error("nodes.list", {"cursor": "garbage!"})).code == "invalid_request"
    assert (await plane.error("nodes.list", {"limit": 501})).code == "invalid_request"


async def test_a_new_token_replaces_the_old_one(plane: ControlPlane, agents: list) -> None:  # type: ignore[type-arg]
    created = await plane.add_node()
    node_id = created["node"]["id"]
    fresh = await plane.call("nodes.new_token", {"id": node_id})
    assert fresh["token"] != created["enrollment"]["token"]

    old, new = plane.agent(), plane.agent()
    agents += [old, new]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await old.enroll(created["enrollment"]["token"])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = await new.enroll(fresh["token"])
    assert reply.node_id == node_id


async def test_deleting_a_node_revokes_it_its_tokens_and_is_idempotent(plane: ControlPlane, agents: list) -> None:  # type: ignore[type-arg]
    created = await plane.add_node()
    node_id = created["node"]["id"]
    actor = str(uuid.uuid4())
    deleted = await plane.call("nodes.delete", {"id": node_id, "actor_id": actor})
    assert deleted["status"] == "revoked"
    assert await plane.call("nodes.delete", {"id": node_id}) == deleted  # again: same answer, nothing new
    assert (await plane.call("nodes.get", {"id": node_id}))["status"] == "revoked"

    agent = plane.agent()
    agents.append(agent)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agent.enroll(created["enrollment"]["token"])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    error = await plane.error("nodes.new_token", {"id": node_id})
    assert error.code == "node_revoked"
    await wait_until(lambda: _has(plane, node_id, "inventory.node_deleted"), timeout_s=10)
    deletes = [d for t, d in await events_of(plane, node_id) if t == "inventory.node_deleted"]
    assert len(deletes) == 1
    assert deletes[0]["actor_id"] == actor
