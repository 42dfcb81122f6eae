"""The scheduler runs for real in this process (two replicas when a test needs them), with identity,
on the session's PostgreSQL and NATS. Nodes reach its projection the way they do in production: as
inventory's events on the stream (published here exactly as inventory's outbox relay publishes them)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts import inventory as inv
from gpulab_core.db import create_engine
from gpulab_core.errors import RemoteError
from gpulab_core.events import Event
from gpulab_core.rpc import RpcClient
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import Stack, new_event, relay_publish, wait_until
from gpulab_identity import main as identity_main
from gpulab_identity.bootstrap import ensure_admin
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_identity.passwords import Passwords
from gpulab_scheduler import main as scheduler_main
from gpulab_scheduler.config import Settings as SchedulerSettings

from .fake_netbird import FakeNetBird

PASSWORD = "correct horse battery staple"
JUMP_HOST = "jump.example.org"
# The lab's NetBird, as the cluster's schedulers see it: a fake of NetBird's documented API.
NETBIRD_TOKEN = "nbp_LabT0kenOfTheSchedulerTests0123456789"
NETBIRD_LAB_GROUP = "ch8i4ug6lnn4g9hqv7lab"
NETBIRD_ALL_GROUP = "ch8i4ug6lnn4g9hqv7all"


def gpus(
    n: int, *, mig: bool = False, prefix: str | None = None, mig_capable: int | None = None
) -> list[dict[str, Any]]:
    """n GPUs; MIG-capable: all of them with `mig`, or the first `mig_capable`."""
    tag = prefix or uuid.uuid4().hex[:8]
    return [
        {
            "index": i,
            "uuid": f"GPU-{tag}-{i:04d}",
            "name": "NVIDIA A100-SXM4-80GB",
            "memory_mb": 81920,
            "mig_capable": mig if mig_capable is None else i < mig_capable,
            "mig_enabled": False,
        }
        for i in range(n)
    ]


async def publish(nc: NATS, event_type: str, data: BaseModel, occurred_at: datetime | None = None) -> Event:
    """What a service's outbox relay does: the envelope on the stream, deduplicated by its id."""
    return await relay_publish(nc, new_event(event_type, data, occurred_at=occurred_at))


