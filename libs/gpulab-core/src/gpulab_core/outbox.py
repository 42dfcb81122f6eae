"""The transactional outbox and its relay.

A service writes its event rows in the same transaction as the change they describe (`emit`); the
relay publishes them to JetStream with `Nats-Msg-Id` = event id and deletes them only after
JetStream acknowledged. A relay killed between the two publishes the same id again on restart and
JetStream's duplicate window drops the copy, so each committed event arrives once; a rolled-back
transaction leaves no row, so its events never arrive. One relay per schema publishes at a time
(a transaction-scoped advisory lock), which keeps the stream in commit order with any number of
replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gpulab_core import telemetry
from gpulab_core.db import split_ssl
from gpulab_core.events import EVENT_SUBJECT_PREFIX, Event

log = logging.getLogger(__name__)

PUBLISHED = Counter("gpulab_outbox_published_total", "Events the relay published", ["schema"])
PENDING = Gauge("gpulab_outbox_pending", "Events waiting in the outbox at the last relay pass", ["schema"])


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("subject", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def notify_channel(schema: str) -> str:
    return f"gpulab_outbox_{schema}"


async def emit(
    session: AsyncSession, outbox: Table, event_type: str, data: dict[str, Any], *, source: str
) -> uuid.UUID:
    """Record an event in the caller's transaction. `event_type` is `<context>.<name>`."""
    event = Event(id=uuid.uuid4(), type=event_type, source=source, occurred_at=datetime.now(UTC), data=data)
    await session.execute(
        outbox.insert().values(
            id=event.id,
            subject=f"{EVENT_SUBJECT_PREFIX}.{event_type}",
            payload=event.model_dump(mode="json"),
            headers=dict(telemetry.inject({})),
        )
    )
    # Delivered at commit only, so the relay wakes for committed rows and never for rolled-back ones.
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": notify_channel(outbox.schema or "")})
    return event.id


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        js: JetStreamContext,
        outbox: Table,
        *,
        dsn: str,
        batch_size: int = 256,
        poll_interval_s: float = 1.0,
        publish_timeout_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._js = js
        self._outbox = outbox
        self._dsn = dsn
        self._schema = outbox.schema or "public"
        self._batch = batch_size
        self._poll = poll_interval_s
        self._timeout = publish_timeout_s
        self._wake = asyncio.Event()
        # Two services must never contend for one lock, so the key derives from the schema name.
        self._lock_key = zlib.crc32(f"gpulab-outbox:{self._schema}".encode())

    async def run(self) -> None:
        listener = await self._listen()
        try:
            while True:
                try:
                    while await self.relay_once() == self._batch:
                        pass
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS or DB away: the rows stay, the next pass retries
                    log.warning("outbox relay pass failed: %s", exc)
                self._wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 a wait_for whose inner wait finishes as the
                # task is cancelled returns normally and the cancellation is lost (CPython gh-86296).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
        finally:
            if listener is not None:
                await listener.close()

    async def _listen(self) -> asyncpg.Connection | None:
        conn: asyncpg.Connection | None = None
        try:
            bare, ssl = split_ssl(self._dsn)
            conn = await asyncpg.connect(bare.replace("postgresql+asyncpg://", "postgresql://"), ssl=ssl)
            await conn.add_listener(notify_channel(self._schema), lambda *_: self._wake.set())
            return conn
        except BaseException as exc:
            # Also when cancelled (a service stopped while it starts): the connection is ours to close.
            # terminate() needs no await, so a second cancellation cannot leave it open either.
            if conn is not None:
                conn.terminate()
            if not isinstance(exc, Exception):
                raise
            log.warning("outbox relay cannot LISTEN, polling only: %s", exc)  # polling still delivers, only later
            return None

    async def relay_once(self) -> int:
        """Publish one batch in commit order; returns how many were published (0 if another relay holds the lock)."""
        ob = self._outbox
        async with self._engine.begin() as conn:
            if not await conn.scalar(select(func.pg_try_advisory_xact_lock(self._lock_key))):
                return 0
            rows = (
                await conn.execute(
                    select(ob.c.seq, ob.c.id, ob.c.subject, ob.c.payload, ob.c.headers)
                    .order_by(ob.c.seq)
                    .limit(self._batch)
                )
            ).all()
            PENDING.labels(self._schema).set(len(rows))
            if not rows:
                return 0
            # Published in order on one connection, acks awaited together: order is kept, latency is paid once.
            acks = [
                self._js.publish(
                    r.subject,
                    json.dumps(r.payload, separators=(",", ":")).encode(),
                    timeout=self._timeout,
                    headers={**r.headers, "Nats-Msg-Id": str(r.id)},
                )
                for r in rows
            ]
            await asyncio.gather(*acks)
            # By exact seq: a row of a transaction that commits later may have a lower seq than these.
            await conn.execute(delete(ob).where(ob.c.seq.in_([r.seq for r in rows])))
        PUBLISHED.labels(self._schema).inc(len(rows))
        return len(rows)
