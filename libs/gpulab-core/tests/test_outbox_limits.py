"""The outbox against the bus's message limit, on real PostgreSQL and a nats-server that has
production's limit: no event can be larger than the bus carries, and a row the relay can never publish
is set aside with its reason instead of blocking the rows after it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core import db, events
from gpulab_core.events import MAX_MESSAGE_BYTES
from gpulab_core.outbox import DEAD_LETTERED, MSG_ID, EventTooLarge, OutboxRelay, emit, encode_body, message_size
from gpulab_core.runtime import ServiceTables
from gpulab_devstack.testing import Stack, wait_until

from .outbox_support import scratch_schema, stream_events

# JetStream API calls (creating the throwaway consumers that read the stream back) wait this long:
# a busy 2-core machine fsyncing megabyte messages can take more than nats.py's default 5 s.
JS_TIMEOUT_S = 30.0


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    eng = db.create_engine(stack.database_url, schema=None, app_name="outbox-limits-test")
    yield eng
    await eng.dispose()


def size_of(payload: dict[str, Any], headers: dict[str, str], event_id: uuid.UUID) -> int:
    return message_size(encode_body(payload), {**headers, MSG_ID: str(event_id)})


def padded(tables: ServiceTables, name: str, size: int) -> dict[str, Any]:
    """An outbox row whose message (body and headers) is exactly `size` bytes."""
    event_id = uuid.uuid4()
    payload: dict[str, Any] = {
        "id": str(event_id),
        "type": f"{tables.schema}.{name}",
        "source": "test",
        "occurred_at": "2026-12-15T09:00:00Z",
        "data": {"pad": ""},
    }
    payload["data"]["pad"] = "x" * (size - size_of(payload, {}, event_id))
    assert size_of(payload, {}, event_id) == size
    return {"id": event_id, "subject": f"gpulab.events.{tables.schema}.{name}", "payload": payload, "headers": {}}


async def insert_rows(engine: AsyncEngine, tables: ServiceTables, rows: list[dict[str, Any]]) -> None:
    """Rows as a service could record them before `emit` checked sizes (or with a bus that shrank since)."""
    async with engine.begin() as conn:
        for row in rows:
            await conn.execute(tables.outbox.insert().values(**row))


async def dead_letters(engine: AsyncEngine, tables: ServiceTables) -> list[Any]:
    async with engine.connect() as conn:
        dl = tables.dead_letters
        return list((await conn.execute(select(dl.c.id, dl.c.subject, dl.c.reason).order_by(dl.c.seq))).all())


async def test_events_the_bus_refuses_never_block_the_ones_after_them(
    stack: Stack, engine: AsyncEngine, nc: NATS
) -> None:
    """The attack: more rows than one relay batch that the bus refuses, then an ordinary event.
    Before the fix the relay retried the same batch forever and nothing after it left."""
    js = nc.jetstream(timeout=JS_TIMEOUT_S)
    await events.ensure_stream(js)
    tables = await scratch_schema(engine)
    poison = [padded(tables, "poison", MAX_MESSAGE_BYTES + 1) for _ in range(5)]
    await insert_rows(engine, tables, poison)
    sessions = db.session_factory(engine)
    async with sessions() as session, session.begin():
        await emit(session, tables.outbox, f"{tables.schema}.after", {"n": 1}, source="test")
    relay = OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url, batch_size=4, poll_interval_s=0.05)
    before = DEAD_LETTERED.labels(tables.schema)._value.get()
    task = asyncio.create_task(relay.run())
    try:

        async def after_arrived() -> bool:
            return bool(await stream_events(js, f"gpulab.events.{tables.schema}.after"))

        await wait_until(after_arrived, timeout_s=30, interval_s=0.2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    set_aside = await dead_letters(engine, tables)
    assert [r.id for r in set_aside] == [p["id"] for p in poison]
    assert all(r.reason.startswith(f"too large: {MAX_MESSAGE_BYTES + 1} bytes") for r in set_aside)
    assert await stream_events(js, f"gpulab.events.{tables.schema}.poison") == []
    assert DEAD_LETTERED.labels(tables.schema)._value.get() - before == 5
    [problem] = await relay.problems()
    assert problem.startswith(f"5 event(s) could never be published and were set aside in {tables.schema}.")
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(tables.outbox)) == 0


async def test_a_message_of_exactly_the_limit_is_published_and_one_byte_more_is_set_aside(
    stack: Stack, engine: AsyncEngine, nc: NATS
) -> None:
    js = nc.jetstream(timeout=JS_TIMEOUT_S)
    await events.ensure_stream(js)
    tables = await scratch_schema(engine)
    at_limit, over = padded(tables, "at", MAX_MESSAGE_BYTES), padded(tables, "over", MAX_MESSAGE_BYTES + 1)
    await insert_rows(engine, tables, [over, at_limit])
    relay = OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url)
    assert await relay.relay_once() == 2
    [arrived] = await stream_events(js, f"gpulab.events.{tables.schema}.>")
    assert arrived["id"] == str(at_limit["id"])
    assert [r.id for r in await dead_letters(engine, tables)] == [over["id"]]


async def test_the_relay_uses_the_server_s_own_limit(stack: Stack, engine: AsyncEngine, nc: NATS) -> None:
    """A server with a smaller max_payload than production's: what it can never take is set aside."""
    js = nc.jetstream(timeout=JS_TIMEOUT_S)
    await events.ensure_stream(js)
    tables = await scratch_schema(engine)
    fits, too_big = padded(tables, "fits", 1000), padded(tables, "big", 1001)
    await insert_rows(engine, tables, [fits, too_big])
    relay = OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url, max_message_bytes=lambda: 1000)
    assert await relay.relay_once() == 2
    assert [e["id"] for e in await stream_events(js, f"gpulab.events.{tables.schema}.>")] == [str(fits["id"])]
    [dead] = await dead_letters(engine, tables)
    assert dead.reason == "too large: 1001 bytes, the bus carries at most 1000"


