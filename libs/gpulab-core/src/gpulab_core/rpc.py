"""Request/reply between services over NATS, on the NATS "micro" service API.

Subjects are `gpulab.rpc.<service>.<operation>`; every endpoint subscribes in a queue group named
after the service, so N replicas share the load. Each process also gets micro's built-in
`$SRV.PING|INFO|STATS` endpoints. Bodies are JSON validated by pydantic models; replies use the
envelope of DESIGN.md (`{"ok": true, "data": ...}` or `{"ok": false, "error": {...}}`), and error
replies also carry micro's `Nats-Service-Error(-Code)` headers so generic NATS tooling sees them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats.micro
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.micro.request import Request
from nats.micro.service import Service
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError

from gpulab_core import errors, telemetry
from gpulab_core.contracts import operations
from gpulab_core.db import lost_database

log = logging.getLogger(__name__)
tracer = trace.get_tracer("gpulab_core.rpc")

RPC_PREFIX = "gpulab.rpc"
ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"

# micro's header codes are HTTP-like numbers; our stable word travels in the body and this header.
_HEADER_STATUS = {errors.INVALID_REQUEST: "400", errors.NOT_FOUND: "404", errors.INTERNAL: "500"}

RPC_SECONDS = Histogram(
    "gpulab_rpc_handler_seconds", "Time spent handling an RPC request", ["service", "operation", "outcome"]
)
RPC_INFLIGHT_REJECTED = Counter("gpulab_rpc_busy_total", "Requests that waited for a free handler slot", ["service"])

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
Handler = Callable[[Any], Awaitable[Any]]


def subject(service: str, operation: str) -> str:
    return f"{RPC_PREFIX}.{service}.{operation}"


def ok_reply(data: Any) -> bytes:
    return json.dumps({"ok": True, "data": data}, separators=(",", ":"), default=str).encode()


def error_reply(code: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    body = {"ok": False, "error": {"code": code, "message": message, "details": details or {}}}
    return json.dumps(body, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class Endpoint(Generic[Req]):
    """One operation: its request model and the coroutine that answers it.

    The handler returns something JSON-serialisable (a pydantic model is dumped in JSON mode) or
    raises a `GpulabError`; anything else is a bug and becomes `internal_error`.
    """

    operation: str
    request_model: type[Req]
    handler: Callable[[Req], Awaitable[Any]]

    @classmethod
    def of(cls, op: operations.Operation[Req, Any], handler: Callable[[Req], Awaitable[Any]]) -> Endpoint[Req]:
        """The endpoint that serves `op` of the table, with the table's request model."""
        return cls(op.name, op.request, handler)


