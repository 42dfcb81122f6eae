"""The authorization matrix: every route of the gateway's OpenAPI document × {anonymous, user, admin,
user without the CSRF header} gets exactly the status the document's security says, and a refusal
changes nothing in any service's database.

The routes and the expected statuses come from the document (`app.openapi()`, built without any
service, as services/gateway/tests/test_openapi.py builds it); the requests go to the real services
as their own processes (identity, pki, inventory, scheduler, notify and the gateway, with a mail
catcher for the invite emails) and a real agent whose node is online with eight GPUs, so that every
allowed request finds what it names and gets the route's success status.

The order in which the gateway refuses (FastAPI resolves a route's dependencies before it validates
its parameters and body): a body over the size limit (413), a body that is not JSON at all (422
`malformed_json`, parsed before anything else), then no session (401 `unauthenticated`), no or a
wrong CSRF header on POST/PATCH/PUT/DELETE (403 `csrf_failed`), not an admin on an admin route (403
`forbidden`), and only then the path, query and body (422 `invalid_request`) and the services.
`test_the_session_and_the_role_are_checked_before_the_body` holds that order. The requests here
still carry valid bodies (checked against the document's schemas), so that an allowed request
succeeds and a refused one is refused for who sent it, not for what it sent.
"""

from __future__ import annotations

import asyncio
import enum
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import nats
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core import db
from gpulab_core.events import STREAM
from gpulab_core.rpc import RpcClient
from gpulab_devstack import mailsink
from gpulab_devstack.servers import free_port, wait_for_port
from gpulab_devstack.testing import BACKEND, Launcher, Stack, wait_until
from gpulab_gateway.app import create_app
from gpulab_gateway.config import Settings as GatewaySettings

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

pytestmark = pytest.mark.slow

# The document needs no running service: an unconnected NATS client is enough to build the app.
DOC: dict[str, Any] = create_app(GatewaySettings(), RpcClient(NATS())).openapi()
ROUTES = [(method.upper(), path) for path, item in DOC["paths"].items() for method in item]

# What the document says must agree with what we mean: the routes anyone may call, and the admin
# areas. A route that forgot both its admin check and its `forbidden` description would otherwise
# be expected to let a user in, and the matrix would agree with the mistake.
PUBLIC = {
    ("GET", f"{API}/healthz"),
    ("POST", f"{API}/auth/login"),
    ("GET", f"{API}/auth/invites/{{token}}"),
    ("POST", f"{API}/auth/invites/{{token}}/accept"),
    ("GET", f"{API}/enrollment/ca"),
}
ADMIN_AREAS = ("/users", "/nodes", "/environments", "/assignments", "/audit-log")
# The agent's heartbeat here, and how long the databases must stay unchanged to count as settled:
# an agent's report of an earlier change arrives within one heartbeat.
HEARTBEAT_INTERVAL_S = 1
QUIET_S = 2.5 * HEARTBEAT_INTERVAL_S
SETTLE_TIMEOUT_S = 60


class Column(enum.Enum):
    ANONYMOUS = "anonymous"
    USER = "user"
    ADMIN = "admin"
    USER_WITHOUT_CSRF = "user without the CSRF header"


@dataclass(frozen=True)
class Expected:
    status: int
    code: str | None = None  # the problem's `code` on a refusal

    @property
    def refused(self) -> bool:
        return self.status >= 400


def operation(method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = DOC["paths"][path][method.lower()]
    return op


def success_status(method: str, path: str) -> int:
    (status,) = (s for s in operation(method, path)["responses"] if s.startswith("2"))
    return int(status)


def is_admin_route(method: str, path: str) -> bool:
    forbidden = operation(method, path)["responses"].get("403", {}).get("description", "")
    return "`forbidden`" in forbidden


def expected(method: str, path: str, column: Column) -> Expected:
    """Every rule of the matrix, from the route's security requirement and its documented 403."""
    op = operation(method, path)
    success = Expected(success_status(method, path))
    security = op.get("security")
    if not security:
        return success  # public: open to everyone, logged in or not
    (requirement,) = security
    if column is Column.ANONYMOUS:
        # Logout documents no 401: without a session it has nothing to end, and says 204.
        return Expected(401, "unauthenticated") if "401" in op["responses"] else success
    # The CSRF check comes with the session, before the role (sessions.authenticated).
    if column is Column.USER_WITHOUT_CSRF and "csrf" in requirement:
        return Expected(403, "csrf_failed")
    if column is not Column.ADMIN and is_admin_route(method, path):
        return Expected(403, "forbidden")
    return success


# --- the running system --------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
async def world(migrated: Stack, agent_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    folder = tmp_path_factory.mktemp("matrix")
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


# --- one request per route, valid for the caller -------------------------------------------------


@dataclass
class Call:
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None


# Builds a request for `me` (the caller, or the user when the caller is anonymous). `allowed`: the
# request is expected to succeed, so what it destroys is made for it first; a refused one aims at
# the world's own resources, which must then be unchanged.
Builder = Callable[[World, Person, bool], Awaitable[Call]]


async def nothing(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call()


async def login(_w: World, me: Person, _allowed: bool) -> Call:
    return Call(body={"email": me.email, "password": PASSWORD})


async def invite_lookup(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"token": w.lookup_token})


async def invite_accept(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"token": await w.invite_token()}, {"name": "Grace", "password": PASSWORD})


async def new_invite(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"email": unique_email("invited"), "role": "user"})


