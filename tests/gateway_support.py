"""The gateway as its own process (uvicorn, real TCP), and what the tests that drive it share: accounts
made the operator's way, and HTTP clients that connect from a chosen loopback address, so that a
test can play a reverse proxy (a trusted peer) or a stranger (an untrusted one) on one machine."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from gpulab_core import db
from gpulab_core.errors import GpulabError
from gpulab_core.rpc import RpcClient
from gpulab_devstack.servers import free_port, wait_for_port
from gpulab_devstack.testing import TEST_AUDIT_HMAC_KEY, Launcher, Stack, wait_until
from gpulab_identity.audit import repository as audit
from gpulab_identity.bootstrap import ensure_admin
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_identity.models import SCHEMA as IDENTITY_SCHEMA
from gpulab_identity.passwords import Passwords

API = "/api/v1"
PASSWORD = "correct horse battery staple"
# Any 127.0.0.0/8 address reaches a loopback listener on Linux; these play "the reverse proxy" and
# "someone who reaches the gateway directly".
PROXY_ADDRESS = "127.0.0.2"
STRANGER_ADDRESS = "127.0.0.3"


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.org"


async def make_admin(stack: Stack, email: str, password: str = PASSWORD) -> None:
    """An active admin, made as `gpulab admin create --force` makes one (identity's own code)."""
    fields = IdentitySettings.model_fields
    passwords = Passwords(fields["argon2_memory_kib"].default, fields["argon2_time_cost"].default)
    engine = db.create_engine(stack.service_database_url("identity"), schema=IDENTITY_SCHEMA, app_name="test")
    try:
        sessions = audit.keyed(db.session_factory(engine), TEST_AUDIT_HMAC_KEY.encode())
        await ensure_admin(sessions, passwords, email, password, only_if_none=False)
    finally:
        await engine.dispose()


async def wait_healthy(rpc: RpcClient, *names: str) -> None:
    for name in names:

        async def healthy(name: str = name) -> bool:
            try:
                return bool((await rpc.call(name, "health", {}, timeout_s=1))["status"] == "ok")
            except GpulabError:  # not running yet (no responders), or not ready
                return False

        await wait_until(healthy, timeout_s=60, interval_s=0.2)


@dataclass
class GatewayProcess:
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, from_address: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
        """A browser-like client (keeps cookies) whose connections come from `from_address`."""
        transport = httpx.AsyncHTTPTransport(local_address=from_address)
        return httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=60, **kwargs)


async def start_gateway(services: Launcher, port: int | None = None, **env: str) -> GatewayProcess:
    """`python -m gpulab_gateway` on a loopback port (free, unless given), answering /readyz."""
    port = port or free_port()
    proc = services.spawn("gateway", GPULAB_HTTP_PORT=str(port), **env)
    assert proc.proc is not None
    await asyncio.to_thread(wait_for_port, port, 60, proc.proc)
    gateway = GatewayProcess(port)

    async def ready() -> bool:
        async with gateway.client() as client:
            return (await client.get("/readyz")).status_code == 200

    await wait_until(ready, timeout_s=60, interval_s=0.2)
    return gateway


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD, **kwargs: Any) -> str:
    """Logs the client in (its cookie jar keeps the session); returns the CSRF token."""
    reply = await client.post(f"{API}/auth/login", json={"email": email, "password": password}, **kwargs)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["csrf_token"])
