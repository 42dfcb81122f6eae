"""The gateway wired to the real identity service (in this process) on the session's PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from gpulab_core.rpc import RpcClient
from gpulab_core.runtime import Runtime
from gpulab_devstack.testing import Stack
from gpulab_devstack.testing import invite_token as open_invite_token
from gpulab_gateway.app import create_app
from gpulab_gateway.config import Settings
from gpulab_identity import main as identity_main
from gpulab_identity.bootstrap import ensure_admin
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_identity.passwords import Passwords

API = "/api/v1"
PASSWORD = "correct horse battery staple"
# identity refuses an account's logins after this many failures in an hour (low, to test the 429).
MAX_FAILURES_PER_ACCOUNT = 5
INVITED_SUBJECT = "gpulab.events.identity.user_invited"


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.org"


def ed25519_key(folder: Path, comment: str) -> tuple[str, str]:
    """A real key made by ssh-keygen: the public line and its fingerprint as ssh-keygen prints it."""
    path = folder / f"id_{uuid.uuid4().hex[:6]}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    public = path.with_suffix(".pub").read_text().strip()
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(path.with_suffix(".pub"))], check=True, text=True, capture_output=True
    ).stdout.split()
    return public, listed[1]


def identity_settings(stack: Stack, **extra: Any) -> IdentitySettings:
    values: dict[str, Any] = {
        "database_url": stack.service_database_url("identity"),
        "nats_url": stack.nats_url,
        "metrics_port": 0,
        "login_max_failures_per_account": MAX_FAILURES_PER_ACCOUNT,
        "login_max_failures_per_ip": 10_000,
        **extra,
    }
    return IdentitySettings.model_validate(values)


def gateway_settings(stack: Stack, **extra: Any) -> Settings:
    return Settings.model_validate({"nats_url": stack.nats_url, **extra})


async def make_admin(identity: Runtime, email: str, password: str = PASSWORD) -> None:
    settings = identity.settings
    assert isinstance(settings, IdentitySettings)
    assert identity.sessions is not None
    passwords = Passwords(settings.argon2_memory_kib, settings.argon2_time_cost)
    await ensure_admin(identity.sessions, passwords, email, password, only_if_none=False)


@pytest.fixture(scope="module")
async def identity(migrated: Stack) -> AsyncIterator[Runtime]:
    """The real identity service; per module, so that no other module's requests reach it."""
    runtime = Runtime(identity_main.spec, identity_settings(migrated))
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="module")
async def admin_email(identity: Runtime) -> str:
    email = unique_email("admin")
    await make_admin(identity, email)
    return email


@dataclass
class Gateway:
    """One gateway replica (its own session cache) and a way to open browsers on it."""

    app: FastAPI
    base_url: str = "http://gw"

    def browser(self) -> httpx.AsyncClient:
        """A client that keeps cookies like a browser (Secure ones only over https)."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=self.base_url)


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def make_gateway(stack: Stack, nc: NATS, identity: Runtime) -> GatewayFactory:  # noqa: ARG001 - identity runs
    def build(*, base_url: str = "http://gw", **settings: Any) -> Gateway:
        return Gateway(create_app(gateway_settings(stack, **settings), RpcClient(nc)), base_url)

    return build


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway()


@dataclass
class Browser:
    """A logged-in browser: its cookie jar holds the session, `csrf` the token the app keeps."""

    client: httpx.AsyncClient
    csrf: str
    user: dict[str, Any]

    @property
    def user_id(self) -> str:
        return str(self.user["id"])

    def write_headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(API + path, headers=self.write_headers(), **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.put(API + path, headers=self.write_headers(), **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.patch(API + path, headers=self.write_headers(), **kwargs)

    async def delete(self, path: str) -> httpx.Response:
        return await self.client.delete(API + path, headers=self.write_headers())

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(API + path, **kwargs)


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Browser:
    reply = await client.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return Browser(client, body["csrf_token"], body["user"])


@pytest.fixture
async def admin(gateway: Gateway, admin_email: str) -> AsyncIterator[Browser]:
    async with gateway.browser() as client:
        yield await log_in(client, admin_email)


async def invite_token(nc: NATS, admin: Browser, email: str, role: str = "user") -> tuple[dict[str, Any], str]:
    """Invite through the API; the token is read from the event notify would mail it from."""
    tokens: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def seen(msg: Any) -> None:
        await tokens.put(json.loads(msg.data)["data"])

    sub = await nc.subscribe(INVITED_SUBJECT, cb=seen)
    try:
        created = await admin.post("/users/invites", json={"email": email, "role": role})
        assert created.status_code == 201, created.text
        while True:
            data = await asyncio.wait_for(tokens.get(), timeout=10)
            if data["email"] == email:
                return created.json(), open_invite_token(data)
    finally:
        await sub.unsubscribe()


UserFactory = Callable[..., Awaitable[Browser]]


@pytest.fixture
async def new_user(nc: NATS, gateway: Gateway, admin: Browser) -> AsyncIterator[UserFactory]:
    """Makes active users through the real invite flow and logs each in, in a browser of its own."""
    clients: list[httpx.AsyncClient] = []

    async def make(role: str = "user", on: Gateway | None = None) -> Browser:
        email = unique_email(role)
        _, token = await invite_token(nc, admin, email, role)
        async with gateway.browser() as anonymous:
            accepted = await anonymous.post(
                f"{API}/auth/invites/{token}/accept", json={"name": "Ada Lovelace", "password": PASSWORD}
            )
        assert accepted.status_code == 201, accepted.text
        client = (on or gateway).browser()
        clients.append(client)
        return await log_in(client, email)

    yield make
    for client in clients:
        await client.aclose()
