"""The heartbeat port with a real gRPC client: enroll, heartbeat, online with hardware, offline when
quiet; every client that must not get in is refused at the TLS or the auth layer."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from gpulab.agent.v1 import heartbeat_pb2, heartbeat_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_devstack.testing import wait_until
from gpulab_inventory.heartbeat.sweeper import Sweeper
from gpulab_pki.ca import certificate_pem, create_root, issue_client_cert, validate_node_csr

from .conftest import INTERVAL_S, Agent, ControlPlane, csr_pem, enrolled, events_of, hardware, key_pem

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


async def node(plane: ControlPlane, node_id: str | None) -> dict[str, Any]:
    found: dict[str, Any] = await plane.call("nodes.get", {"id": node_id})
    return found


async def test_enroll_then_heartbeat_puts_the_node_online_with_its_hardware(
    plane: ControlPlane, agents: list[Agent], tmp_path: Path
) -> None:
    created = await plane.add_node()
    node_id = created["node"]["id"]
    agent = plane.agent()
    agents.append(agent)
    reply = await agent.enroll(created["enrollment"]["token"])
    assert reply.node_id == node_id

    answer = await agent.heartbeat(hardware(gpus=2), version="1.2.3")
    assert answer.heartbeat_interval_s == INTERVAL_S
    assert list(answer.assignments) == []  # desired state: empty until the scheduler exists

    seen = await node(plane, node_id)
    assert seen["status"] == "online"
    assert seen["agent_version"] == "1.2.3"
    assert seen["last_seen_at"] is not None
    assert seen["hardware"] == {
        "cpu_model": "AMD EPYC 7763 64-Core Processor",
        "cpu_cores": 64,
        "ram_mb": 515_000,
        "gpus": [
            {
                "index": i,
                "uuid": f"GPU-{i:08d}-aaaa-bbbb-cccc-0123456789ab",
                "name": "NVIDIA A100-SXM4-80GB",
                "memory_mb": 81920,
                "mig_capable": True,
                "mig_enabled": False,
            }
            for i in range(2)
        ],
    }

    # openssl, not our code, judges the certificate the node got.
    (tmp_path / "ca.pem").write_bytes(plane.authority.cert_pem)
    (tmp_path / "node.pem").write_bytes(agent.cert_pem or b"")
    verify = subprocess.run(
        [OPENSSL, "verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "node.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.strip() == "node.pem: OK"
    shown = subprocess.run(
        [OPENSSL, "x509", "-in", "node.pem", "-noout", "-text"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "NIST CURVE: P-384" in shown
    assert re.search(rf"Subject: CN ?= ?{node_id}\n", shown)
    assert "TLS Web Client Authentication" in shown
    assert "TLS Web Server Authentication" not in shown
    assert "CA:FALSE" in shown
    cert = x509.load_pem_x509_certificate(agent.cert_pem or b"")
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=7, minutes=10)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= timedelta(days=7)


async def test_heartbeats_that_change_nothing_write_nothing_and_emit_nothing(
    plane: ControlPlane, agents: list[Agent], db: AsyncEngine
) -> None:
    agent = await enrolled(plane, agents)
    channel = agent.heartbeat_channel()
    await agent.heartbeat(hardware(), channel=channel)
    await wait_until(lambda: _count_is(plane, agent.node_id, "inventory.node_online", 1), timeout_s=10)
    async with db.connect() as conn:
        before = (
            await conn.execute(
                text("SELECT xmin::text, hardware_changed_at FROM inventory.nodes WHERE id = :id"),
                {"id": agent.node_id},
            )
        ).one()
    for _ in range(20):
        await agent.heartbeat(hardware(), channel=channel)
    async with db.connect() as conn:
        after = (
            await conn.execute(
                text("SELECT xmin::text, hardware_changed_at FROM inventory.nodes WHERE id = :id"),
                {"id": agent.node_id},
            )
        ).one()
    # The row version changes only with the batched last_seen_at write, at most a few times, not 20.
    assert after.hardware_changed_at == before.hardware_changed_at
    events = [t for t, _ in await events_of(plane, agent.node_id or "")]
    assert events.count("inventory.node_online") == 1
    assert events.count("inventory.node_hardware_changed") == 1

    # last_seen_at reaches the database in a batch, shortly after.
    first_seen = (await node(plane, agent.node_id))["last_seen_at"]
    await asyncio.sleep(1.2)
    await agent.heartbeat(hardware(), channel=channel)
    await wait_until(
        lambda: _last_seen_after(plane, agent.node_id, first_seen),
        timeout_s=5,
    )


async def _last_seen_after(plane: ControlPlane, node_id: str | None, when: str) -> bool:
    return str((await node(plane, node_id))["last_seen_at"]) > when


async def _count(plane: ControlPlane, node_id: str | None, event_type: str) -> int:
    return sum(1 for t, _ in await events_of(plane, node_id or "") if t == event_type)


async def _count_is(plane: ControlPlane, node_id: str | None, event_type: str, expected: int) -> bool:
    return await _count(plane, node_id, event_type) == expected


async def test_new_hardware_is_recorded_once_with_an_event(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat(hardware(gpus=2))
    await agent.heartbeat(hardware(gpus=3, cpu_cores=128))
    await agent.heartbeat(hardware(gpus=3, cpu_cores=128))
    seen = await node(plane, agent.node_id)
    assert len(seen["hardware"]["gpus"]) == 3
    assert seen["hardware"]["cpu_cores"] == 128
    await wait_until(lambda: _count_is(plane, agent.node_id, "inventory.node_hardware_changed", 2), timeout_s=10)
    changes = [d for t, d in await events_of(plane, agent.node_id or "") if t == "inventory.node_hardware_changed"]
    assert changes[1]["previous"]["cpu_cores"] == 64
    assert changes[1]["hardware"]["cpu_cores"] == 128


async def test_a_heartbeat_without_a_hardware_report_keeps_the_recorded_hardware(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat(hardware(gpus=2))
    recorded = (await node(plane, agent.node_id))["hardware"]
    stub = heartbeat_pb2_grpc.HeartbeatStub(agent.heartbeat_channel())
    reply = await stub.Heartbeat(heartbeat_pb2.HeartbeatRequest(agent_version="1.0.0"), timeout=20)
    assert reply.heartbeat_interval_s == INTERVAL_S
    assert (await node(plane, agent.node_id))["hardware"] == recorded
    # Also on a node the cache has just (re)loaded, and one that reports for the first time.
    plane.directory.forget(uuid.UUID(agent.node_id or ""))
    await stub.Heartbeat(heartbeat_pb2.HeartbeatRequest(agent_version="1.0.1"), timeout=20)
    seen = await node(plane, agent.node_id)
    assert seen["hardware"] == recorded
    assert seen["agent_version"] == "1.0.1"
    quiet = await enrolled(plane, agents)
    await heartbeat_pb2_grpc.HeartbeatStub(quiet.heartbeat_channel()).Heartbeat(
        heartbeat_pb2.HeartbeatRequest(agent_version="1.0.0"), timeout=20
    )
    first = await node(plane, quiet.node_id)
    assert first["status"] == "online"
    assert first["hardware"] is None


async def test_node_a_can_never_change_node_b(plane: ControlPlane, agents: list[Agent]) -> None:
    a, b = await enrolled(plane, agents), await enrolled(plane, agents)
    await b.heartbeat(hardware(gpus=1), version="2.0.0")
    b_before = await node(plane, b.node_id)
    # A reports B's GPU count and another version: only A's record changes. Nothing in the request
    # names a node; the certificate does.
    await a.heartbeat(hardware(gpus=4), version="9.9.9")
    assert await node(plane, b.node_id) == b_before
    assert (await node(plane, a.node_id))["agent_version"] == "9.9.9"


async def test_a_bad_hardware_report_is_refused_and_changes_nothing(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat(hardware(gpus=1))
    before = await node(plane, agent.node_id)
    for bad in (hardware(cpu_cores=-1), hardware(cpu_model="nul\x00byte"), hardware(gpus=300)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await agent.heartbeat(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await agent.heartbeat(hardware(gpus=1), version="x" * 65)
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = await node(plane, agent.node_id)
    assert after["hardware"] == before["hardware"]
    assert after["agent_version"] == before["agent_version"]


async def _refused_at_tls(channel: grpc.aio.Channel) -> grpc.StatusCode:
    stub = heartbeat_pb2_grpc.HeartbeatStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Heartbeat(heartbeat_pb2.HeartbeatRequest(agent_version="1"), timeout=10)
    return refused.value.code()


async def test_no_certificate_and_another_cas_certificate_are_refused_by_tls(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    agent = await enrolled(plane, agents)
    assert await _refused_at_tls(agent.heartbeat_channel(None, None) if False else _no_cert(plane, agent)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    # A certificate with the right CN and an identical-looking issuer, signed by another root.
    other_key, other_root = create_root()
    forged = issue_client_cert(
        other_key, other_root, validate_node_csr(csr_pem(agent.key)), uuid.UUID(agent.node_id or "")
    )
    channel = agent.heartbeat_channel(key_pem(agent.key), certificate_pem(forged))
    assert await _refused_at_tls(channel) == grpc.StatusCode.UNAVAILABLE
    assert (await node(plane, agent.node_id))["status"] == "pending"


def _no_cert(plane: ControlPlane, agent: Agent) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(plane.authority.cert_pem)
    channel = grpc.aio.secure_channel(f"127.0.0.1:{plane.heartbeat_port}", creds)
    agent._channels.append(channel)
    return channel


async def test_an_expired_certificate_is_refused_by_tls(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    ca = plane.authority
    expired = issue_client_cert(
        ca.key,
        ca.cert,
        validate_node_csr(csr_pem(agent.key)),
        uuid.UUID(agent.node_id or ""),
        timedelta(seconds=1),
    )
    await asyncio.sleep(max(0.0, (expired.not_valid_after_utc - datetime.now(UTC)).total_seconds()) + 1.1)
    channel = agent.heartbeat_channel(key_pem(agent.key), certificate_pem(expired))
    assert await _refused_at_tls(channel) == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_that_expires_during_a_connection_is_refused_from_then_on(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    """TLS checks the certificate once, at the handshake (and not at all when a session is resumed);
    the connection may outlive it: every heartbeat checks it again."""
    agent = await enrolled(plane, agents)
    ca = plane.authority
    short = issue_client_cert(
        ca.key, ca.cert, validate_node_csr(csr_pem(agent.key)), uuid.UUID(agent.node_id or ""), timedelta(seconds=3)
    )
    channel = agent.heartbeat_channel(key_pem(agent.key), certificate_pem(short))
    await agent.heartbeat(channel=channel)
    await asyncio.sleep(max(0.0, (short.not_valid_after_utc - datetime.now(UTC)).total_seconds()) + 0.5)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agent.heartbeat(channel=channel)  # the same connection, made while the certificate was valid
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "the client certificate has expired"


async def test_a_certificate_for_a_node_we_do_not_know_is_unauthenticated(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    agent = plane.agent()
    agents.append(agent)
    ca = plane.authority
    stray = issue_client_cert(ca.key, ca.cert, validate_node_csr(csr_pem(agent.key)), uuid.uuid4())
    channel = agent.heartbeat_channel(key_pem(agent.key), certificate_pem(stray))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agent.heartbeat(channel=channel)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_deleted_nodes_certificate_is_refused_from_then_on(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    channel = agent.heartbeat_channel()
    await agent.heartbeat(channel=channel)
    await plane.call("nodes.delete", {"id": agent.node_id})
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agent.heartbeat(channel=channel)  # the same connection, already past its handshake
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await node(plane, agent.node_id))["status"] == "revoked"
    # The revoked serial reached the projection too (pki's event), so even a node row put back could
    # not use it.
    serial = format(x509.load_pem_x509_certificate(agent.cert_pem or b"").serial_number, "040x")
    await wait_until(lambda: serial in plane.directory.revoked, timeout_s=10)


async def test_a_quiet_node_goes_offline_once_and_comes_back_online(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat()
    await wait_until(lambda: _status(plane, agent.node_id, "offline"), timeout_s=3 * INTERVAL_S + 6)
    await asyncio.sleep(2)  # more sweeps: still one transition
    await agent.heartbeat()
    assert (await node(plane, agent.node_id))["status"] == "online"
    await wait_until(lambda: _count_is(plane, agent.node_id, "inventory.node_online", 2), timeout_s=10)
    events = [(t, d) for t, d in await events_of(plane, agent.node_id or "") if t != "inventory.node_created"]
    kinds = [t for t, _ in events if t in ("inventory.node_online", "inventory.node_offline")]
    assert kinds == ["inventory.node_online", "inventory.node_offline", "inventory.node_online"]
    back = [d for t, d in events if t == "inventory.node_online"][1]
    assert back["previous_status"] == "offline"
    assert back["offline_since"] is not None


async def _status(plane: ControlPlane, node_id: str | None, status: str) -> bool:
    return bool((await node(plane, node_id))["status"] == status)


async def _nothing() -> None:
    pass


async def test_sweepers_of_several_replicas_mark_a_node_offline_exactly_once(
    plane: ControlPlane, agents: list[Agent], db: AsyncEngine
) -> None:
    agent = await enrolled(plane, agents)
    await agent.heartbeat()
    # Four replicas' sweepers, each with its own sessions, race over a node silent for an hour.
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE inventory.nodes SET last_seen_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": agent.node_id},
        )
    assert plane.inventory.sessions is not None
    sweepers = [Sweeper(plane.inventory.sessions, 3, flush=_nothing, forget=lambda _: None) for _ in range(4)]
    results = await asyncio.gather(*(s.sweep() for s in sweepers))
    marked = [r for r in results if uuid.UUID(agent.node_id or "") in r]
    assert len(marked) == 1
    await wait_until(lambda: _count_is(plane, agent.node_id, "inventory.node_offline", 1), timeout_s=10)
    await asyncio.sleep(0.5)
    assert await _count(plane, agent.node_id, "inventory.node_offline") == 1