class RpcServer:
    """Registers a service's endpoints as a NATS micro service and runs each request in its own task.

    nats.py delivers a subscription's messages one at a time; running handlers as tasks (bounded by
    `max_inflight`) lets one slow request not stall every other caller of the same endpoint.
    """

    def __init__(self, nc: NATS, name: str, version: str, *, max_inflight: int = 64) -> None:
        self._nc = nc
        self.name = name
        self.version = version
        self._slots = asyncio.Semaphore(max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._service: Service | None = None
        self._endpoints: list[Endpoint[Any]] = []

    def add(self, endpoint: Endpoint[Any]) -> None:
        self._endpoints.append(endpoint)

    def _check_against_table(self) -> None:
        """A gpulab service serves exactly the operations the table gives it, with the same request
        models: the table is what its callers and the NATS permissions are made from."""
        if self.name not in operations.SERVICES:
            return  # a test's or benchmark's own service
        for ep in self._endpoints:
            op = operations.find(self.name, ep.operation)
            if op is None or op.request is not ep.request_model:
                raise ValueError(f"{self.name}.{ep.operation} is not in gpulab_core.contracts.operations as served")

    async def start(self) -> None:
        self._check_against_table()
        self._service = await nats.micro.add_service(
            self._nc,
            name=self.name,
            version=self.version,
            queue_group=self.name,
            description=f"gpulab {self.name} service",
        )
        for ep in self._endpoints:
            await self._service.add_endpoint(
                # micro endpoint names allow no dots; the subject keeps the operation as written
                name=ep.operation.replace(".", "_"),
                subject=subject(self.name, ep.operation),
                handler=self._dispatcher(ep),
            )

    async def stop(self) -> None:
        """Stop taking requests, then let the ones in flight finish."""
        if self._service is not None:
            await self._service.stop()
            self._service = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    def _dispatcher(self, ep: Endpoint[Any]) -> Callable[[Request], Awaitable[None]]:
        async def dispatch(request: Request) -> None:
            if self._slots.locked():
                RPC_INFLIGHT_REJECTED.labels(self.name).inc()
            await self._slots.acquire()
            task = asyncio.create_task(self._answer(ep, request))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

        return dispatch

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _answer(self, ep: Endpoint[Any], request: Request) -> None:
        started = time.perf_counter()
        ctx = telemetry.extract(request.headers or {})
        with tracer.start_as_current_span(
            f"rpc {self.name}.{ep.operation}", context=ctx, kind=trace.SpanKind.SERVER
        ) as span:
            body, code = await self._run(ep, request.data)
            span.set_attribute("gpulab.rpc.outcome", code or "ok")
        headers = None
        if code is not None:
            headers = {ERROR_HEADER: code, ERROR_CODE_HEADER: _HEADER_STATUS.get(code, "422")}
        try:
            await request.respond(body, headers=headers)
        except Exception:  # the caller's inbox may be gone; nothing to answer to
            log.warning("could not send reply", extra={"operation": ep.operation})
        RPC_SECONDS.labels(self.name, ep.operation, code or "ok").observe(time.perf_counter() - started)

    async def _run(self, ep: Endpoint[Any], raw: bytes) -> tuple[bytes, str | None]:
        try:
            payload = ep.request_model.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            details = {"errors": exc.errors(include_url=False, include_context=False, include_input=False)}
            return error_reply(errors.INVALID_REQUEST, "request body is not valid", details), errors.INVALID_REQUEST
        try:
            result = await ep.handler(payload)
        except errors.GpulabError as exc:
            return error_reply(exc.code, exc.message, exc.details), exc.code
        except Exception as exc:
            if lost_database(exc):  # not a bug: the database restarts, or is unreachable for a moment
                log.warning("%s.%s: the database is unreachable: %s", self.name, ep.operation, exc)
                return error_reply(errors.UNAVAILABLE, "the database is unreachable; try again"), errors.UNAVAILABLE
            log.exception("unhandled error in %s.%s", self.name, ep.operation)
            return error_reply(errors.INTERNAL, "internal error"), errors.INTERNAL
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        return ok_reply(result), None


class RpcClient:
    """Calls other services and turns their envelope back into data or a `RemoteError`.

    Services call through `ask`/`request` with an operation of the table; `call` by name is for
    tests and tools."""

    def __init__(self, nc: NATS, *, timeout_s: float = 5.0) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)

    async def ask(self, op: operations.Operation[Req, Rep], payload: Req, *, timeout_s: float | None = None) -> Rep:
        """Call an operation of the table and return its reply as the table's reply model; error
        replies raise `RemoteError`. A reply outside the contract is our bug, never the caller's."""
        data = await self.request(op, payload, timeout_s=timeout_s)
        try:
            return op.reply.model_validate(data or {})
        except ValidationError as exc:
            log.error("%s replied outside its contract: %s", op.subject, exc.errors(include_input=False))
            raise errors.GpulabError("internal error") from None

    async def request(self, op: operations.Operation[Req, Any], payload: Req, *, timeout_s: float | None = None) -> Any:
        """Call an operation of the table and return the reply's data as it came (for a caller that
        reads it with a lenient model of its own)."""
        return await self.call(op.service, op.name, payload, timeout_s=timeout_s)

    async def call(
        self,
        service: str,
        operation: str,
        payload: BaseModel | dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Any:
        if isinstance(payload, BaseModel):
            # Only the fields the caller set: the handler parses the same contract and fills in the
            # defaults, and a partial change (a PATCH) can tell "not given" from "set to null".
            data = payload.model_dump_json(exclude_unset=True).encode()
        else:
            data = json.dumps(payload or {}, default=str).encode()
        # The caller's current span is the parent of the handler's span: no client span of our own,
        # which would cost as much again per request and add nothing a reader of the trace needs.
        headers: dict[str, str] = {}
        telemetry.inject(headers)
        try:
            msg = await self._nc.request(
                subject(service, operation), data, timeout=timeout_s or self._timeout_s, headers=headers
            )
        except NoRespondersError:
            raise errors.Unavailable(f"{service} is not running", details={"service": service}) from None
        except NatsTimeout:
            raise errors.Unavailable(f"{service} did not answer in time", details={"service": service}) from None
        return decode_reply(msg.data, service)


def decode_reply(raw: bytes, service: str) -> Any:
    try:
        body = json.loads(raw)
        if body["ok"]:
            return body.get("data")
        err = body["error"]
        raise errors.RemoteError(str(err["message"]), code=str(err["code"]), details=err.get("details") or {})
    except (ValueError, KeyError, TypeError):
        raise errors.GpulabError(f"{service} sent a reply that is not an envelope") from None
