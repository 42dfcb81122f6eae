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

import enum
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core import db
from gpulab_core.rpc import RpcClient
from gpulab_devstack.testing import Stack
from gpulab_gateway.app import create_app
from gpulab_gateway.config import Settings as GatewaySettings

from .gateway_support import API
from .matrix_requests import BUILDERS, SESSION_ENDING, Call
from .matrix_snapshot import differences, settled
from .matrix_world import World, new_public_key, running_world

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
ADMIN_AREAS = (
    "/users",
    "/nodes",
    "/environments",
    "/assignments",
    "/audit-log",
    "/usage",
    "/groups",
    "/requests",
    "/quotas",
)


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
    """The route's success status; of two (an extension: 200 applied, 202 sent to an admin), the first,
    which the matrix's requests are made to get."""
    return min(int(s) for s in operation(method, path)["responses"] if s.startswith("2"))


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
    return await cell.client.request(method, url, params=cell.call.query, json=cell.call.body, headers=cell.headers)


@pytest.fixture(scope="module")
async def world(migrated: Stack, agent_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_world(migrated, agent_binary, tmp_path_factory.mktemp("matrix")) as made:
        yield made


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
