"""Opaque keyset cursors: base64url of a small JSON list, checked on the way back in."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, Table, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.errors import InvalidRequest


def encode(*values: Any) -> str:
    raw = json.dumps([str(v) if not isinstance(v, int) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("the cursor is not valid", details={"field": "cursor"}) from None
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidRequest("the cursor is not valid", details={"field": "cursor"})
    return values


async def oldest_first(
    session: AsyncSession, query: Select[Any], table: Table, cursor: str | None, limit: int
) -> tuple[list[Row[Any]], str | None]:
    """One page of `query` over `table`, oldest first by (created_at, id), which stays stable while
    rows are added; and the cursor of the next page (None on the last)."""
    created_at, row_id = table.c.created_at, table.c.id
    if cursor:
        created, last_id = decode(cursor, 2)
        try:
            after = tuple_(literal(datetime.fromisoformat(created)), literal(uuid.UUID(last_id)))
        except (TypeError, ValueError):
            raise InvalidRequest("the cursor is not valid", details={"field": "cursor"}) from None
        query = query.where(tuple_(created_at, row_id) > after)
    rows = list((await session.execute(query.order_by(created_at, row_id).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode(rows[-1].created_at.isoformat(), rows[-1].id) if more and rows else None
