"""The event stream and the idempotent durable consumer.

All state changes go to one JetStream stream, `GPULAB_EVENTS`, on subjects
`gpulab.events.<context>.<name>`. Consumers are durable pull consumers with explicit acks; each
records the event ids it processed in its own schema, in the same transaction as its effects, so a
redelivered event (after a crash between commit and ack) changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError
from opentelemetry import trace
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError
from sqlalchemy import Column, DateTime, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import telemetry

log = logging.getLogger(__name__)
tracer = trace.get_tracer("gpulab_core.events")

STREAM = "GPULAB_EVENTS"
EVENT_SUBJECT_PREFIX = "gpulab.events"
# The relay may be down for a while between publishing and deleting a row; an id seen within this
# window is dropped by JetStream. Longer than any restart we expect; the cost is one id per event.
DUPLICATE_WINDOW_S = 2 * 60 * 60
# The largest message the bus carries, headers included: nats-server's `max_payload` (its default,
# 1 MiB), the same in production (deploy/nats/nats.conf), the local run and the tests
# (gpulab_devstack.servers). A bigger message is refused by the server, which also drops the
# connection that sent it. The outbox refuses to record an event that would not fit (outbox.emit).
MAX_MESSAGE_BYTES = 1024 * 1024

CONSUMED = Counter("gpulab_events_consumed_total", "Events handled by a durable consumer", ["consumer", "outcome"])


class Event(BaseModel):
    id: uuid.UUID
    type: str  # `<context>.<name>`, e.g. `identity.user_invited`
    source: str  # the service that emitted it
    occurred_at: datetime
    data: dict[str, Any]


def stream_config(*, replicas: int = 1, max_age_days: int = 30) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[f"{EVENT_SUBJECT_PREFIX}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=max_age_days * 24 * 3600.0,
        duplicate_window=float(DUPLICATE_WINDOW_S),
        num_replicas=replicas,
    )


async def ensure_stream(js: JetStreamContext, *, replicas: int = 1) -> None:
    """Create the stream, or bring an existing one to our config; safe for many processes at once."""
    config = stream_config(replicas=replicas)
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except Exception:  # another process created it in between
            await js.stream_info(STREAM)
    await js.update_stream(config)


# How long a service waits at start for the setup step to have made the stream (a deployment starts
# both at once; the setup step takes seconds).
STREAM_WAIT_S = 60.0


async def wait_for_stream(js: JetStreamContext, *, wait_s: float = STREAM_WAIT_S) -> None:
    """Return once the stream exists. Services do not create it: that is the setup step's identity's
    job (docs/adr/0016), so that no service may change or delete what every other service relies on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            await js.stream_info(STREAM)
            return
        except NotFoundError:
            if loop.time() > deadline:
                raise ConnectionError(
                    f"the event stream {STREAM} does not exist after {wait_s:g} s: run the setup step "
                    "(`python -m gpulab_<service> events-stream`, or the local run) first"
                ) from None
            await asyncio.sleep(0.5)


def processed_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("consumer", Text, primary_key=True),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


EventHandler = Callable[[AsyncSession, Event], Awaitable[None]]


