"""Trace context crosses NATS requests, events, gRPC metadata; logs are JSON carrying the trace id."""

from __future__ import annotations

import io
import json
import logging
import uuid

import grpc
import pytest
from nats.aio.client import Client as NATS
from opentelemetry import trace
from pydantic import BaseModel

from gpulab_core import logs, telemetry
from gpulab_core.rpc import Endpoint, RpcClient, RpcServer

telemetry.setup_tracing("test")
tracer = trace.get_tracer("test")


class Empty(BaseModel):
    pass


async def test_nats_request_continues_the_callers_trace(nc: NATS) -> None:
    seen: list[str | None] = []

    async def handler(_req: Empty) -> dict[str, str]:
        seen.append(telemetry.current_ids()[0])
        return {}

    name = "tr" + uuid.uuid4().hex[:8]
    server = RpcServer(nc, name, "0.1.0")
    server.add(Endpoint("op", Empty, handler))
    await server.start()
    try:
        with tracer.start_as_current_span("caller"):
            caller_trace = telemetry.current_ids()[0]
            await RpcClient(nc).call(name, "op")
        await RpcClient(nc).call(name, "op")  # no caller span: a new trace
    finally:
        await server.stop()
    assert seen[0] == caller_trace
    assert seen[1] is not None
    assert seen[1] != caller_trace


def test_malformed_traceparent_starts_a_new_trace() -> None:
    ctx = telemetry.extract({"traceparent": "00-garbage-00"})
    with tracer.start_as_current_span("x", context=ctx):
        trace_id, _ = telemetry.current_ids()
    assert trace_id is not None
    assert trace_id != "0" * 32


@pytest.mark.parametrize("recording", [False, True], ids=["no collector", "a collector"])
async def test_grpc_metadata_carries_the_trace_to_the_server(recording: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real grpc.aio server whose servicer method opens its span with `grpc_span`. A call without a
    trace gets a trace of its own only when spans are exported: otherwise nothing would ever see it."""
    monkeypatch.setattr(telemetry, "_recording", recording)
    seen: list[tuple[str | None, str | None]] = []

    class Echo:
        @telemetry.grpc_span("/test.Echo/Echo")
        async def Echo(self, request: bytes, _ctx: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]  # noqa: N802
            seen.append(telemetry.current_ids())
            return request

    echo = Echo()
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo.Echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.Echo/Echo")  # type: ignore[call-arg]  # raw bytes: no (de)serialisers
            with tracer.start_as_current_span("agent"):
                caller_trace, caller_span = telemetry.current_ids()
                reply = await call(b"ping", metadata=telemetry.grpc_metadata())
            untraced = await call(b"pong")
    finally:
        await server.stop(None)
    assert (reply, untraced) == (b"ping", b"pong")
    assert seen[0][0] == caller_trace
    assert seen[0][1] not in (None, caller_span), "the server's own span, a child of the caller's"
    if recording:
        assert seen[1][0] not in (None, caller_trace), "no traceparent: a trace of its own"
    else:
        assert seen[1] == (None, None), "no traceparent and no collector: no span"


def test_json_log_line_carries_trace_id_and_extra_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored after the test
    monkeypatch.setattr(root, "level", root.level)
    stream = io.StringIO()
    logs.setup_logging("unit", "info", "json")
    handler = logging.getLogger().handlers[0]
    monkeypatch.setattr(handler, "stream", stream)
    log = logging.getLogger("gpulab.test")
    with tracer.start_as_current_span("work"):
        trace_id = telemetry.current_ids()[0]
        log.info("did %s", "it", extra={"node_id": "n1"})
    log.warning("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "did it"
    assert first["service"] == "unit"
    assert first["level"] == "info"
    assert first["trace_id"] == trace_id
    assert first["node_id"] == "n1"
    assert "trace_id" not in second
