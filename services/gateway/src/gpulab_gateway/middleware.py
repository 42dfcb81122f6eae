"""Pure ASGI middleware: request-size limit and the trace context of every request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpulab_core import telemetry

tracer = trace.get_tracer("gpulab_gateway.http")


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "urn:gpulab:problem:request_too_large",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the request body is larger than {limit} bytes",
            "code": "request_too_large",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuses bodies over `limit` bytes with 413 before the app reads them, declared length or not."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_413(send, self.limit)
                    return
        seen = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Answer now and tell the app the client went away: frameworks turn exceptions raised
                    # while they read a body into their own 400, which would hide the real reason.
                    refused = True
                    await _send_413(send, self.limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


def route_template(path: str, params: Mapping[str, Any]) -> str:
    """The path with each path parameter's value put back as `{name}` (searched from the right).

    Built from the ASGI scope's `path_params`, so it holds whatever way the framework nests routers.
    """
    segments = path.split("/")
    for name, value in params.items():
        parts = str(value).split("/")
        if parts == [""]:
            continue
        for i in range(len(segments) - len(parts), -1, -1):
            if segments[i : i + len(parts)] == parts:
                segments[i : i + len(parts)] = ["{" + name + "}"]
                break
    return "/".join(segments)


class TraceContext:
    """Continues the caller's `traceparent` (or starts a trace) and returns its id in `X-Trace-Id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        ctx = telemetry.extract(headers)
        method = scope["method"]
        # Named by the route's template once routing found it, never by the raw path: paths carry
        # secrets (an invite token) and unbounded ids that must not end up in a trace store.
        with tracer.start_as_current_span(method, context=ctx, kind=trace.SpanKind.SERVER) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    params = scope.get("path_params")
                    if scope.get("route") is not None and isinstance(params, dict):
                        route = route_template(scope["path"], params)
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                    span.set_attribute("http.status_code", message["status"])
                    message["headers"] = [*message.get("headers", []), (b"x-trace-id", trace_id.encode())]
                await send(message)

            await self.app(scope, receive, send_with_id)
