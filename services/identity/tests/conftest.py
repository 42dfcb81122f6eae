"""identity running for real (in this process) on the session's PostgreSQL and NATS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from gpulab_core.rpc import RpcClient
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import Stack
from gpulab_identity.config import Settings
from gpulab_identity.main import spec

from .ssh_key_support import Keys, make_keys

ADMIN_PASSWORD = "correct horse battery staple"


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.org"


@dataclass
class Identity:
    runtime: Runtime
    rpc: RpcClient
    admin_id: uuid.UUID
    admin_email: str

    async def call(self, operation: str, payload: dict[str, Any] | None = None) -> Any:
        return await self.rpc.call("identity", operation, payload or {})


@pytest.fixture(scope="session")
async def identity(migrated: Stack) -> AsyncIterator[Identity]:
    email = unique_email("admin")
    settings = Settings(
        database_url=migrated.service_database_url("identity"),
        nats_url=migrated.nats_url,
        metrics_port=0,
        bootstrap_admin_email=email,
        bootstrap_admin_password=ADMIN_PASSWORD,
        login_max_failures_per_account=5,
        login_max_failures_per_ip=10_000,
    )
    runtime = Runtime(spec, settings)
    await runtime.start()
    rpc = RpcClient(runtime.nc, timeout_s=30)
    try:
        login = await rpc.call("identity", "auth.login", {"email": email, "password": ADMIN_PASSWORD})
        yield Identity(runtime, rpc, uuid.UUID(login["user"]["id"]), email)
    finally:
        await runtime.stop()


@pytest.fixture
async def rpc_nc(identity: Identity) -> NATS:
    return identity.runtime.nc


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Real keys of every kind the SSH key tests need, made once per module by ssh-keygen."""
    return make_keys(tmp_path_factory)