async def the_user(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.user.id})


async def change_user(w: World, _me: Person, allowed: bool) -> Call:
    if not allowed:  # the user making themselves an admin
        return Call({"id": w.user.id}, {"role": "admin"})
    other = unique_email("demoted")
    await make_admin(w.stack, other)
    users = await w.call(w.admin, "GET", "/users?role=admin&limit=500")
    return Call({"id": next(u["id"] for u in users["items"] if u["email"] == other)}, {"role": "user"})


async def new_key(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"public_key": new_public_key()})


async def a_key(w: World, me: Person, allowed: bool) -> Call:
    owner = w.admin if me.email == w.admin.email else w.user
    return Call({"id": await w.add_key(owner) if allowed else me.key_id})


async def new_node(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"hostname": f"gpu-{uuid.uuid4().hex[:8]}", "type": "linux", "management_ip": "10.0.0.7"})


async def the_node(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.node_id})


async def a_node_to_spend(w: World, _me: Person, allowed: bool) -> Call:
    return Call({"id": await w.pending_node() if allowed else w.node_id})


async def new_environment(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body=environment_body())


async def the_environment(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.environment_id})


async def rename_environment(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.environment_id}, {"name": f"lab-{uuid.uuid4().hex[:8]}"})


async def an_environment_to_spend(w: World, _me: Person, allowed: bool) -> Call:
    if not allowed:
        return Call({"id": w.environment_id})
    return Call({"id": str((await w.call(w.admin, "POST", "/environments", environment_body()))["id"])})


async def attach(w: World, _me: Person, allowed: bool) -> Call:
    target = await an_environment_to_spend(w, w.admin, allowed) if allowed else Call({"id": w.spare_environment_id})
    return Call(target.params, {"node_id": w.node_id})


async def detach(w: World, _me: Person, allowed: bool) -> Call:
    env = w.environment_id
    if allowed:
        env = str((await w.call(w.admin, "POST", "/environments", environment_body()))["id"])
        await w.call(w.admin, "POST", f"/environments/{env}/nodes", {"node_id": w.node_id})
    return Call({"id": env, "node_id": w.node_id})


async def new_assignment(w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"user_id": w.user.id, "environment_id": w.environment_id, "gpus": 1, "placement": "dynamic"})


async def the_assignment(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.user.assignment_id})


async def an_assignment_to_spend(w: World, _me: Person, allowed: bool) -> Call:
    return Call({"id": await w.assignment_for(w.user) if allowed else w.user.assignment_id})


async def my_assignment(_w: World, me: Person, _allowed: bool) -> Call:
    return Call({"id": me.assignment_id})


