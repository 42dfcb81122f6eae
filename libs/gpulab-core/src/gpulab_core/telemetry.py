"""OpenTelemetry set-up and W3C `traceparent` propagation over HTTP, NATS headers and gRPC metadata.

One admin action is one trace across services: the gateway extracts the caller's context from HTTP,
every NATS request and event carries it in its headers, and the agent's gRPC calls carry it in
metadata. Spans are exported over OTLP/HTTP only when an endpoint is configured; trace ids are
always created, so logs can be correlated even without a collector, except on a gRPC call from a
caller that sends no trace (the agents): without a collector it gets no span (grpc_span, adr/0025).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_configured = False
_recording = False  # spans are exported (a collector is configured)
TRACEPARENT = "traceparent"


def setup_tracing(service: str, *, otlp_endpoint: str | None = None, instance_id: str | None = None) -> None:
    """Install the global tracer provider once per process."""
    global _configured, _recording
    if _configured:
        return
    attrs: dict[str, Any] = {"service.name": f"gpulab-{service}", "service.namespace": "gpulab"}
    if instance_id:
        attrs["service.instance.id"] = instance_id
    # Without a collector nothing would read recorded spans, so none are recorded: the sampler drops
    # them all, yet every span still gets real trace and span ids that propagate and reach the logs.
    # Recording costs ~100 µs a span here, several per request (docs/benchmarks.md).
    sampler = ParentBased(ALWAYS_ON) if otlp_endpoint else ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create(attrs), sampler=sampler)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(_PROPAGATOR)
    _recording = bool(otlp_endpoint)
    _configured = True


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current context's `traceparent` (and `tracestate`) into headers; returns them."""
    _PROPAGATOR.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """Read a context from headers; an absent or malformed `traceparent` starts a new trace."""
    lowered = {k.lower(): v for k, v in carrier.items()}
    return _PROPAGATOR.extract(lowered)


def current_ids() -> tuple[str | None, str | None]:
    """(trace_id, span_id) of the current span as hex, or (None, None) outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# ---- gRPC: metadata keys are lowercase ASCII, which is what traceparent already is. ----

Handler = TypeVar("Handler", bound=Callable[[Any, Any, Any], Awaitable[Any]])


def grpc_metadata() -> list[tuple[str, str]]:
    """Metadata for an outgoing gRPC call carrying the current trace context."""
    return list(inject({}).items())


def grpc_server_context(invocation_metadata: Any) -> otel_context.Context:
    """Context for a gRPC handler from `ServicerContext.invocation_metadata()`."""
    return extract({str(k): str(v) for k, v in (invocation_metadata or ())})


def grpc_span(method: str) -> Callable[[Handler], Handler]:
    """Decorates a grpc.aio servicer method: a SERVER span named `method` in the caller's trace (its
    `traceparent` in the call's metadata).

    In the servicer rather than as a server interceptor: with any interceptor at all, grpc.aio runs
    an async `intercept_service` and builds a new method handler for every call, which cost the
    heartbeat path ~60 µs of its ~380 per call (docs/benchmarks.md). A call that carries no trace
    while no collector is configured gets no span at all: it would be dropped unrecorded, a root of
    nothing, and costs the heartbeat ~40 µs of its ~560 (the agent's heartbeats carry no trace)."""
    tracer = trace.get_tracer("gpulab_core.grpc")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def traced(servicer: Any, request: Any, context: Any) -> Any:
            metadata = context.invocation_metadata() or ()
            if not _recording and not any(key == TRACEPARENT for key, _ in metadata):
                return await handler(servicer, request, context)
            parent = grpc_server_context(metadata)
            with tracer.start_as_current_span(method, context=parent, kind=trace.SpanKind.SERVER):
                return await handler(servicer, request, context)

        return cast(Handler, traced)

    return decorate
