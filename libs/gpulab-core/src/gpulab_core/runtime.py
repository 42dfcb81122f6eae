"""The life of one service process: wiring only, the same for every service.

Start: logs and tracing, NATS (retrying until it is reachable), the event stream, the DB engine,
the service's own endpoints and consumers, the micro service, the health server, the outbox relay.
Stop (SIGTERM/SIGINT): stop taking requests, let the ones in flight finish, flush and close NATS, close the DB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gpulab_core import db, events, health, logs, natsauth, outbox, rpc, telemetry
from gpulab_core.contracts import operations
from gpulab_core.contracts.common import HealthReply
from gpulab_core.natsconn import connect_nats
from gpulab_core.settings import CoreSettings, DatabaseSettings

log = logging.getLogger(__name__)
FLUSH_ON_STOP_S = 2.0
RECANCEL_EVERY_S = 0.1
STOP_TASKS_LIMIT_S = 15.0


async def cancel_and_wait(
    tasks: Sequence[asyncio.Task[Any]], *, every_s: float = RECANCEL_EVERY_S, limit_s: float = STOP_TASKS_LIMIT_S
) -> None:
    """Cancel the tasks and wait for them, cancelling again until each has ended.

    One cancel() is not enough on Python 3.11: an `asyncio.wait_for` whose inner await completes in
    the same loop iteration as the cancellation returns its result and drops the cancellation
    (CPython gh-86296, fixed in 3.12), and libraries we call use it (nats.py's `next_msg`, under
    every JetStream fetch). Cancelling again reaches the task at its next await. A task still running
    after `limit_s` is logged by name and left behind, so that a stop always ends.
    """
    pending = {t for t in tasks if not t.done()}
    deadline = asyncio.get_running_loop().time() + limit_s
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=every_s)
        if pending and asyncio.get_running_loop().time() >= deadline:
            for task in pending:
                log.error("background task %s did not stop within %.0fs", task.get_name(), limit_s)
            return
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task %s ended with %r", task.get_name(), task.exception())


@dataclass(frozen=True)
class ServiceTables:
    """The tables the shared layers keep in a service's own schema."""

    metadata: MetaData
    outbox: Table
    processed: Table
    dead_letters: Table

    @classmethod
    def for_schema(cls, schema: str) -> ServiceTables:
        md = db.make_metadata(schema)
        return cls(md, outbox.outbox_table(md), events.processed_table(md), outbox.dead_letters_table(md))

    @property
    def schema(self) -> str:
        assert self.metadata.schema is not None
        return str(self.metadata.schema)


Setup = Callable[["Runtime"], Awaitable[None]]
# Says what keeps a service that works from being whole (e.g. events it could never publish); [] if nothing.
ProblemCheck = Callable[[], Awaitable[list[str]]]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    version: str
    settings_cls: type[CoreSettings]
    tables: ServiceTables | None  # None: the service keeps nothing in PostgreSQL (the gateway)
    setup: Setup | None = None