BUILDERS: dict[tuple[str, str], Builder] = {
    ("GET", "/healthz"): nothing,
    ("POST", "/auth/login"): login,
    ("POST", "/auth/logout"): nothing,
    ("GET", "/auth/me"): nothing,
    ("GET", "/auth/invites/{token}"): invite_lookup,
    ("POST", "/auth/invites/{token}/accept"): invite_accept,
    ("POST", "/users/invites"): new_invite,
    ("GET", "/users"): nothing,
    ("GET", "/users/{id}"): the_user,
    ("PATCH", "/users/{id}"): change_user,
    ("GET", "/me/ssh-keys"): nothing,
    ("POST", "/me/ssh-keys"): new_key,
    ("DELETE", "/me/ssh-keys/{id}"): a_key,
    ("POST", "/nodes"): new_node,
    ("GET", "/nodes"): nothing,
    ("GET", "/nodes/{id}"): the_node,
    ("DELETE", "/nodes/{id}"): a_node_to_spend,
    ("POST", "/nodes/{id}/enrollment-tokens"): a_node_to_spend,
    ("GET", "/enrollment/ca"): nothing,
    ("POST", "/environments"): new_environment,
    ("GET", "/environments"): nothing,
    ("GET", "/environments/{id}"): the_environment,
    ("PATCH", "/environments/{id}"): rename_environment,
    ("DELETE", "/environments/{id}"): an_environment_to_spend,
    ("POST", "/environments/{id}/nodes"): attach,
    ("DELETE", "/environments/{id}/nodes/{node_id}"): detach,
    ("POST", "/assignments"): new_assignment,
    ("GET", "/assignments"): nothing,
    ("GET", "/assignments/{id}"): the_assignment,
    ("POST", "/assignments/{id}/revoke"): an_assignment_to_spend,
    ("GET", "/me/assignments"): nothing,
    ("GET", "/me/assignments/{id}/access"): my_assignment,
    ("GET", "/audit-log"): nothing,
    ("GET", "/audit-log/verify"): nothing,
}
# Routes whose call ends or replaces the caller's session: each gets a session of its own.
SESSION_ENDING = {("POST", "/auth/login"), ("POST", "/auth/logout")}


def check_body(method: str, path: str, body: Any) -> None:
    """The body is what the document asks for: a refusal is about the caller, not the request."""
    content = operation(method, path).get("requestBody", {}).get("content", {})
    if not content:
        assert body is None, f"{method} {path} takes no body"
        return
    # jsonschema_rs: the validator schemathesis (a dev dependency) brings; FastAPI writes JSON Schema 2020-12.
    schema = {**content["application/json"]["schema"], "components": DOC["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(body)


@dataclass
class Cell:
    """One request of the matrix, ready to go: who sends it (a browser and its headers) and what."""

    column: Column
    want: Expected
    client: httpx.AsyncClient
    headers: dict[str, str]
    call: Call


async def prepare(w: World, method: str, path: str, column: Column, allowed: bool) -> Cell:
    """Everything a request needs, made before it is sent (and before a snapshot is taken)."""
    me = w.admin if column is Column.ADMIN else w.user
    route = (method, path.removeprefix(API))
    call = await BUILDERS[route](w, me, allowed)
    check_body(method, path, call.body)
    headers: dict[str, str] = {}
    if column is Column.ANONYMOUS:
        client = w.client()
    else:
        session = await w.session_of(me) if route in SESSION_ENDING else me
        assert session.client is not None
        client = session.client
        if column is not Column.USER_WITHOUT_CSRF:
            headers["X-CSRF-Token"] = session.csrf
    return Cell(column, expected(method, path, column), client, headers, call)


async def send(method: str, path: str, cell: Cell) -> httpx.Response:
    url = path.format(**cell.call.params)
    return await cell.client.request(method, url, json=cell.call.body, headers=cell.headers)


# --- what "nothing changed" means ----------------------------------------------------------------

# Written by the services on their own, whatever anyone asks: the agent's heartbeats (every second
# here) and a session's last use. A refusal is not asked to leave these alone.
VOLATILE_COLUMNS = {
    ("inventory", "nodes", "last_seen_at"),
    ("identity", "sessions", "last_seen_at"),
}
# The audit log is the one place a refusal may leave a trace (refused CSRF and 403 attempts are
# audited, issue 12 finding 8).
IGNORED_TABLES = {("identity", "audit_log")}
SCHEMAS = ("identity", "pki", "inventory", "scheduler", "notify")

Snapshot = dict[str, list[str]]


async def snapshot(engine: AsyncEngine) -> Snapshot:
    """Every row of every table of every service, as text, less what changes on its own."""
    taken: Snapshot = {}
    async with engine.connect() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema = ANY(:schemas) AND table_type = 'BASE TABLE' ORDER BY 1, 2"
                ),
                {"schemas": list(SCHEMAS)},
            )
        ).all()
        for schema, table in tables:
            if (schema, table) in IGNORED_TABLES:
                continue
            result = await conn.execute(text(f'SELECT * FROM "{schema}"."{table}"'))
            keep = [i for i, c in enumerate(result.keys()) if (schema, table, c) not in VOLATILE_COLUMNS]
            taken[f"{schema}.{table}"] = sorted(repr([row[i] for i in keep]) for row in result.all())
    return taken


async def events_in_flight(js: JetStreamContext) -> int:
    """Events the services' consumers have not yet handled (waiting, or delivered and not acked)."""
    consumers = await js.consumers_info(STREAM)
    return sum((c.num_pending or 0) + (c.num_ack_pending or 0) for c in consumers if c.name.startswith(BACKEND))


