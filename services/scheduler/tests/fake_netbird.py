"""A FAKE of NetBird's documented management REST API, for the calls gpulab makes, served by a real
uvicorn. It is not NetBird: it follows NetBird's API documentation (docs.netbird.io/api: setup keys,
peers, groups) and how its management server answers (its HTTP auth middleware, the handlers and
`util.WriteError`, as of the `shared/management/http/api/openapi.yml` era):
- `Authorization: Token <PAT>` (or `Bearer nbp_...`, which NetBird treats as a token); a bad token is 401
  `token invalid`, no usable scheme is 401 `no valid authentication provided`.
- `POST /api/setup-keys`: a body that is not a JSON object of the right field types is 400
  `couldn't parse JSON request`; an empty name, an unknown type, a negative `expires_in`, an unknown or
  the `All` group are 422 with NetBird's (lower-cased) words; success is 200 with `SetupKeyClear`:
  the plain key (an upper-case UUID), `expires` in Go's RFC 3339 with nanoseconds, `usage_limit` forced
  to 1 for a one-off key, `expires_in` 0 meaning "never" (Go's zero time).
- `GET /api/setup-keys` and `GET /api/setup-keys/{id}`: `SetupKey`s, their secret masked, with `state`
  computed as NetBird does (`expired` once `expires` has passed, then `revoked`, then `overused` once
  `used_times` reached `usage_limit`, else `valid`); 404 when unknown. `DELETE /api/setup-keys/{id}`:
  `{}`, 404 when unknown.
- `GET /api/peers`: every `Peer`, with its `groups` (`GroupMinimum`s). `DELETE /api/peers/{id}`: `{}`,
  404 `peer not found`.
- `GET /api/groups`, `POST /api/groups` (`{name, peers}`; an empty name 422, a taken name 409 as NetBird's
  `status.AlreadyExists`), `DELETE /api/groups/{id}` (`{}`; 404 unknown; `All` refused; a group a setup
  key still names refused with 400 `group has been linked to setup key: <name>`).
Every error body is `{"message": ..., "code": <HTTP status>}`.

Enrolling a machine (`netbird up --setup-key`, NetBird's gRPC login, not its REST API) is `enroll()`:
refused, as by NetBird's `AddPeer`, for an unknown, expired, revoked or used-up key; otherwise a peer
joins the key's auto groups (and `All`), and the key's `used_times` grows. `advance()` moves the fake's
clock, so a test can see a key expire.

For the tests it records every request, and can be told to answer anything (`fail_with`) or slowly
(`delay_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .netbird_wire import GO_ZERO_TIME, JSON_TYPE, REQUEST_FIELDS, decodes, fnv32a, go_time, netbird_error


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Failure:
    status: int
    body: bytes
    content_type: str


class _InLoopServer(uvicorn.Server):
    # Runs as a task of the test's loop: the test process keeps its own signal handlers.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EnrollmentRefused(Exception):
    """NetBird's management server refused to add a peer with this setup key."""


