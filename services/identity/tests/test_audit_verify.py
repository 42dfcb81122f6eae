"""`audit.verify`: the audit log's hash chain checked over NATS, in parts for a long log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text

from gpulab_core import db, pagination
from gpulab_core.contracts import identity as c
from gpulab_core.errors import RemoteError
from gpulab_devstack.testing import Stack
from gpulab_identity.audit import service as audit

from .conftest import Identity
from .test_auth import make_user


async def row_count(stack: Stack) -> int:
    engine = db.create_engine(stack.database_url, schema=None, app_name="audit-test")
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT count(*) FROM identity.audit_log")) or 0)
    finally:
        await engine.dispose()


@asynccontextmanager
async def forged(stack: Stack, offset: int, column: str, value: Any) -> AsyncIterator[tuple[int, uuid.UUID]]:
    """Row number `offset` (0: the oldest) with `column` set to `value` by the schema's owner, who can get
    past the append-only trigger; put back afterwards, so later tests see an intact chain."""
    engine = db.create_engine(stack.database_url, schema=None, app_name="owner")
    select = f"SELECT seq, id, {column} FROM identity.audit_log ORDER BY seq LIMIT 1 OFFSET :o"  # noqa: S608
    update = f"UPDATE identity.audit_log SET {column} = :v WHERE seq = :s"  # noqa: S608
    async with engine.begin() as conn:
        seq, row_id, original = (await conn.execute(text(select), {"o": offset})).one()

    async def put(v: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(update), {"s": seq, "v": v})

    try:
        await put(value)
        yield seq, row_id
    finally:
        await put(original)
        await engine.dispose()


async def test_an_intact_log_is_valid_with_every_row_checked(identity: Identity, migrated: Stack) -> None:
    await make_user(identity, migrated)
    before = await row_count(migrated)
    result = await identity.call("audit.verify")
    assert result["valid"] is True
    assert before <= result["checked"] <= await row_count(migrated)
    assert (result["first_bad_id"], result["problem"], result["next_cursor"]) == (None, None, None)
    assert result["checked_at"]


async def test_a_row_altered_by_the_owner_makes_the_log_invalid_and_is_named(
    identity: Identity, migrated: Stack
) -> None:
    await make_user(identity, migrated)
    async with forged(migrated, 2, "action", "nothing.happened") as (_, row_id):
        result = await identity.call("audit.verify")
        assert result["valid"] is False
        assert result["first_bad_id"] == str(row_id)
        assert result["problem"] == "row_altered"
        assert result["checked"] == 2, "the rows before it are intact"
        assert result["next_cursor"] is None
    assert (await identity.call("audit.verify"))["valid"] is True


async def test_a_row_whose_link_was_rewritten_breaks_the_chain_there(identity: Identity, migrated: Stack) -> None:
    await make_user(identity, migrated)
    async with forged(migrated, 3, "prev_hash", bytes(32)) as (_, row_id):
        result = await identity.call("audit.verify")
        assert (result["valid"], result["first_bad_id"], result["problem"]) == (False, str(row_id), "chain_broken")
        assert result["checked"] == 3


async def test_a_long_log_is_checked_in_parts_each_going_on_where_the_last_stopped(
    identity: Identity, migrated: Stack
) -> None:
    for _ in range(2):
        await make_user(identity, migrated)
    total = await row_count(migrated)
    assert identity.runtime.sessions is not None
    parts: list[c.AuditVerification] = []
    cursor: str | None = None
    while True:
        async with identity.runtime.sessions() as session, session.begin():
            # No time at all: one batch of 2 rows per call.
            part = await audit.verify_chain(session, c.VerifyAuditRequest(cursor=cursor), budget_s=0, batch=2)
        parts.append(part)
        if part.next_cursor is None:
            break
        assert part.valid is None, "not finished: neither valid nor invalid yet"
        assert part.checked == 2 * len(parts)
        cursor = part.next_cursor
    assert parts[-1].valid is True
    assert parts[-1].checked >= total
    assert len(parts) >= total // 2


async def test_a_cursor_is_checked_and_its_hash_is_what_the_next_row_must_link_to(identity: Identity) -> None:
    for bad in ("garbage", pagination.encode(1, "zz", 1), pagination.encode(-1, bytes(32).hex(), 0)):
        with pytest.raises(RemoteError) as refused:
            await identity.call("audit.verify", {"cursor": bad})
        assert refused.value.code == "invalid_request"
    # A cursor that claims row 1's hash was all zeros: row 2 does not link to that.
    result = await identity.call("audit.verify", {"cursor": pagination.encode(1, bytes(32).hex(), 1)})
    assert (result["valid"], result["problem"], result["checked"]) == (False, "chain_broken", 1)