async def settled(engine: AsyncEngine, js: JetStreamContext) -> Snapshot:
    """A snapshot once everything earlier requests set going has finished: no event waits in an
    outbox or for a consumer, and nothing changed for QUIET_S (the agent reported what it applied)."""
    previous = await snapshot(engine)
    quiet_since = time.monotonic()
    deadline = quiet_since + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(QUIET_S / 5)
        current = await snapshot(engine)
        outboxes = sum(len(rows) for table, rows in current.items() if table.endswith(".outbox"))
        if current != previous or outboxes or await events_in_flight(js):
            previous, quiet_since = current, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return current
    raise AssertionError(f"the databases never stayed unchanged for {QUIET_S}s")


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    return [
        f"{table}: -{sorted(set(before.get(table, [])) - set(after.get(table, [])))} "
        f"+{sorted(set(after.get(table, [])) - set(before.get(table, [])))}"
        for table in sorted(set(before) | set(after))
        if before.get(table) != after.get(table)
    ]


@pytest.fixture(scope="module")
async def engine(migrated: Stack) -> AsyncIterator[AsyncEngine]:
    made = db.create_engine(migrated.database_url, schema=None, app_name="matrix")
    yield made
    await made.dispose()


# --- the tests -----------------------------------------------------------------------------------


def test_the_documents_public_and_admin_routes_are_the_ones_we_mean() -> None:
    public = {(m, p) for m, p in ROUTES if not operation(m, p).get("security")}
    assert public == PUBLIC
    for method, path in ROUTES:
        in_admin_area = path.removeprefix(API).startswith(ADMIN_AREAS)
        assert is_admin_route(method, path) == in_admin_area, f"{method} {path}"


def test_every_route_of_the_document_has_a_request() -> None:
    assert {(m, p.removeprefix(API)) for m, p in ROUTES} == set(BUILDERS)


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p.removeprefix(API)}" for m, p in ROUTES])
async def test_each_caller_gets_exactly_the_expected_status_and_a_refusal_changes_nothing(
    world: World, engine: AsyncEngine, method: str, path: str
) -> None:
    wants = {column: expected(method, path, column) for column in Column}
    refused = [await prepare(world, method, path, c, allowed=False) for c, want in wants.items() if want.refused]
    if refused:
        before = await settled(engine, world.js)
        for cell in refused:
            reply = await send(method, path, cell)
            got = (reply.status_code, reply.json().get("code"))
            assert got == (cell.want.status, cell.want.code), f"{cell.column.value}: {reply.text}"
        after = await settled(engine, world.js)
        assert before == after, "a refused request changed: " + "; ".join(differences(before, after))
    for column, want in wants.items():
        if want.refused:
            continue
        cell = await prepare(world, method, path, column, allowed=True)
        reply = await send(method, path, cell)
        assert reply.status_code == want.status, f"{column.value}: {reply.status_code} {reply.text}"


async def test_the_session_and_the_role_are_checked_before_the_body(world: World) -> None:
    invalid = {"email": "not an email", "role": "emperor", "extra": True}
    async with world.gateway.client() as anonymous:
        unauthenticated = await anonymous.post(f"{API}/users/invites", json=invalid)
        not_json = await anonymous.post(
            f"{API}/users/invites", content=b'{"email": ', headers={"content-type": "application/json"}
        )
        bad_id = await anonymous.get(f"{API}/users/not-a-uuid")
    assert world.user.client is not None
    no_csrf = await world.user.client.post(f"{API}/users/invites", json=invalid)
    forbidden = await world.user.client.post(
        f"{API}/users/invites", json=invalid, headers={"X-CSRF-Token": world.user.csrf}
    )
    invalid_for_admin = await world.call_raw(world.admin, "POST", "/users/invites", invalid)
    assert [r.json()["code"] for r in (unauthenticated, bad_id, no_csrf, forbidden, invalid_for_admin)] == [
        "unauthenticated",
        "unauthenticated",
        "csrf_failed",
        "forbidden",
        "invalid_request",
    ]
    # A body that is not JSON at all is refused first, whoever sends it (it changes nothing either).
    assert (not_json.status_code, not_json.json()["code"]) == (422, "malformed_json")


def test_the_key_maker_makes_keys_ssh_keygen_reads(tmp_path: Path) -> None:
    key = tmp_path / "key.pub"
    key.write_text(new_public_key() + "\n")
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], capture_output=True, text=True, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "ED25519" in listed.stdout
