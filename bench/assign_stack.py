"""The stack behind bench/assign.py: identity, scheduler and gateway as service processes on an
embedded PostgreSQL and NATS, with nodes, users and one Environment made the way production makes
them (inventory's events on the stream, identity's bootstrap and `ssh_keys.add`, the scheduler's
own endpoints), and the CPU time each part spends."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from bench.heartbeat_load import cpu_s
from gpulab_core import db
from gpulab_core.contracts import inventory as inv
from gpulab_core.events import EVENT_SUBJECT_PREFIX, Event
from gpulab_core.rpc import RpcClient
from gpulab_devstack.testing import TEST_AUDIT_HMAC_KEY
from gpulab_identity.audit import repository as audit
from gpulab_identity.bootstrap import ensure_admin
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_identity.passwords import Passwords

PASSWORD = "benchmark password 1"
GPUS_PER_NODE = 8
SETUP_CONCURRENCY = 8  # requests in flight while the stack is filled with nodes, users, attachments
TICK = os.sysconf("SC_CLK_TCK")


# ---- CPU time per part ----
def _cpu_of(process: psutil.Process) -> float:
    """A process's CPU seconds; 0 for one that ended since it was listed (a backend closing)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds by part at one moment; the difference of two is what each part spent between."""

    at: float
    parts: dict[str, float]

    @classmethod
    def take(cls, pids: dict[str, int], postmaster: int) -> Cpu:
        parts = {name: cpu_s(pid) for name, pid in pids.items()}
        # PostgreSQL: the postmaster and its backends (each pooled connection is one, living as long as the run).
        server = psutil.Process(postmaster)
        parts["postgres"] = sum(_cpu_of(p) for p in [server, *server.children(recursive=True)])
        parts["load generator"] = time.process_time()
        # /proc/stat: user nice system idle iowait irq softirq. Interrupts (loopback TCP's softirq
        # above all) are not charged to any process.
        ticks = [int(v) / TICK for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
        parts["kernel irq, softirq"] = ticks[5] + ticks[6]
        parts["machine"] = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
        return cls(time.perf_counter(), parts)

    def spent(self, since: Cpu) -> dict[str, float]:
        """CPU seconds of each part from `since` to this moment, and of everything else (other work)."""
        out = {k: max(v - since.parts.get(k, 0.0), 0.0) for k, v in self.parts.items() if k != "machine"}
        out["other processes"] = max(self.parts["machine"] - since.parts["machine"] - sum(out.values()), 0.0)
        return out


# ---- nodes: inventory's events, as its outbox relay publishes them ----
async def publish(nc: NATS, event_type: str, data: BaseModel) -> None:
    event = Event(
        id=uuid.uuid4(),
        type=event_type,
        source=event_type.split(".", 1)[0],
        occurred_at=datetime.now(UTC),
        data=data.model_dump(mode="json"),
    )
    subject = f"{EVENT_SUBJECT_PREFIX}.{event_type}"
    await nc.jetstream().publish(subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": str(event.id)})


def hardware(node: int) -> dict[str, Any]:
    """What an 8-GPU node reports (the same shape as bench/heartbeat.py's messages)."""
    gpus = [
        {
            "index": i,
            "uuid": f"GPU-{node:08x}-{i:04x}-4c5d-8e9f-0123456789ab",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_mb": 81559,
            "mig_capable": True,
            "mig_enabled": False,
        }
        for i in range(GPUS_PER_NODE)
    ]
    return {"cpu_model": "AMD EPYC 9454 48-Core Processor", "cpu_cores": 96, "ram_mb": 1_547_000, "gpus": gpus}


async def add_nodes(nc: NATS, pg_url: str, n: int, timeout_s: float = 120) -> list[uuid.UUID]:
    """n nodes created, with their hardware, online: returned once the scheduler's projection has them all."""
    ids = [uuid.uuid4() for _ in range(n)]
    for i, node_id in enumerate(ids):
        host = f"bench-gpu-{i:04d}"
        created = inv.NodeCreatedEvent(
            node_id=node_id, hostname=host, type="linux", management_ip=f"10.0.{i // 250}.{i % 250 + 1}"
        )
        await publish(nc, inv.NODE_CREATED, created)
        changed = inv.NodeHardwareChangedEvent(node_id=node_id, hostname=host, hardware=hardware(i))
        await publish(nc, inv.NODE_HARDWARE_CHANGED, changed)
        online = inv.NodeOnlineEvent(node_id=node_id, hostname=host, previous_status="pending", at=datetime.now(UTC))
        await publish(nc, inv.NODE_ONLINE, online)
    query = """SELECT count(*) FROM scheduler.nodes
               WHERE id = ANY($1) AND status = 'online' AND hardware IS NOT NULL AND management_ip IS NOT NULL"""
    deadline = time.monotonic() + timeout_s
    conn = await asyncpg.connect(pg_url)
    try:
        while (seen := await conn.fetchval(query, ids)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the scheduler's projection has {seen} of {n} nodes online after {timeout_s:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    return ids


async def add_environment(rpc: RpcClient, name: str, nodes: list[uuid.UUID], **fields: Any) -> str:
    body = {"name": name, "enforcement_mode": "soft", "tunnel_provider": "ssh_proxy_jump", **fields}
    env = await rpc.call("scheduler", "environments.create", body)
    slots = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def attach(node_id: uuid.UUID) -> None:
        async with slots:
            await rpc.call("scheduler", "environments.attach_node", {"id": env["id"], "node_id": str(node_id)})

    await asyncio.gather(*(attach(n) for n in nodes))
    return str(env["id"])


# ---- users: active, each with an SSH key ----
def ssh_key(comment: str) -> str:
    public = Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}"


async def add_users(rpc: RpcClient, app_url: str, n: int) -> list[tuple[str, str]]:
    """(id, email) of n active users, each with an SSH key: made as identity's bootstrap makes an
    admin (the scheduler's tests make theirs the same way), the key through `ssh_keys.add`."""
    defaults = IdentitySettings.model_fields
    passwords = Passwords(defaults["argon2_memory_kib"].default, defaults["argon2_time_cost"].default)
    engine = db.create_engine(app_url, schema="identity", app_name="bench-assign")
    emails = [f"bench.{i:03d}@example.org" for i in range(n)]
    try:
        # Keyed as the identity this benchmark runs keys the audit log (Stack.env gives it this key).
        sessions = audit.keyed(db.session_factory(engine), TEST_AUDIT_HMAC_KEY.encode())
        for email in emails:
            await ensure_admin(sessions, passwords, email, PASSWORD, only_if_none=False, name=email)
    finally:
        await engine.dispose()
    found = await rpc.call("identity", "users.list", {"limit": 500, "role": "admin"})
    ids = {u["email"]: u["id"] for u in found["items"]}
    users = [(str(ids[e]), e) for e in emails]
    slots = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def add_key(user_id: str, email: str) -> None:
        async with slots:
            await rpc.call("identity", "ssh_keys.add", {"user_id": user_id, "public_key": ssh_key(email)})

    await asyncio.gather(*(add_key(i, e) for i, e in users))
    return users


async def wait_for_rpc(rpc: RpcClient, service: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await rpc.call(service, "health", {}, timeout_s=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


# ---- checks ----
HELD = """SELECT count(*) AS held, count(DISTINCT (node_id, gpu_uuid)) AS distinct_gpus
          FROM scheduler.assignment_gpus WHERE active"""
ACTIVE = "SELECT count(*) FROM scheduler.assignments WHERE status = 'active'"


async def check_held(pg_url: str, assigned: int, gpus: int) -> str:
    """Fails unless every active assignment holds its own GPU and exactly `gpus` are held."""
    conn = await asyncpg.connect(pg_url)
    try:
        row = await conn.fetchrow(HELD)
        active = await conn.fetchval(ACTIVE)
    finally:
        await conn.close()
    held, distinct = row["held"], row["distinct_gpus"]
    if not held == distinct == gpus == assigned == active:
        raise AssertionError(
            f"GPU accounting is off: {assigned} assignments answered 201, {active} active in the database,"
            f" {held} GPU rows held, {distinct} distinct GPUs, {gpus} GPUs in the environment"
        )
    return f"{held} GPUs held, {distinct} distinct, by {active} active assignments: no GPU is held twice"


async def active_ids(pg_url: str) -> list[str]:
    conn = await asyncpg.connect(pg_url)
    try:
        return [str(r[0]) for r in await conn.fetch("SELECT id FROM scheduler.assignments WHERE status = 'active'")]
    finally:
        await conn.close()