@dataclass
class Runtime:
    spec: ServiceSpec
    settings: CoreSettings
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    nc: NATS = field(init=False)
    js: JetStreamContext = field(init=False)
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    rpc_server: rpc.RpcServer = field(init=False)
    rpc_client: rpc.RpcClient = field(init=False)
    health_server: health.HealthServer | None = None
    checks: dict[str, health.ReadinessCheck] = field(default_factory=dict)
    problem_checks: list[ProblemCheck] = field(default_factory=list)
    # What a service's setup made and others may need to reach, e.g. a gRPC server and its bound port.
    parts: dict[str, Any] = field(default_factory=dict)
    _background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    _on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _on_reconnect: list[Callable[[], None]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    # ---- what a service's setup() uses ----
    def add_endpoint(self, endpoint: rpc.Endpoint[Any]) -> None:
        self.rpc_server.add(endpoint)

    def add_consumer(self, durable: str, subjects: Sequence[str], handler: events.EventHandler) -> None:
        if durable not in operations.CONSUMERS.get(self.spec.name, ()):
            # Its NATS identity may create and read only the consumers the table lists (natsauth).
            raise ValueError(f"consumer {durable!r} of {self.spec.name} is not in operations.CONSUMERS")
        tables, sessions = self.spec.tables, self.sessions
        # Consumers record processed ids in the service's own schema.
        assert tables is not None
        assert sessions is not None
        consumer = events.DurableConsumer(
            self.js,
            sessions,
            tables.processed,
            durable=f"{self.spec.name}-{durable}",
            subjects=subjects,
            handler=handler,
        )
        self._background.append(consumer.run)

    def add_task(self, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._background.append(factory)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Runs first at shutdown, before background tasks are cancelled (e.g. to drain a server)."""
        self._on_stop.append(hook)

    def on_nats_reconnect(self, hook: Callable[[], None]) -> None:
        """Runs after each NATS reconnect: core-NATS messages published while disconnected never arrive
        (JetStream consumers resume on their own), so what a service learns from them must be relearnt."""
        self._on_reconnect.append(hook)

    async def _reconnected(self) -> None:
        log.warning("reconnected to NATS: notices of the gap may be lost, %d hook(s) run", len(self._on_reconnect))
        for hook in self._on_reconnect:
            hook()

    # ---- lifecycle ----
    async def start(self) -> None:
        s = self.settings
        self.nc = await connect_nats(
            s.nats_url,
            f"gpulab-{self.spec.name}-{self.instance}",
            user=s.nats_user,
            password=s.nats_password.get_secret_value() if s.nats_password else None,
            inbox_prefix=natsauth.inbox_prefix(self.spec.name),
            on_reconnected=self._reconnected,
        )
        self.js = self.nc.jetstream()
        if self.spec.tables is not None:  # it publishes and consumes events (the gateway does neither)
            await events.wait_for_stream(self.js)
        self.checks["nats"] = self._check_nats
        if self.spec.tables is not None:
            assert isinstance(s, DatabaseSettings), "a service that owns a schema reads DatabaseSettings"
            self.engine = db.create_engine(
                s.database_url,
                schema=self.spec.tables.schema,
                app_name=f"gpulab-{self.spec.name}",
                pool_size=s.db_pool_size,
            )
            self.sessions = db.session_factory(self.engine)
            engine = self.engine
            self.checks["database"] = lambda: db.ping(engine)
            nc = self.nc
            relay = outbox.OutboxRelay(
                engine, self.js, self.spec.tables.outbox, dsn=s.database_url, max_message_bytes=lambda: nc.max_payload
            )
            self._background.append(relay.run)
            self.problem_checks.append(relay.problems)
        self.rpc_server = rpc.RpcServer(self.nc, self.spec.name, self.spec.version, max_inflight=s.rpc_max_inflight)
        self.rpc_client = rpc.RpcClient(self.nc, timeout_s=s.rpc_timeout_s)
        self.add_endpoint(rpc.Endpoint("health", operations.NoRequest, self._health))
        if self.spec.setup is not None:
            await self.spec.setup(self)
        await self.rpc_server.start()
        self.health_server = health.HealthServer(self.spec.name, self.checks, s.metrics_host, s.metrics_port)
        await self.health_server.start()
        self._tasks = [
            asyncio.create_task(self._supervise(f), name=f"{self.spec.name}:{getattr(f, '__qualname__', repr(f))}")
            for f in self._background
        ]
        log.info("%s started", self.spec.name, extra={"instance": self.instance, "version": self.spec.version})

    async def stop(self) -> None:
        for hook in self._on_stop:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")
        await self.rpc_server.stop()
        await cancel_and_wait(self._tasks)
        if self.health_server is not None:
            await self.health_server.stop()
        if not self.nc.is_closed:
            # Not drain(): requests and consumers are already stopped above, and a drain waits out its
            # whole timeout (30 s) for messages a cancelled consumer will never take. Flush what was
            # published, then close.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.flush(), FLUSH_ON_STOP_S)
            await self.nc.close()
        if self.engine is not None:
            await self.engine.dispose()
        log.info("%s stopped", self.spec.name)

    async def _supervise(self, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Background loops restart after a crash instead of silently dying with the process alive."""
        name = getattr(factory, "__qualname__", repr(factory))
        while True:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed; restarting in 1s", name)
                await asyncio.sleep(1)

    async def _check_nats(self) -> None:
        if not self.nc.is_connected:
            raise ConnectionError("not connected to NATS")

    async def _health(self, _req: operations.NoRequest) -> HealthReply:
        results = await health.run_checks(self.checks)
        bad = {k: v for k, v in results.items() if v != "ok"}
        if bad:
            from gpulab_core.errors import Unavailable

            raise Unavailable(f"{self.spec.name} is not ready", details=bad)
        found = await asyncio.gather(*(check() for check in self.problem_checks))
        problems = [p for some in found for p in some]
        return HealthReply(
            status="degraded" if problems else "ok",
            service=self.spec.name,
            version=self.spec.version,
            instance=self.instance,
            problems=problems,
        )


async def serve(spec: ServiceSpec, settings: CoreSettings) -> None:
    """Run until SIGTERM or SIGINT."""
    logs.setup_logging(spec.name, settings.log_level, settings.log_format)
    telemetry.setup_tracing(spec.name, otlp_endpoint=settings.otel_exporter_otlp_endpoint)
    runtime = Runtime(spec, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    try:
        await stop.wait()
    finally:
        await runtime.stop()
