"""The transactional outbox and its relay.

A service writes its event rows in the same transaction as the change they describe (`emit`); the
relay publishes them to JetStream with `Nats-Msg-Id` = event id and deletes them only after
JetStream acknowledged. A relay killed between the two publishes the same id again on restart and
JetStream's duplicate window drops the copy, so each committed event arrives once; a rolled-back
transaction leaves no row, so its events never arrive. One relay per schema publishes at a time
(a transaction-scoped advisory lock), which keeps the stream in commit order with any number of
replicas.

No row may stop the rows after it. `emit` refuses an event larger than the bus carries
(`EventTooLarge`: the caller's transaction rolls back, nothing is half-done). A row the bus can still
never take (bigger than the server's actual limit, or refused by JetStream as malformed) is moved,
with its reason, to `outbox_dead_letters` in the same transaction that deletes the published rows;
it is counted (`gpulab_outbox_dead_lettered_total`), logged, and makes the service's `health` answer
`degraded` (`OutboxRelay.problems`) until an operator deals with it. Any other failure (NATS away,
a timeout) leaves the row to be retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError
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
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gpulab_core import telemetry
from gpulab_core.db import split_ssl
from gpulab_core.errors import EVENT_TOO_LARGE, GpulabError
from gpulab_core.events import EVENT_SUBJECT_PREFIX, MAX_MESSAGE_BYTES, Event

log = logging.getLogger(__name__)

PUBLISHED = Counter("gpulab_outbox_published_total", "Events the relay published", ["schema"])
PENDING = Gauge("gpulab_outbox_pending", "Events waiting in the outbox at the last relay pass", ["schema"])
DEAD_LETTERED = Counter(
    "gpulab_outbox_dead_lettered_total", "Events set aside because the bus can never take them", ["schema"]
)
DEAD_LETTERS = Gauge(
    "gpulab_outbox_dead_letters", "Events in the outbox's dead-letter table at the last health check", ["schema"]
)

MSG_ID = "Nats-Msg-Id"
# The header block nats.py writes in front of a message with headers (`NATS/1.0` CRLF ... CRLF); the
# server counts it against max_payload together with the body.
_HEADER_START = len(b"NATS/1.0\r\n")
_HEADER_END = len(b"\r\n")
_HEADER_LINE_EXTRA = len(b": \r\n")


class EventTooLarge(GpulabError):
    """The change would emit an event larger than the bus carries: nothing of it is recorded."""

    code = EVENT_TOO_LARGE


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


def dead_letters_table(metadata: MetaData) -> Table:
    """Rows the relay can never publish, as they were in the outbox, with why and when they were set aside."""
    return Table(
        "outbox_dead_letters",
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),  # the row's place in the outbox
        Column("id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("subject", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("reason", Text, nullable=False),
        Column("dead_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def dead_letters_of(outbox: Table) -> Table:
    """The dead-letter table next to `outbox`, on the same metadata."""
    found = outbox.metadata.tables.get(
        f"{outbox.schema}.outbox_dead_letters" if outbox.schema else "outbox_dead_letters"
    )
    return found if found is not None else dead_letters_table(outbox.metadata)


def notify_channel(schema: str) -> str:
    return f"gpulab_outbox_{schema}"


def encode_body(payload: Any) -> bytes:
    """An event's envelope as it goes on the bus: compact JSON."""
    return json.dumps(payload, separators=(",", ":")).encode()


def message_size(body: bytes, headers: Mapping[str, str]) -> int:
    """What nats-server counts against its max_payload: the body plus the header block as nats.py
    writes it (the status line, one `key: value` line per header, a blank line)."""
    if not headers:
        return len(body)
    lines = sum(len(k.strip().encode()) + len(v.strip().encode()) + _HEADER_LINE_EXTRA for k, v in headers.items())
    return len(body) + _HEADER_START + lines + _HEADER_END


async def emit(
    session: AsyncSession, outbox: Table, event_type: str, data: dict[str, Any], *, source: str
) -> uuid.UUID:
    """Record an event in the caller's transaction. `event_type` is `<context>.<name>`.

    Raises EventTooLarge, before writing anything, when the message the relay would publish is larger
    than the bus carries (MAX_MESSAGE_BYTES): the caller's transaction must then roll back."""
    event = Event(id=uuid.uuid4(), type=event_type, source=source, occurred_at=datetime.now(UTC), data=data)
    payload = event.model_dump(mode="json")
    headers = dict(telemetry.inject({}))
    size = message_size(encode_body(payload), {**headers, MSG_ID: str(event.id)})
    if size > MAX_MESSAGE_BYTES:
        raise EventTooLarge(
            f"the change would emit {event_type} as a message of {size} bytes; the bus carries at most"
            f" {MAX_MESSAGE_BYTES}",
            details={"size": size, "limit": MAX_MESSAGE_BYTES},
        )
    await session.execute(
        outbox.insert().values(
            id=event.id, subject=f"{EVENT_SUBJECT_PREFIX}.{event_type}", payload=payload, headers=headers
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
        max_message_bytes: Callable[[], int] = lambda: MAX_MESSAGE_BYTES,
    ) -> None:
        self._engine = engine
        self._js = js
        self._outbox = outbox
        self._dead = dead_letters_of(outbox)
        # The server's own limit (nats.py learns it from the server's INFO): a row above it can never go.
        self._max_message_bytes = max_message_bytes
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
        """Publish one batch in commit order; returns how many rows it handled, published or set aside
        (0 if another relay holds the lock). Rows that failed for a passing reason stay, and the
        first such failure is raised once the rest is committed."""
        ob = self._outbox
        limit = self._max_message_bytes()
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
            dead: dict[int, str] = {}
            sendable: list[tuple[Any, bytes, dict[str, str]]] = []
            for r in rows:
                body, headers = encode_body(r.payload), {**r.headers, MSG_ID: str(r.id)}
                size = message_size(body, headers)
                if size > limit:
                    dead[r.seq] = f"too large: {size} bytes, the bus carries at most {limit}"
                else:
                    sendable.append((r, body, headers))
            # Published in order on one connection, acks awaited together: order is kept, latency is paid once.
            results = await asyncio.gather(
                *(self._js.publish(r.subject, body, timeout=self._timeout, headers=h) for r, body, h in sendable),
                return_exceptions=True,
            )
            published: list[int] = []
            failures: list[Exception] = []
            for (r, _body, _headers), result in zip(sendable, results, strict=True):
                if not isinstance(result, BaseException):
                    published.append(r.seq)
                elif not isinstance(result, Exception):
                    raise result  # cancelled: the transaction rolls back, the rows stay
                elif (reason := _never_publishable(result)) is not None:
                    dead[r.seq] = reason
                else:
                    failures.append(result)
            if dead:
                await self._set_aside(conn, dead, {r.seq: r for r in rows})
            # By exact seq: a row of a transaction that commits later may have a lower seq than these.
            if published:
                await conn.execute(delete(ob).where(ob.c.seq.in_(published)))
        PUBLISHED.labels(self._schema).inc(len(published))
        if failures:
            raise failures[0]
        return len(published) + len(dead)

    async def _set_aside(self, conn: Any, dead: Mapping[int, str], rows: Mapping[int, Any]) -> None:
        """Move rows to the dead-letter table with their reasons, in the relay's transaction."""
        ob, dl = self._outbox, self._dead
        for seq, reason in dead.items():
            columns = (ob.c.seq, ob.c.id, ob.c.subject, ob.c.payload, ob.c.headers, ob.c.created_at)
            await conn.execute(
                dl.insert().from_select(
                    ["seq", "id", "subject", "payload", "headers", "created_at", "reason"],
                    select(*columns, literal(reason)).where(ob.c.seq == seq),
                )
            )
            log.error(
                "outbox %s: event %s on %s can never be published, set aside in outbox_dead_letters: %s;"
                " the events after it go on",
                self._schema,
                rows[seq].id,
                rows[seq].subject,
                reason,
            )
        await conn.execute(delete(ob).where(ob.c.seq.in_(list(dead))))
        DEAD_LETTERED.labels(self._schema).inc(len(dead))

    async def problems(self) -> list[str]:
        """What the service's `health` reports as making it `degraded`: events set aside."""
        async with self._engine.connect() as conn:
            count = int(await conn.scalar(select(func.count()).select_from(self._dead)) or 0)
        DEAD_LETTERS.labels(self._schema).set(count)
        if not count:
            return []
        return [
            f"{count} event(s) could never be published and were set aside in {self._schema}.outbox_dead_letters"
            " (see the logs: the consumers of those events never got them)"
        ]


def _never_publishable(exc: Exception) -> str | None:
    """The reason a publish can never succeed, or None for a failure that may pass (NATS away, a timeout)."""
    if isinstance(exc, MaxPayloadError):
        return "too large for the bus (nats.py refused it before sending)"
    if isinstance(exc, BadRequestError):  # JetStream's 400: the message itself is refused
        return f"refused by JetStream: {exc.description} (err_code {exc.err_code})"
    return None
