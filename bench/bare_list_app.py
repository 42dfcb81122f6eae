"""The baseline for bench/lists.py: the same page of users, straight from PostgreSQL to JSON, with no
session check, no NATS hop and no validation (python -m uvicorn bench.bare_list_app:app)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

QUERY = """
SELECT u.id, u.email, u.name, u.role, u.status, u.created_at,
       EXISTS (SELECT 1 FROM identity.ssh_keys k WHERE k.user_id = u.id) AS has_ssh_key
FROM identity.users u ORDER BY u.created_at, u.id LIMIT $1
"""


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["BENCH_DATABASE_URL"], min_size=2, max_size=5)
    yield
    await app.state.pool.close()


async def users(request: Request) -> JSONResponse:
    limit = int(request.query_params.get("limit", "50"))
    rows = await request.app.state.pool.fetch(QUERY, limit)
    items: list[dict[str, Any]] = [
        {**dict(r), "id": str(r["id"]), "created_at": r["created_at"].isoformat()} for r in rows
    ]
    return JSONResponse({"items": items, "next_cursor": None})


app = Starlette(routes=[Route("/users", users)], lifespan=lifespan)