async def test_a_message_jetstream_refuses_is_set_aside_with_its_reason(
    stack: Stack, engine: AsyncEngine, nc: NATS
) -> None:
    """JetStream's 400 (here: a stream whose own message limit is smaller) is permanent: set aside."""
    js = nc.jetstream(timeout=JS_TIMEOUT_S)
    tables = await scratch_schema(engine)
    subject = f"small_{tables.schema}"
    await js.add_stream(StreamConfig(name=subject.upper(), subjects=[f"{subject}.>"], max_msg_size=500))
    try:
        row = padded(tables, "x", 600) | {"subject": f"{subject}.x"}
        await insert_rows(engine, tables, [row])
        relay = OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url)
        assert await relay.relay_once() == 1
        [dead] = await dead_letters(engine, tables)
        assert dead.reason.startswith("refused by JetStream: ")
        assert "err_code 10054" in dead.reason  # JSStreamMessageExceedsMaximumErr
    finally:
        await js.delete_stream(subject.upper())


async def test_emit_at_the_limit_is_recorded_and_one_byte_over_is_refused_with_nothing_written(
    stack: Stack, engine: AsyncEngine, nc: NATS
) -> None:
    js = nc.jetstream(timeout=JS_TIMEOUT_S)
    await events.ensure_stream(js)
    tables = await scratch_schema(engine)
    sessions = db.session_factory(engine)
    # What an event costs besides its padding, measured on one the outbox recorded.
    async with sessions() as session, session.begin():
        await emit(session, tables.outbox, f"{tables.schema}.probe", {"pad": ""}, source="test")
    async with engine.connect() as conn:
        probe = (await conn.execute(select(tables.outbox.c.id, tables.outbox.c.payload, tables.outbox.c.headers))).one()
        await conn.execute(text(f'DELETE FROM "{tables.schema}".outbox'))
        await conn.commit()
    overhead = size_of(probe.payload, probe.headers, probe.id)

    at_limit = {"pad": "x" * (MAX_MESSAGE_BYTES - overhead)}
    async with sessions() as session, session.begin():
        await emit(session, tables.outbox, f"{tables.schema}.probe", at_limit, source="test")
    relay = OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url)
    assert await relay.relay_once() == 1
    [arrived] = await stream_events(js, f"gpulab.events.{tables.schema}.>")
    assert len(arrived["data"]["pad"]) == MAX_MESSAGE_BYTES - overhead  # type: ignore[index]

    async def change_with_a_big_event() -> None:
        async with sessions() as session, session.begin():
            await session.execute(text(f'CREATE TABLE "{tables.schema}".half_done (n int)'))
            big = {"pad": "x" * (MAX_MESSAGE_BYTES - overhead + 1)}
            await emit(session, tables.outbox, f"{tables.schema}.probe", big, source="test")

    with pytest.raises(EventTooLarge) as refused:
        await change_with_a_big_event()
    assert refused.value.code == "event_too_large"
    assert refused.value.details == {"size": MAX_MESSAGE_BYTES + 1, "limit": MAX_MESSAGE_BYTES}
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(tables.outbox)) == 0
        assert await conn.scalar(text(f"SELECT to_regclass('\"{tables.schema}\".half_done')")) is None
    assert await dead_letters(engine, tables) == []