class FakeNetBird:
    def __init__(self, *, tokens: set[str], groups: dict[str, str] | None = None) -> None:
        self.tokens = tokens  # personal access tokens of an admin (or service) user
        self.groups = groups or {}  # id → name; a group named `All` is refused, as by NetBird
        self.delay_s = 0.0
        self.requests: list[Recorded] = []
        self.keys: dict[str, dict[str, Any]] = {}  # id → SetupKey, with the plain key
        self.peers: dict[str, dict[str, Any]] = {}  # id → Peer, its `groups` as group ids
        self.clock_offset_s = 0.0
        self._expires_ns: dict[str, int] = {}  # key id → when it expires (0: never)
        self.url = ""
        self._failure: _Failure | None = None
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self._release = asyncio.Event()

    def reset(self, *, tokens: set[str], groups: dict[str, str] | None = None) -> None:
        """Forget everything a previous test did, so one server can serve many tests."""
        self._release.set()
        self._release = asyncio.Event()
        self.tokens = tokens
        self.groups = groups or {}
        self.delay_s = 0.0
        self.requests.clear()
        self.keys.clear()
        self.peers.clear()
        self._expires_ns.clear()
        self.clock_offset_s = 0.0
        self._failure = None

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on: keys whose `expires` it passes are `expired` from now on."""
        self.clock_offset_s += seconds

    def now_ns(self) -> int:
        return time.time_ns() + int(self.clock_offset_s * 1_000_000_000)

    def state(self, key: dict[str, Any]) -> str:
        """NetBird's SetupKey state, in the order its handler tests them."""
        expires = self._expires_ns.get(key["id"], 0)
        if expires and expires <= self.now_ns():
            return "expired"
        if key["revoked"]:
            return "revoked"
        if key["usage_limit"] and key["used_times"] >= key["usage_limit"]:
            return "overused"
        return "valid"

    def shown(self, key: dict[str, Any]) -> dict[str, Any]:
        """A SetupKey as NetBird lists it: the secret masked, `state` and `valid` as of now."""
        state = self.state(key)
        return {**key, "key": key["key"][:5] + "****", "state": state, "valid": state == "valid"}

    def enroll(self, setup_key: str, hostname: str) -> str:
        """`netbird up --setup-key <key>` on a machine called `hostname`: the new peer's id."""
        key = next((k for k in self.keys.values() if k["key"] == setup_key), None)
        if key is None:
            raise EnrollmentRefused("couldn't add peer: setup key is invalid")
        if self.state(key) != "valid":
            raise EnrollmentRefused(f"couldn't add peer: setup key is {self.state(key)}")
        key["used_times"] += 1
        key["last_used"] = go_time(self.now_ns())
        everyone = [gid for gid, name in self.groups.items() if name == "All"]
        peer_id = uuid.uuid4().hex[:20]
        self.peers[peer_id] = {
            "id": peer_id,
            "name": hostname,
            "hostname": hostname,
            "ip": f"100.92.{len(self.peers) // 250}.{len(self.peers) % 250 + 1}",
            "connected": True,
            "last_seen": go_time(self.now_ns()),
            "os": "Linux",
            "version": "0.36.0",
            "groups": [*key["auto_groups"], *everyone],
            "ssh_enabled": False,
            "user_id": "",
            "dns_label": hostname,
            "login_expiration_enabled": False,
            "login_expired": False,
            "approval_required": False,
            "ephemeral": key["ephemeral"],
        }
        return peer_id

    def _peer_shown(self, peer: dict[str, Any]) -> dict[str, Any]:
        groups = [self._group_minimum(gid) for gid in peer["groups"] if gid in self.groups]
        return {**peer, "groups": groups}

    def _group_members(self, group_id: str) -> list[dict[str, Any]]:
        return [p for p in self.peers.values() if group_id in p["groups"]]

    def _group_minimum(self, group_id: str) -> dict[str, Any]:
        count = len(self._group_members(group_id))
        return {"id": group_id, "name": self.groups[group_id], "peers_count": count, "issued": "api"}

    def _group(self, group_id: str) -> dict[str, Any]:
        members = [{"id": p["id"], "name": p["name"]} for p in self._group_members(group_id)]
        return {**self._group_minimum(group_id), "resources_count": 0, "peers": members, "resources": []}

    def fail_with(self, status: int, body: dict[str, Any] | str | bytes, content_type: str = JSON_TYPE) -> None:
        """Answer every request from now on with this, before looking at it (a crash, a proxy's page)."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
        self._failure = _Failure(status, raw, content_type)

    def recover(self) -> None:
        """Answer normally again after `fail_with`."""
        self._failure = None

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/setup-keys", self._create, methods=["POST"]),
                Route("/api/setup-keys", self._list_keys, methods=["GET"]),
                Route("/api/setup-keys/{key_id}", self._get, methods=["GET"]),
                Route("/api/setup-keys/{key_id}", self._delete_key, methods=["DELETE"]),
                Route("/api/peers", self._list_peers, methods=["GET"]),
                Route("/api/peers/{peer_id}", self._delete_peer, methods=["DELETE"]),
                Route("/api/groups", self._list_groups, methods=["GET"]),
                Route("/api/groups", self._create_group, methods=["POST"]),
                Route("/api/groups/{group_id}", self._delete_group, methods=["DELETE"]),
            ]
        )

    async def start(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app, lifespan="off", log_config=None, access_log=False, http="h11", ws="none", server_header=False
        )
        config.timeout_graceful_shutdown = 5
        self._server = _InLoopServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if not self._server.started:
            await self.stop()
            raise RuntimeError("the fake NetBird server did not start")

    async def stop(self) -> None:
        self._release.set()  # a request held by `delay_s` answers now
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task
        if self._sock is not None:
            self._sock.close()

    async def _record(self, request: Request) -> Response | None:
        self.requests.append(Recorded(request.method, request.url.path, dict(request.headers), await request.body()))
        if self.delay_s:
            release = self._release
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), self.delay_s)
            if release.is_set():  # released by reset() or stop(): its test is over, it changes nothing now
                return netbird_error(503, "the fake was reset while this request waited")
        if self._failure is not None:
            failure = self._failure
            return Response(failure.body, status_code=failure.status, media_type=failure.content_type)
        return self._authenticate(request)

    def _authenticate(self, request: Request) -> Response | None:
        parts = request.headers.get("authorization", "").split(" ")
        scheme = parts[0].lower()
        if len(parts) >= 2 and scheme == "bearer" and parts[1].startswith("nbp_"):
            scheme = "token"
        if scheme == "bearer":  # a JWT: this fake has no identity provider to validate one
            return netbird_error(401, "token invalid")
        if scheme == "token":
            return None if len(parts) == 2 and parts[1] in self.tokens else netbird_error(401, "token invalid")
        return netbird_error(401, "no valid authentication provided")

    async def _create(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not all(decodes(body.get(k), t) for k, t in REQUEST_FIELDS.items()):
            return netbird_error(400, "couldn't parse JSON request")
        name = body.get("name") or ""
        key_type = body.get("type") or ""
        expires_in = body.get("expires_in") or 0
        groups: list[str] = body.get("auto_groups") or []
        if name == "":
            return netbird_error(422, "setup key name shouldn't be empty")
        if key_type not in ("reusable", "one-off"):
            return netbird_error(422, f"unknown setup key type {key_type}".lower())
        if expires_in < 0:
            return netbird_error(422, "expiresin can not be in the past")
        for group in groups:
            if group not in self.groups:
                return netbird_error(422, f"invalid auto groups: group not found: {group}".lower())
            if self.groups[group] == "All":
                return netbird_error(422, "invalid auto groups: can't add 'all' group to the setup key")
        plain = str(uuid.uuid4()).upper()
        now_ns = self.now_ns()
        key: dict[str, Any] = {
            "id": str(fnv32a(plain)),
            "key": plain,
            "name": name,
            "expires": go_time(now_ns + expires_in * 1_000_000_000) if expires_in else GO_ZERO_TIME,
            "type": key_type,
            "valid": True,
            "revoked": False,
            "used_times": 0,
            "last_used": GO_ZERO_TIME,
            "state": "valid",
            "auto_groups": groups,
            "updated_at": go_time(now_ns),
            "usage_limit": 1 if key_type == "one-off" else (body.get("usage_limit") or 0),
            "ephemeral": bool(body.get("ephemeral")),
            "allow_extra_dns_labels": bool(body.get("allow_extra_dns_labels")),
        }
        self.keys[key["id"]] = key
        self._expires_ns[key["id"]] = now_ns + expires_in * 1_000_000_000 if expires_in else 0
        return JSONResponse(key, media_type=JSON_TYPE)

    async def _list_keys(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        return JSONResponse([self.shown(k) for k in self.keys.values()], media_type=JSON_TYPE)

    async def _get(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        key = self.keys.get(request.path_params["key_id"])
        if key is None:
            return netbird_error(404, "setup key not found")
        return JSONResponse(self.shown(key), media_type=JSON_TYPE)

    async def _delete_key(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        if self.keys.pop(request.path_params["key_id"], None) is None:
            return netbird_error(404, "setup key not found")
        return JSONResponse({}, media_type=JSON_TYPE)

    async def _list_peers(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        return JSONResponse([self._peer_shown(p) for p in self.peers.values()], media_type=JSON_TYPE)

    async def _delete_peer(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        if self.peers.pop(request.path_params["peer_id"], None) is None:
            return netbird_error(404, "peer not found")
        return JSONResponse({}, media_type=JSON_TYPE)

    async def _list_groups(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        return JSONResponse([self._group(gid) for gid in self.groups], media_type=JSON_TYPE)

    async def _create_group(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not decodes(body.get("name"), "string"):
            return netbird_error(400, "couldn't parse JSON request")
        name = body.get("name") or ""
        if name == "":
            return netbird_error(422, "group name shouldn't be empty")
        if name in self.groups.values():
            return netbird_error(409, f"group with name {name} already exists")
        group_id = uuid.uuid4().hex[:20]
        self.groups[group_id] = name
        return JSONResponse(self._group(group_id), media_type=JSON_TYPE)

    async def _delete_group(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        group_id = request.path_params["group_id"]
        if group_id not in self.groups:
            return netbird_error(404, "group not found")
        if self.groups[group_id] == "All":
            return netbird_error(422, "deleting group all is not allowed")
        linked = next((k for k in self.keys.values() if group_id in k["auto_groups"]), None)
        if linked is not None:
            return netbird_error(400, f"group has been linked to setup key: {linked['name']}")
        del self.groups[group_id]
        for peer in self.peers.values():
            peer["groups"] = [gid for gid in peer["groups"] if gid != group_id]
        return JSONResponse({}, media_type=JSON_TYPE)
