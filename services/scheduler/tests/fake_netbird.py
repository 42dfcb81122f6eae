"""A fake NetBird management API, for the setup-key calls gpulab makes, served by a real uvicorn.

It answers as NetBird's management server does (its HTTP auth middleware, the setup-keys handler and
`util.WriteError`, as of the `shared/management/http/api/openapi.yml` era):
- `Authorization: Token <PAT>` (or `Bearer nbp_...`, which NetBird treats as a token); a bad token is 401
  `token invalid`, no usable scheme is 401 `no valid authentication provided`.
- `POST /api/setup-keys`: a body that is not a JSON object of the right field types is 400
  `couldn't parse JSON request`; an empty name, an unknown type, a negative `expires_in`, an unknown or
  the `All` group are 422 with NetBird's (lower-cased) words; success is 200 with `SetupKeyClear`:
  the plain key (an upper-case UUID), `expires` in Go's RFC 3339 with nanoseconds, `usage_limit` forced
  to 1 for a one-off key, `expires_in` 0 meaning "never" (Go's zero time).
- `GET /api/setup-keys/{id}`: the key's `SetupKey`, its secret masked; 404 when unknown.
Every error body is `{"message": ..., "code": <HTTP status>}`.

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

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_JSON = "application/json; charset=UTF-8"  # what NetBird's util.WriteJSONObject / WriteErrorResponse send


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


def go_time(epoch_ns: int) -> str:
    """Go's time.Time JSON (RFC 3339 with nanoseconds, trailing zeros dropped, UTC as `Z`)."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def fnv32a(text: str) -> int:
    """NetBird's setup key id is the FNV-1a hash of the key, in decimal."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def netbird_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "code": status}, status_code=status, media_type=_JSON)


# The request body's fields and the Go types NetBird decodes them into (encoding/json refuses a mismatch).
_FIELDS: dict[str, str] = {
    "name": "string",
    "type": "string",
    "expires_in": "int",
    "auto_groups": "[]string",
    "usage_limit": "int",
    "ephemeral": "*bool",
    "allow_extra_dns_labels": "*bool",
}


def _decodes(value: Any, go_type: str) -> bool:
    if value is None:  # JSON null leaves a Go field at its zero value
        return True
    if go_type == "string":
        return isinstance(value, str)
    if go_type == "int":  # 86400.0 or 1e5 are refused by encoding/json for an int field
        return isinstance(value, int) and not isinstance(value, bool)
    if go_type == "[]string":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, bool)


class _InLoopServer(uvicorn.Server):
    # Runs as a task of the test's loop: the test process keeps its own signal handlers.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class FakeNetBird:
    def __init__(self, *, tokens: set[str], groups: dict[str, str] | None = None) -> None:
        self.tokens = tokens  # personal access tokens of an admin (or service) user
        self.groups = groups or {}  # id → name; a group named `All` is refused, as by NetBird
        self.delay_s = 0.0
        self.requests: list[Recorded] = []
        self.keys: dict[str, dict[str, Any]] = {}  # id → SetupKey, with the plain key
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
        self._failure = None

    def fail_with(self, status: int, body: dict[str, Any] | str | bytes, content_type: str = _JSON) -> None:
        """Answer every request from now on with this, before looking at it (a crash, a proxy's page)."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
        self._failure = _Failure(status, raw, content_type)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/setup-keys", self._create, methods=["POST"]),
                Route("/api/setup-keys/{key_id}", self._get, methods=["GET"]),
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.delay_s)
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
        if not isinstance(body, dict) or not all(_decodes(body.get(k), t) for k, t in _FIELDS.items()):
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
        now_ns = time.time_ns()
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
        return JSONResponse(key, media_type=_JSON)

    async def _get(self, request: Request) -> Response:
        if (early := await self._record(request)) is not None:
            return early
        key = self.keys.get(request.path_params["key_id"])
        if key is None:
            return netbird_error(404, "setup key not found")
        return JSONResponse({**key, "key": key["key"][:5] + "****"}, media_type=_JSON)
