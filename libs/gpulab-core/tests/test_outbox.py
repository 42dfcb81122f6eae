"""The transactional outbox against real PostgreSQL and NATS, with the relay killed at random points."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import signal
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core import db, events
from gpulab_core.natsconn import connect_nats
from gpulab_core.outbox import OutboxRelay, emit
from gpulab_devstack.servers import EmbeddedNats, free_port
from gpulab_devstack.testing import Stack, wait_until

from .outbox_support import scratch_schema, stream_events

RELAY = Path(__file__).with_name("relay_process.py")


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    eng = db.create_engine(stack.database_url, schema=None, app_name="outbox-test")
    yield eng
    await eng.dispose()


class Boom(Exception):
    pass


@pytest.mark.slow
async def test_committed_events_arrive_exactly_once_with_the_relay_killed_at_random(
    stack: Stack, engine: AsyncEngine, nc: NATS
) -> None:
    js = nc.jetstream()
    await events.ensure_stream(js)
    tables = await scratch_schema(engine)
    sessions = db.session_factory(engine)
    rng = random.Random(20261128)
    committed: set[str] = set()
    rolled_back: set[str] = set()
    writing = True
    kills = 0
    target_kills = 6

    async def write() -> None:
        nonlocal writing
        for tx in range(250):  # 200 committed transactions of 5 events = 1,000; 50 rolled back
            # Keep pace with the killer, so that kills land all through the writing, not after it.
            while kills < tx * target_kills // 250:
                await asyncio.sleep(0.05)
            doomed = tx % 5 == 4
            ids = []
            try:
                async with sessions() as session, session.begin():
                    for i in range(5):
                        ids.append(
                            str(
                                await emit(
                                    session,
                                    tables.outbox,
                                    f"{tables.schema}.happened",
                                    {"tx": tx, "i": i},
                                    source="test",
                                )
                            )
                        )
                    if doomed:
                        raise Boom
            except Boom:
                rolled_back.update(ids)
            else:
                committed.update(ids)
            await asyncio.sleep(rng.uniform(0, 0.03))
        writing = False

    async def chaos() -> None:
        nonlocal kills
        while writing:
            proc = start_relay(stack, tables.schema)
            assert proc.stdout is not None
            await asyncio.to_thread(proc.stdout.readline)  # "ready": connected, about to relay
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            proc.stdout.close()
            kills += 1

    await asyncio.gather(write(), chaos())
    assert len(committed) == 1000
    assert kills >= target_kills, "the relay was killed while events were being written"

    survivor = start_relay(stack, tables.schema)
    try:

        async def drained() -> bool:
            async with engine.connect() as conn:
                return await conn.scalar(select(func.count()).select_from(tables.outbox)) == 0

        await wait_until(drained, timeout_s=60)
    finally:
        survivor.kill()
        survivor.wait()
        if survivor.stdout is not None:
            survivor.stdout.close()

    arrived = await stream_events(js, f"gpulab.events.{tables.schema}.>")
    arrived_ids = [str(e["id"]) for e in arrived]
    assert len(arrived_ids) == len(set(arrived_ids)), "no event arrived twice"
    assert set(arrived_ids) == committed
    assert not set(arrived_ids) & rolled_back


def start_relay(stack: Stack, schema: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(RELAY), stack.database_url, stack.nats_url, schema, "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def test_rolled_back_transaction_leaves_nothing_to_publish(stack: Stack, engine: AsyncEngine, nc: NATS) -> None:
    js = nc.jetstream()
    await events.ensure_stream(js)
    tables = await scratch_schema(engine)
    sessions = db.session_factory(engine)

    async def doomed() -> None:
        async with sessions() as session, session.begin():
            await emit(session, tables.outbox, f"{tables.schema}.never", {}, source="test")
            raise Boom

    with pytest.raises(Boom):
        await doomed()
    relay = OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url)
    assert await relay.relay_once() == 0
    assert await stream_events(js, f"gpulab.events.{tables.schema}.>") == []


async def test_two_relays_on_one_schema_publish_each_event_once_in_order(
    stack: Stack, engine: AsyncEngine, nc: NATS
) -> None:
    js = nc.jetstream()
    await events.ensure_stream(js)
    tables = await scratch_schema(engine)
    sessions = db.session_factory(engine)
    for n in range(300):
        async with sessions() as session, session.begin():
            await emit(session, tables.outbox, f"{tables.schema}.n", {"n": n}, source="test")
    relays = [OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url, batch_size=16) for _ in range(2)]

    async def drain(relay: OutboxRelay) -> None:
        for _ in range(200):
            # As OutboxRelay.run does: a pass that timed out leaves its rows for the next pass.
            with contextlib.suppress(TimeoutError):
                await relay.relay_once()

    await asyncio.gather(*(drain(r) for r in relays))
    arrived = await stream_events(js, f"gpulab.events.{tables.schema}.>")
    assert [e["data"]["n"] for e in arrived] == list(range(300))  # type: ignore[index]


@pytest.mark.slow
async def test_acknowledged_events_survive_kill_9_of_nats_server(
    stack: Stack, engine: AsyncEngine, tmp_path: Path
) -> None:
    """sync_interval: always (see NATS_CONF): what JetStream acknowledged is on disk before the ack."""
    server = EmbeddedNats(tmp_path / "nats", free_port())
    server.start()
    try:
        nc = await connect_nats(server.url, "crash-test")
        js = nc.jetstream()
        await events.ensure_stream(js)
        tables = await scratch_schema(engine)
        sessions = db.session_factory(engine)
        for n in range(200):
            async with sessions() as session, session.begin():
                await emit(session, tables.outbox, f"{tables.schema}.n", {"n": n}, source="test")
        relay = OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url, batch_size=50)
        published = 0
        while (step := await relay.relay_once()) > 0:
            published += step
        assert published == 200
        server.kill()  # SIGKILL straight after the last acknowledgement
        await nc.close()
        server.start()
        nc = await connect_nats(server.url, "crash-test-after")
        arrived = await stream_events(nc.jetstream(), f"gpulab.events.{tables.schema}.>")
        await nc.close()
        assert sorted(e["data"]["n"] for e in arrived) == list(range(200))  # type: ignore[index]
    finally:
        server.stop()


async def test_a_relay_stopped_while_it_starts_leaves_no_connection_open(
    stack: Stack, engine: AsyncEngine, nc: NATS
) -> None:
    """A service stopped during its start cancels the relay while it opens its LISTEN connection; that
    connection must be closed, not left for the garbage collector (asyncpg then warns, and a test
    that happens to be running fails)."""
    js = nc.jetstream()
    tables = await scratch_schema(engine)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(40):
            relay = OutboxRelay(engine, js, tables.outbox, dsn=stack.database_url)
            task = asyncio.create_task(relay.run())
            await asyncio.sleep(i * 0.001)  # 0 to 39 ms: before, during and after connect and LISTEN
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            del relay, task
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []
