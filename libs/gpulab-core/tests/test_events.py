"""The idempotent durable consumer against real JetStream and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import Column, Integer, Table, Text, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gpulab_core import db, events
from gpulab_core.events import DurableConsumer, Event
from gpulab_core.runtime import cancel_and_wait
from gpulab_devstack.testing import Stack, wait_until

from .outbox_support import scratch_schema


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    eng = db.create_engine(stack.database_url, schema=None, app_name="events-test")
    yield eng
    await eng.dispose()


def event(subject_ctx: str, n: int, event_id: uuid.UUID | None = None) -> tuple[str, bytes, uuid.UUID]:
    ev = Event(
        id=event_id or uuid.uuid4(),
        type=f"{subject_ctx}.counted",
        source="test",
        occurred_at=datetime.now(UTC),
        data={"n": n},
    )
    return f"gpulab.events.{subject_ctx}.counted", ev.model_dump_json().encode(), ev.id


async def setup_consumer(
    engine: AsyncEngine, nc: NATS, fail_first: int = 0, max_deliver: int = 12
) -> tuple[str, DurableConsumer, Table]:
    tables = await scratch_schema(engine)
    effects = Table(
        "effects",
        tables.metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", Text, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(effects.create)
    failures = {"left": fail_first}

    async def handler(session: AsyncSession, ev: Event) -> None:
        await session.execute(effects.insert().values(event_id=str(ev.id)))
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("transient failure")  # rolls back the insert above too

    ctx = tables.schema
    consumer = DurableConsumer(
        nc.jetstream(),
        db.session_factory(engine),
        tables.processed,
        durable=f"test-{ctx}",
        subjects=[f"{ctx}.>"],
        handler=handler,
        max_deliver=max_deliver,
    )
    consumer._batch = 8
    return ctx, consumer, effects


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_each_event_is_applied_once_even_when_published_twice(engine: AsyncEngine, nc: NATS) -> None:
    js = nc.jetstream()
    await events.ensure_stream(js)
    ctx, consumer, effects = await setup_consumer(engine, nc)
    ids = []
    for n in range(20):
        subj, body, eid = event(ctx, n)
        ids.append(eid)
        await js.publish(subj, body)
        # The same event again under another message id, as a second relay bug might: dedup by event id.
        await js.publish(subj, body)
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(lambda: _count_is(engine, effects, 20), 30)
        await asyncio.sleep(0.5)
        assert await count(engine, effects) == 20
    finally:
        await cancel_and_wait([task])


async def _count_is(engine: AsyncEngine, table: Table, n: int) -> bool:
    return await count(engine, table) == n


async def test_failing_handler_rolls_back_and_the_event_is_retried(engine: AsyncEngine, nc: NATS) -> None:
    js = nc.jetstream()
    await events.ensure_stream(js)
    ctx, consumer, effects = await setup_consumer(engine, nc, fail_first=1)
    subj, body, _ = event(ctx, 1)
    await js.publish(subj, body)
    task = asyncio.create_task(consumer.run())
    try:
        # first delivery fails (nak with a 2 s delay), the redelivery succeeds: one effect row, not two
        await wait_until(lambda: _count_is(engine, effects, 1), 30)
        await asyncio.sleep(0.5)
        assert await count(engine, effects) == 1
    finally:
        await cancel_and_wait([task])


async def test_malformed_event_is_terminated_and_the_next_one_still_handled(engine: AsyncEngine, nc: NATS) -> None:
    js = nc.jetstream()
    await events.ensure_stream(js)
    ctx, consumer, effects = await setup_consumer(engine, nc)
    await js.publish(f"gpulab.events.{ctx}.counted", b"{not json")
    await js.publish(f"gpulab.events.{ctx}.counted", json.dumps({"id": "nope"}).encode())
    subj, body, _ = event(ctx, 2)
    await js.publish(subj, body)
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(lambda: _count_is(engine, effects, 1), 30)
        info = await js.consumer_info(events.STREAM, consumer.durable)
        await wait_until(lambda: _settled(js, consumer.durable), 10)
        assert info.config.durable_name == consumer.durable
    finally:
        await cancel_and_wait([task])


async def _settled(js: JetStreamContext, durable: str) -> bool:
    info = await js.consumer_info(events.STREAM, durable)
    return bool(info.num_ack_pending == 0 and info.num_pending == 0)


async def test_consumer_resumes_where_it_stopped_after_a_restart(engine: AsyncEngine, nc: NATS) -> None:
    js = nc.jetstream()
    await events.ensure_stream(js)
    ctx, consumer, effects = await setup_consumer(engine, nc)
    for n in range(5):
        subj, body, _ = event(ctx, n)
        await js.publish(subj, body)
    task = asyncio.create_task(consumer.run())
    await wait_until(lambda: _count_is(engine, effects, 5), 30)
    # Stopped for good (its pull request withdrawn) before the next events: one delivered to a pull
    # request nobody reads any more comes back only after the ack wait (60 s), as after a crash.
    await cancel_and_wait([task])
    await nc.flush()
    for n in range(5, 9):
        subj, body, _ = event(ctx, n)
        await js.publish(subj, body)
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(lambda: _count_is(engine, effects, 9), 30)
    finally:
        await cancel_and_wait([task])


def test_subjects_match_as_nats_matches_them() -> None:
    assert events.subject_matches("gpulab.events.a.>", "gpulab.events.a.b.c")
    assert not events.subject_matches("gpulab.events.a.>", "gpulab.events.a")
    assert events.subject_matches("gpulab.events.*.made", "gpulab.events.x.made")
    assert not events.subject_matches("gpulab.events.*.made", "gpulab.events.x.y.made")
    assert events.subject_matches("gpulab.events.a.made", "gpulab.events.a.made")
    assert not events.subject_matches("gpulab.events.a.made", "gpulab.events.a.made.too")


async def test_replicas_of_two_releases_share_a_durable_without_losing_the_newer_ones_events(
    engine: AsyncEngine, nc: NATS
) -> None:
    """A rolling upgrade: the newer release also consumes `<ctx>.b`. An older replica that (re)starts
    does not narrow the durable, and hands every `b` event back, unrecorded, to the newer one."""
    js = nc.jetstream()
    await events.ensure_stream(js)
    tables = await scratch_schema(engine)
    effects = Table(
        "effects",
        tables.metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", Text, nullable=False),
        Column("release", Text, nullable=False),
        Column("subject", Text, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(effects.create)
    ctx = tables.schema

    def consumer(release: str, kinds: list[str]) -> DurableConsumer:
        async def handler(session: AsyncSession, ev: Event) -> None:
            row = {"event_id": str(ev.id), "release": release, "subject": ev.type}
            await session.execute(effects.insert().values(**row))

        made = DurableConsumer(
            js,
            db.session_factory(engine),
            tables.processed,
            durable=f"test-{ctx}",
            subjects=[f"{ctx}.{kind}" for kind in kinds],
            handler=handler,
        )
        made._batch = 4
        return made

    newer, older = consumer("newer", ["a", "b"]), consumer("older", ["a"])
    tasks = [asyncio.create_task(newer.run())]
    try:
        await wait_until(lambda: _consumer_exists(js, f"test-{ctx}"), 10)
        tasks.append(asyncio.create_task(older.run()))  # started after: it must not narrow the durable
        await asyncio.sleep(1)
        info = await js.consumer_info(events.STREAM, f"test-{ctx}")
        assert sorted(info.config.filter_subjects or []) == [f"gpulab.events.{ctx}.a", f"gpulab.events.{ctx}.b"]
        for n in range(10):
            for kind in ("a", "b"):
                ev = Event(
                    id=uuid.uuid4(), type=f"{ctx}.{kind}", source="test", occurred_at=datetime.now(UTC), data={"n": n}
                )
                await js.publish(f"gpulab.events.{ctx}.{kind}", ev.model_dump_json().encode())
        await wait_until(lambda: _count_is(engine, effects, 20), 60)
        await asyncio.sleep(1)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(effects.c.release, effects.c.subject))).all()
        assert len(rows) == 20
        assert sorted(release for release, subject in rows if subject.endswith(".b")) == ["newer"] * 10
        assert sum(1 for _, subject in rows if subject.endswith(".a")) == 10
    finally:
        await cancel_and_wait(tasks)


async def _consumer_exists(js: JetStreamContext, durable: str) -> bool:
    try:
        await js.consumer_info(events.STREAM, durable)
    except Exception:  # noqa: BLE001 (not there yet)
        return False
    return True