@dataclass
class Cluster:
    """Scheduler replicas and identity, and what a test needs to drive them."""

    nc: NATS
    rpc: RpcClient
    identity: Runtime
    replicas: list[Runtime]
    engine: AsyncEngine
    keys_dir: Path
    netbird: FakeNetBird
    _made: list[Any] = field(default_factory=list)

    async def call(self, operation: str, payload: dict[str, Any] | None = None) -> Any:
        return await self.rpc.call("scheduler", operation, payload or {})

    async def error(self, operation: str, payload: dict[str, Any]) -> RemoteError:
        with pytest.raises(RemoteError) as caught:
            await self.call(operation, payload)
        return caught.value

    async def node(
        self,
        n_gpus: int = 4,
        *,
        status: str = "online",
        mig: bool = False,
        mig_capable: int | None = None,
        cpu_cores: int = 64,
        ram_mb: int = 512_000,
        hostname: str | None = None,
    ) -> uuid.UUID:
        """A node as inventory announces it: created, its hardware, online; seen by the projection."""
        node_id = uuid.uuid4()
        host = hostname or f"gpu-{node_id.hex[:8]}"
        now = datetime.now(UTC)
        await publish(
            self.nc,
            inv.NODE_CREATED,
            inv.NodeCreatedEvent(node_id=node_id, hostname=host, type="linux", management_ip="10.9.0.5"),
        )
        hardware = {
            "cpu_model": "EPYC",
            "cpu_cores": cpu_cores,
            "ram_mb": ram_mb,
            "gpus": gpus(n_gpus, mig=mig, mig_capable=mig_capable),
        }
        await publish(
            self.nc,
            inv.NODE_HARDWARE_CHANGED,
            inv.NodeHardwareChangedEvent(node_id=node_id, hostname=host, hardware=hardware),
        )
        if status == "online":
            await publish(
                self.nc,
                inv.NODE_ONLINE,
                inv.NodeOnlineEvent(node_id=node_id, hostname=host, previous_status="pending", at=now),
            )
        await wait_until(lambda: self._projected(node_id, status), timeout_s=15)
        return node_id

    async def _projected(self, node_id: uuid.UUID, status: str) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT status, hardware, management_ip FROM scheduler.nodes WHERE id = :id"), {"id": node_id}
                )
            ).first()
        return row is not None and row.status == status and row.hardware is not None and row.management_ip is not None

    async def environment(self, nodes: list[uuid.UUID] = (), **fields: Any) -> dict[str, Any]:  # type: ignore[assignment]
        body = {"name": f"env-{uuid.uuid4().hex[:8]}", "enforcement_mode": "soft", "tunnel_provider": "ssh_proxy_jump"}
        body.update(fields)
        env: dict[str, Any] = await self.call("environments.create", body)
        for node_id in nodes:
            env = await self.call("environments.attach_node", {"id": env["id"], "node_id": str(node_id)})
        return env

    async def user(self, *, with_key: bool = True, email: str | None = None) -> uuid.UUID:
        """An active user (made as identity's bootstrap makes one), with an SSH key made by ssh-keygen."""
        settings = self.identity.settings
        assert isinstance(settings, IdentitySettings)
        assert self.identity.sessions is not None
        address = email or f"ada.{uuid.uuid4().hex[:8]}@example.org"
        passwords = Passwords(settings.argon2_memory_kib, settings.argon2_time_cost)
        await ensure_admin(self.identity.sessions, passwords, address, PASSWORD, only_if_none=False)
        found = await self.rpc.call("identity", "users.list", {"limit": 500, "role": "admin"})
        user_id = next(uuid.UUID(u["id"]) for u in found["items"] if u["email"] == address)
        if with_key:
            await self.rpc.call(
                "identity", "ssh_keys.add", {"user_id": str(user_id), "public_key": self.ssh_key(address)}
            )
        return user_id

    def ssh_key(self, comment: str) -> str:
        path = self.keys_dir / f"id_{uuid.uuid4().hex[:8]}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
        return path.with_suffix(".pub").read_text().strip()

    async def assign(self, user_id: uuid.UUID, env: dict[str, Any], n: int = 1, **fields: Any) -> dict[str, Any]:
        body = {"user_id": str(user_id), "environment_id": env["id"], "gpus": n, "placement": "dynamic", **fields}
        made: dict[str, Any] = await self.call("assignments.create", body)
        return made

    async def held(self) -> list[tuple[str, str]]:
        """Every (node, GPU) held by an active assignment, straight from the database."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT node_id::text, gpu_uuid FROM scheduler.assignment_gpus WHERE active")
            )
        return [(r[0], r[1]) for r in rows]


StartScheduler = Callable[..., Awaitable[Runtime]]


@pytest.fixture(scope="session")
async def lab_netbird() -> AsyncIterator[FakeNetBird]:
    fake = FakeNetBird(tokens={NETBIRD_TOKEN}, groups={NETBIRD_LAB_GROUP: "gpulab-users", NETBIRD_ALL_GROUP: "All"})
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def scheduler_settings(stack: Stack, **extra: Any) -> SchedulerSettings:
    values: dict[str, Any] = {
        "database_url": stack.service_database_url("scheduler"),
        "nats_url": stack.nats_url,
        "metrics_port": 0,
        "ssh_jump_host": JUMP_HOST,
        "expiry_sweep_s": 0.3,
        **extra,
    }
    return SchedulerSettings.model_validate(values)


@pytest.fixture(scope="session")
async def cluster(
    migrated: Stack, tmp_path_factory: pytest.TempPathFactory, lab_netbird: FakeNetBird
) -> AsyncIterator[Cluster]:
    identity = Runtime(
        identity_main.spec,
        IdentitySettings.model_validate(
            {
                "database_url": migrated.service_database_url("identity"),
                "nats_url": migrated.nats_url,
                "metrics_port": 0,
            }
        ),
    )
    await identity.start()
    netbird = {
        "netbird_api_url": lab_netbird.url,
        "netbird_api_token": NETBIRD_TOKEN,
        "netbird_auto_groups": NETBIRD_LAB_GROUP,
    }
    replicas = [Runtime(scheduler_main.spec, scheduler_settings(migrated, **netbird)) for _ in range(2)]
    for replica in replicas:
        await replica.start()
    engine = create_engine(migrated.database_url, schema=None, app_name="scheduler-tests")
    try:
        yield Cluster(
            replicas[0].nc,
            RpcClient(replicas[0].nc, timeout_s=30),
            identity,
            replicas,
            engine,
            tmp_path_factory.mktemp("keys"),
            lab_netbird,
        )
    finally:
        await engine.dispose()
        for replica in replicas:
            await replica.stop()
        await identity.stop()
