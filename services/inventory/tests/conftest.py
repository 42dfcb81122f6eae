"""inventory and pki run for real in this process, on the session's PostgreSQL and NATS; the tests
speak to them the way an agent does: gRPC over real TLS (Enroll) and mutual TLS (Heartbeat)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gpulab.agent.v1 import enrollment_pb2, enrollment_pb2_grpc, hardware_pb2, heartbeat_pb2, heartbeat_pb2_grpc
from nats.js.api import DeliverPolicy
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.db import create_engine
from gpulab_core.errors import RemoteError
from gpulab_core.events import EVENT_SUBJECT_PREFIX, STREAM
from gpulab_core.rpc import RpcClient
from gpulab_core.runtime import Runtime
from gpulab_devstack.servers import free_port
from gpulab_devstack.testing import TEST_CA_PASSPHRASE, Stack
from gpulab_inventory.config import Settings as InventorySettings
from gpulab_inventory.heartbeat.directory import Directory
from gpulab_inventory.heartbeat.server import HeartbeatServer
from gpulab_inventory.main import spec as inventory_spec
from gpulab_pki.config import Settings as PkiSettings
from gpulab_pki.context import Pki
from gpulab_pki.main import spec as pki_spec

PUBLIC_URL = "https://gpulab.example.org"
INTERVAL_S = 1  # heartbeats: offline after 3 s of silence in these tests


@dataclass
class ControlPlane:
    pki: Runtime
    inventory: Runtime
    rpc: RpcClient
    enroll_port: int

    @property
    def heartbeat_port(self) -> int:
        server = self.inventory.parts["heartbeat"]
        assert isinstance(server, HeartbeatServer)
        return server.port

    @property
    def directory(self) -> Directory[Any]:
        directory = self.inventory.parts["directory"]
        assert isinstance(directory, Directory)
        return directory

    @property
    def authority(self) -> Any:
        pki = self.pki.parts["pki"]
        assert isinstance(pki, Pki)
        return pki.authority

    async def call(self, operation: str, payload: dict[str, Any] | None = None, service: str = "inventory") -> Any:
        return await self.rpc.call(service, operation, payload or {})

    async def add_node(self, hostname: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"hostname": hostname or f"gpu-{uuid.uuid4().hex[:10]}", "type": "linux", "management_ip": "10.0.0.7"}
        body.update(fields)
        created: dict[str, Any] = await self.call("nodes.create", body)
        return created

    async def error(self, operation: str, payload: dict[str, Any]) -> RemoteError:
        with pytest.raises(RemoteError) as caught:
            await self.call(operation, payload)
        return caught.value

    def agent(self, ca_pem: bytes | None = None) -> Agent:
        return Agent(self, ca_pem or self.authority.cert_pem)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def csr_pem(key: ec.EllipticCurvePrivateKey, common_name: str = "not-the-node-id") -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA384())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def hardware(gpus: int = 2, cpu_cores: int = 64, **overrides: Any) -> hardware_pb2.Hardware:
    message = hardware_pb2.Hardware(
        cpu_model="AMD EPYC 7763 64-Core Processor",
        cpu_cores=cpu_cores,
        ram_mb=515_000,
        gpus=[
            hardware_pb2.Gpu(
                index=i,
                uuid=f"GPU-{i:08d}-aaaa-bbbb-cccc-0123456789ab",
                name="NVIDIA A100-SXM4-80GB",
                memory_mb=81920,
                mig_capable=True,
                mig_enabled=False,
            )
            for i in range(gpus)
        ],
    )
    for name, value in overrides.items():
        setattr(message, name, value)
    return message


@dataclass
class Agent:
    """What the Go agent does, written for the tests: a P-384 key, Enroll with the token over TLS
    that pins the CA, then Heartbeat over mutual TLS with the certificate it got."""

    plane: ControlPlane
    ca_pem: bytes
    key: ec.EllipticCurvePrivateKey = field(default_factory=new_key)
    cert_pem: bytes | None = None
    node_id: str | None = None
    _channels: list[grpc.aio.Channel] = field(default_factory=list)

    async def enroll(self, token: str) -> enrollment_pb2.EnrollResponse:
        creds = grpc.ssl_channel_credentials(self.ca_pem)
        channel = grpc.aio.secure_channel(f"127.0.0.1:{self.plane.enroll_port}", creds)
        self._channels.append(channel)
        reply: enrollment_pb2.EnrollResponse = await enrollment_pb2_grpc.EnrollmentStub(channel).Enroll(
            enrollment_pb2.EnrollRequest(token=token, csr_pem=csr_pem(self.key)), timeout=20
        )
        self.cert_pem = reply.certificate_pem.encode()
        self.node_id = reply.node_id
        return reply

    def heartbeat_channel(
        self, key: bytes | None = None, cert: bytes | None = None, port: int | None = None
    ) -> grpc.aio.Channel:
        """To the plane's heartbeat port, or to `port` (another inventory replica's)."""
        if key is None and cert is None and self.cert_pem is not None:
            key, cert = key_pem(self.key), self.cert_pem
        creds = grpc.ssl_channel_credentials(self.plane.authority.cert_pem, key, cert)
        channel = grpc.aio.secure_channel(f"127.0.0.1:{port or self.plane.heartbeat_port}", creds)
        self._channels.append(channel)
        return channel

    async def heartbeat(
        self,
        hw: hardware_pb2.Hardware | None = None,
        version: str = "1.0.0",
        channel: grpc.aio.Channel | None = None,
        applied: heartbeat_pb2.AppliedState | None = None,
    ) -> heartbeat_pb2.HeartbeatResponse:
        stub = heartbeat_pb2_grpc.HeartbeatStub(channel or self.heartbeat_channel())
        request = heartbeat_pb2.HeartbeatRequest(
            agent_version=version, hardware=hw if hw is not None else hardware(), applied_state=applied
        )
        reply: heartbeat_pb2.HeartbeatResponse = await stub.Heartbeat(request, timeout=20)
        return reply

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(None)
        self._channels.clear()


class CountingSessions:
    """A session factory that counts the sessions (database round trips) the Directory opens."""

    def __init__(self, plane: ControlPlane) -> None:
        assert plane.inventory.sessions is not None
        self._sessions = plane.inventory.sessions
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self._sessions()


def _common(stack: Stack, data: Path) -> dict[str, Any]:
    return {
        "nats_url": stack.nats_url,
        "metrics_port": 0,
        "public_url": PUBLIC_URL,
        "data_dir": data,
    }


async def start_inventory(stack: Stack, data: Path, **settings: Any) -> Runtime:
    """An inventory replica, listening for heartbeats once this returns; the caller stops it."""
    values: dict[str, Any] = {"heartbeat_port": 0, "heartbeat_interval_s": INTERVAL_S, "node_cache_s": 0.5}
    inventory = Runtime(
        inventory_spec,
        InventorySettings(
            **_common(stack, data), database_url=stack.service_database_url("inventory"), **(values | settings)
        ),
    )
    await inventory.start()
    try:
        server = inventory.parts["heartbeat"]
        assert isinstance(server, HeartbeatServer)
        await asyncio.wait_for(server.started.wait(), 30)
    except BaseException:
        await inventory.stop()
        raise
    return inventory


async def _start(stack: Stack, data: Path) -> ControlPlane:
    enroll_port = free_port()
    pki = Runtime(
        pki_spec,
        PkiSettings(
            **_common(stack, data),
            database_url=stack.service_database_url("pki"),
            ca_passphrase=TEST_CA_PASSPHRASE,
            enroll_port=enroll_port,
        ),
    )
    await pki.start()
    inventory = await start_inventory(stack, data)
    return ControlPlane(pki, inventory, RpcClient(inventory.nc, timeout_s=20), enroll_port)


@pytest.fixture(scope="session")
async def plane(migrated: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    control = await _start(migrated, tmp_path_factory.mktemp("plane"))
    try:
        yield control
    finally:
        await control.inventory.stop()
        await control.pki.stop()


@pytest.fixture
async def agents() -> AsyncIterator[list[Agent]]:
    """Agents made by a test, closed after it."""
    made: list[Agent] = []
    yield made
    for agent in made:
        await agent.close()


@pytest.fixture
async def db(migrated: Stack) -> AsyncIterator[AsyncEngine]:
    """The superuser's view, to look at rows."""
    engine = create_engine(migrated.database_url, schema=None, app_name="inventory-tests")
    yield engine
    await engine.dispose()


async def enrolled(plane: ControlPlane, agents: list[Agent]) -> Agent:
    """A new node with an agent that has enrolled (it has not heartbeat yet)."""
    created = await plane.add_node()
    agent = plane.agent()
    agents.append(agent)
    await agent.enroll(created["enrollment"]["token"])
    return agent


async def events_of(plane: ControlPlane, node_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event in the stream about one node, oldest first: (type, data)."""
    js = plane.inventory.js
    last = (await js.stream_info(STREAM)).state.last_seq
    if not last:
        return []
    sub = await js.subscribe(f"{EVENT_SUBJECT_PREFIX}.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    found: list[tuple[str, dict[str, Any]]] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            event = json.loads(msg.data)
            if str(event["data"].get("node_id")) == node_id:
                found.append((event["type"], event["data"]))
            if msg.metadata.sequence.stream >= last:
                return found
    finally:
        await sub.unsubscribe()
