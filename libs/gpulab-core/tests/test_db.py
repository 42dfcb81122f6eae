"""The edge's transaction (`db.transactional`) against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gpulab_core import db
from gpulab_devstack.testing import Stack


class Boom(Exception):
    pass


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    eng = db.create_engine(stack.database_url, schema=None, app_name="db-test")
    yield eng
    await eng.dispose()


@pytest.fixture
async def notes(engine: AsyncEngine) -> AsyncIterator[Table]:
    """A table of its own in a scratch schema, dropped afterwards."""
    schema = "tx_" + uuid.uuid4().hex[:8]
    table = Table("notes", MetaData(schema=schema), Column("id", Integer, primary_key=True), Column("body", Text))
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(table.metadata.create_all)
    yield table
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


async def bodies(engine: AsyncEngine, table: Table) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(table.c.body).order_by(table.c.id))).scalars())


async def test_a_rule_that_returns_is_committed_and_its_reply_passed_back(engine: AsyncEngine, notes: Table) -> None:
    tx = db.transactional(db.session_factory(engine))

    async def write(session: AsyncSession, body: str) -> int:
        await session.execute(notes.insert().values(body=body))
        await session.execute(notes.insert().values(body=body + "!"))
        return len(body)

    assert await tx(write)("hello") == 5
    # Seen from another connection: committed, not merely flushed.
    assert await bodies(engine, notes) == ["hello", "hello!"]


async def test_a_rule_that_raises_leaves_nothing_half_written(engine: AsyncEngine, notes: Table) -> None:
    tx = db.transactional(db.session_factory(engine))

    async def write_then_fail(session: AsyncSession, body: str) -> None:
        await session.execute(notes.insert().values(body=body))
        await session.flush()
        assert await session.scalar(select(func.count()).select_from(notes)) == 1  # written inside
        raise Boom

    with pytest.raises(Boom):
        await tx(write_then_fail)("lost")
    assert await bodies(engine, notes) == []

    async def write(session: AsyncSession, body: str) -> None:
        await session.execute(notes.insert().values(body=body))

    # The same edge goes on working after a rollback: each call is a transaction of its own.
    await tx(write)("kept")
    assert await bodies(engine, notes) == ["kept"]


async def test_each_session_carries_what_the_sessionmaker_gives_it(engine: AsyncEngine) -> None:
    # identity keys its audit log this way (audit.repository.keyed): the edge must not lose it.
    sessions = db.session_factory(engine)
    sessions.configure(info={"key": b"k"})

    async def read(session: AsyncSession, name: str) -> object:
        assert session.in_transaction()
        return session.info[name]

    assert await db.transactional(sessions)(read)("key") == b"k"


async def test_a_connection_the_server_dropped_is_told_apart_from_a_bad_statement(engine: AsyncEngine) -> None:
    """What a PostgreSQL restart does to a connection in use (pg_terminate_backend: the same FATAL a
    shutdown sends) is `lost_database`; a statement the server refuses is not: that is a bug."""
    async with engine.connect() as victim, engine.connect() as other:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as lost:
            await victim.execute(text("SELECT 1"))
    assert db.lost_database(lost.value)
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError, match="no_such_table") as bad:
            await conn.execute(text("SELECT * FROM no_such_table"))
    assert not db.lost_database(bad.value)
    assert not db.lost_database(Boom("a bug"))