# An event on a subject this release does not consume is handed back for this long (see handle).
NOT_MINE_RETRY_S = 1.0


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` one or more."""
    tokens, parts = pattern.split("."), subject.split(".")
    for i, token in enumerate(tokens):
        if token == ">":
            return len(parts) > i
        if i >= len(parts) or token not in ("*", parts[i]):
            return False
    return len(tokens) == len(parts)


class DurableConsumer:
    """Runs `handler(session, event)` once per event, in one transaction with the dedup record.

    A handler error rolls everything back and the event is redelivered after a growing delay; after
    `max_deliver` attempts (or for an event that is not even valid) it is terminated and logged.
    """

    def __init__(
        self,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        processed: Table,
        *,
        durable: str,
        subjects: Sequence[str],
        handler: EventHandler,
        max_deliver: int = 12,
        ack_wait_s: float = 60.0,
        batch: int = 32,
    ) -> None:
        self._js = js
        self._sessions = sessions
        self._processed = processed
        self.durable = durable
        self._subjects = [s if s.startswith(EVENT_SUBJECT_PREFIX) else f"{EVENT_SUBJECT_PREFIX}.{s}" for s in subjects]
        self._handler = handler
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait_s
        self._batch = batch

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._ack_wait,
            max_deliver=self._max_deliver,
            filter_subjects=self._subjects,
            max_ack_pending=1000,
        )

    async def ensure(self) -> None:
        """Create the durable, or widen it to this release's subjects, never narrow it.

        Replicas of two releases share the durable during a rolling upgrade: a newer one may consume a
        subject the older does not know. Each replica keeps the subjects it finds and adds its own, so
        an older replica that restarts cannot take the newer one's subjects away (the events published
        meanwhile would be skipped by the durable for good). A subject is dropped from a durable only
        by hand (docs/operations.md)."""
        wanted = self.consumer_config()
        try:
            info = await self._js.consumer_info(STREAM, self.durable)
        except NotFoundError:
            await self._js.add_consumer(STREAM, wanted)
            return
        have = info.config.filter_subjects or ([info.config.filter_subject] if info.config.filter_subject else [])
        wanted.filter_subjects = sorted({*have, *self._subjects})
        if set(wanted.filter_subjects) != set(have) or (info.config.ack_wait, info.config.max_deliver) != (
            wanted.ack_wait,
            wanted.max_deliver,
        ):
            await self._js.add_consumer(STREAM, wanted)  # updates the durable in place

    def handles(self, subject: str) -> bool:
        return any(subject_matches(pattern, subject) for pattern in self._subjects)

    async def run(self) -> None:
        await self.ensure()
        sub = await self._js.pull_subscribe_bind(durable=self.durable, stream=STREAM)
        try:
            while True:
                try:
                    msgs = await sub.fetch(self._batch, timeout=5)
                except TimeoutError:
                    # No message in time. nats.py raises its own TimeoutError or, when the deadline
                    # ran out between its two pull requests, asyncio's: both are the builtin's.
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("consumer %s fetch failed: %r", self.durable, exc)
                    await asyncio.sleep(1)
                    continue
                for msg in msgs:
                    await self.handle(msg)
        finally:
            # A pull request left open would be answered to an inbox nobody reads any more.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle(self, msg: Msg) -> None:
        if not self.handles(msg.subject):
            # The durable was widened by a newer release (ensure): leave the event, unrecorded, to one
            # of its replicas; a redelivery goes to whichever replica fetches next.
            CONSUMED.labels(self.durable, "not_mine").inc()
            await msg.nak(delay=NOT_MINE_RETRY_S)
            return
        try:
            event = Event.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("consumer %s terminated a malformed event on %s: %s", self.durable, msg.subject, exc)
            CONSUMED.labels(self.durable, "malformed").inc()
            await msg.term()
            return
        ctx = telemetry.extract(msg.headers or {})
        with tracer.start_as_current_span(f"consume {event.type}", context=ctx, kind=trace.SpanKind.CONSUMER):
            try:
                done = await self._apply(event)
            except Exception as exc:
                await self._failed(msg, event, exc)
                return
        CONSUMED.labels(self.durable, "ok" if done else "duplicate").inc()
        await msg.ack()

    async def _apply(self, event: Event) -> bool:
        """True if applied now, False if it had been applied before (a redelivery)."""
        async with self._sessions() as session, session.begin():
            claimed = await session.execute(
                insert(self._processed)
                .values(consumer=self.durable, event_id=event.id)
                .on_conflict_do_nothing()
                .returning(self._processed.c.event_id)
            )
            if claimed.first() is None:
                return False
            await self._handler(session, event)
        return True

    async def _failed(self, msg: Msg, event: Event, exc: Exception) -> None:
        attempt = msg.metadata.num_delivered if msg.metadata else 1
        if attempt >= self._max_deliver:
            log.error(
                "consumer %s gave up on event %s (%s) after %d attempts: %s",
                self.durable,
                event.id,
                event.type,
                attempt,
                exc,
            )
            CONSUMED.labels(self.durable, "failed").inc()
            await msg.term()
            return
        delay = min(2.0**attempt, 300.0)
        log.warning(
            "consumer %s: event %s (%s) failed, retry in %.0fs: %s", self.durable, event.id, event.type, delay, exc
        )
        CONSUMED.labels(self.durable, "retry").inc()
        await msg.nak(delay=delay)
