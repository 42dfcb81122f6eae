"""The running system the authorization matrix sends its requests to (tests/test_authorization_matrix.py):
the services, a real agent, and the people and resources every route's request names."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js import JetStreamContext

from gpulab_core.rpc import RpcClient
from gpulab_devstack import mailsink
from gpulab_devstack.servers import free_port, wait_for_port
from gpulab_devstack.testing import BACKEND, Launcher, Stack, wait_until

from .agent_support import RECORDING, Agents
from .gateway_support import (
    API,
    PASSWORD,
    GatewayProcess,
    log_in,
    make_admin,
    start_gateway,
    unique_email,
    wait_healthy,
)

HEARTBEAT_INTERVAL_S = 1


@dataclass
class Person:
    email: str
    id: str = ""
    client: httpx.AsyncClient | None = None
    csrf: str = ""
    key_id: str = ""  # one SSH key of theirs
    assignment_id: str = ""  # one active assignment of theirs


@dataclass
class World:
    stack: Stack
    gateway: GatewayProcess
    js: JetStreamContext
    agents: Agents
    mails: list[str]
    admin: Person
    user: Person
    node_id: str = ""  # online, eight GPUs, in `environment_id`
    environment_id: str = ""
    spare_environment_id: str = ""  # no nodes
    lookup_token: str = ""  # a pending invite's token
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self) -> httpx.AsyncClient:
        made = self.gateway.client()
        self.clients.append(made)
        return made

    async def call_raw(self, person: Person, method: str, path: str, body: Any = None) -> httpx.Response:
        assert person.client is not None
        headers = {"X-CSRF-Token": person.csrf} if method != "GET" else {}
        return await person.client.request(method, API + path, json=body, headers=headers)

    async def call(self, person: Person, method: str, path: str, body: Any = None) -> Any:
        reply = await self.call_raw(person, method, path, body)
        assert reply.status_code < 300, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json() if reply.content else None

    async def session_of(self, person: Person) -> Person:
        """The person in a browser of their own, logged in anew."""
        client = self.client()
        return Person(person.email, person.id, client, await log_in(client, person.email))

    async def invite_token(self) -> str:
        """A pending invite, and its token as the email carries it."""
        email = unique_email("invited")
        await self.call(self.admin, "POST", "/users/invites", {"email": email, "role": "user"})
        found: list[str] = []

        def mailed() -> bool:
            lines = list(self.mails)
            for i, line in enumerate(lines):
                if line.startswith(f"mail to {email}"):
                    link = next(n for n in lines[i + 1 :] if "link: " in n)
                    match = re.search(r"/invite/([A-Za-z0-9_\-]+)", link)
                    assert match is not None, link
                    found.append(match.group(1))
                    return True
            return False

        await wait_until(mailed, timeout_s=60, interval_s=0.2)
        return found[0]

    async def pending_node(self) -> str:
        body = {"hostname": f"spare-{uuid.uuid4().hex[:8]}", "type": "linux", "management_ip": "10.0.0.8"}
        made = await self.call(self.admin, "POST", "/nodes", body)
        node_id = str(made["node"]["id"])

        async def known_to_scheduler() -> bool:  # inventory's node_created event reached it
            probe = await self.call(self.admin, "POST", "/environments", environment_body())
            attached = await self.call_raw(
                self.admin, "POST", f"/environments/{probe['id']}/nodes", {"node_id": node_id}
            )
            await self.call(self.admin, "DELETE", f"/environments/{probe['id']}")
            return attached.status_code == 204

        await wait_until(known_to_scheduler, timeout_s=30, interval_s=0.3)
        return node_id

    async def assignment_for(self, person: Person) -> str:
        body = {"user_id": person.id, "environment_id": self.environment_id, "gpus": 1, "placement": "dynamic"}
        made: list[str] = []

        async def placed() -> bool:  # the node's hardware may still be on its way to the scheduler
            reply = await self.call_raw(self.admin, "POST", "/assignments", body)
            if reply.status_code == 201:
                made.append(str(reply.json()["id"]))
            return reply.status_code == 201

        await wait_until(placed, timeout_s=30, interval_s=0.3)
        return made[0]

    async def add_key(self, person: Person) -> str:
        return str((await self.call(person, "POST", "/me/ssh-keys", {"public_key": new_public_key()}))["id"])


def new_public_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} matrix@laptop"


def environment_body() -> dict[str, Any]:
    return {"name": f"env-{uuid.uuid4().hex[:8]}", "enforcement_mode": "soft", "tunnel_provider": "ssh_proxy_jump"}


@contextlib.asynccontextmanager
async def running_world(migrated: Stack, agent_binary: Path, folder: Path) -> AsyncIterator[World]:
    """Every service as its own process, a mail catcher, and a real agent whose node is online with
    eight GPUs; an admin and a user, each with a browser session, a key and an assignment."""
    services = Launcher(migrated, folder)
    agents = Agents(agent_binary, folder / "agent", RECORDING)
    mails: list[str] = []
    smtp_port, enroll_port, heartbeat_port, http_port = free_port(), free_port(), free_port(), free_port()
    sink = mailsink.start(folder / "mail", smtp_port, mails.append)
    world: World | None = None
    nc = await nats.connect(migrated.nats_url)
    try:
        common = {
            "GPULAB_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_INTERVAL_S),
            "GPULAB_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
        }
        services.spawn("identity", **common)
        services.spawn(
            "pki",
            GPULAB_ENROLL_PORT=str(enroll_port),
            GPULAB_HEARTBEAT_ENDPOINT=f"127.0.0.1:{heartbeat_port}",
            **common,
        )
        inventory = services.spawn("inventory", GPULAB_HEARTBEAT_PORT=str(heartbeat_port), **common)
        services.spawn("scheduler", GPULAB_SSH_JUMP_HOST="bastion.example.org", **common)
        services.spawn(
            "notify",
            GPULAB_SMTP_HOST="127.0.0.1",
            GPULAB_SMTP_PORT=str(smtp_port),
            GPULAB_SMTP_SECURITY="none",
            **common,
        )
        await wait_healthy(RpcClient(nc, timeout_s=20), *BACKEND)
        assert inventory.proc is not None
        await asyncio.to_thread(wait_for_port, heartbeat_port, 30, inventory.proc)
        gateway = await start_gateway(services, http_port, **common)

        admin = Person(unique_email("admin"))
        await make_admin(migrated, admin.email)
        world = World(migrated, gateway, nc.jetstream(), agents, mails, admin, Person(""))
        world.admin = await world.session_of(admin)
        world.admin.id = str((await world.call(world.admin, "GET", "/auth/me"))["id"])

        # The user comes in the way people do: invited, the emailed link, a password.
        token = await world.invite_token()
        async with world.gateway.client() as anonymous:
            accepted = await anonymous.post(
                f"{API}/auth/invites/{token}/accept", json={"name": "Ada", "password": PASSWORD}
            )
        assert accepted.status_code == 201, accepted.text
        world.user = await world.session_of(Person(accepted.json()["email"], str(accepted.json()["id"])))
        for person in (world.user, world.admin):
            person.key_id = await world.add_key(person)

        created = await world.call(
            world.admin,
            "POST",
            "/nodes",
            {"hostname": f"gpu-{uuid.uuid4().hex[:8]}", "type": "linux", "management_ip": "10.0.0.9"},
        )
        world.node_id = str(created["node"]["id"])
        enrollment = created["enrollment"]
        enrolled = await agents.enroll(f"127.0.0.1:{enroll_port}", enrollment["ca_fingerprint"], enrollment["token"])
        assert enrolled.returncode == 0, enrolled.stderr
        agents.run()

        async def online() -> bool:
            node = await world.call(world.admin, "GET", f"/nodes/{world.node_id}")
            return bool(node["status"] == "online" and node["hardware"] is not None)

        await wait_until(online, timeout_s=60, interval_s=0.3)
        world.environment_id = str((await world.call(world.admin, "POST", "/environments", environment_body()))["id"])
        world.spare_environment_id = str(
            (await world.call(world.admin, "POST", "/environments", environment_body()))["id"]
        )
        await world.call(world.admin, "POST", f"/environments/{world.environment_id}/nodes", {"node_id": world.node_id})
        for person in (world.user, world.admin):
            person.assignment_id = await world.assignment_for(person)
        world.lookup_token = await world.invite_token()
        yield world
    finally:
        if world is not None:
            for client in world.clients:
                await client.aclose()
        agents.close()
        services.close()
        mailsink.stop(sink)
        await nc.drain()
