"""Async SQLAlchemy (asyncpg) helpers. Each service owns one PostgreSQL schema and sees only it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import MetaData, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gpulab_core.settings import redact

Req = TypeVar("Req")
Rep = TypeVar("Rep")

# Constraint names follow one convention so that migrations are predictable and diffable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def async_url(url: str) -> str:
    """`postgresql://...` as the settings carry it → the asyncpg dialect SQLAlchemy needs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {redact(repr(url))}")  # never the password in a message


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# What asyncpg raises when the server went away under a connection, or is not taking connections yet:
# the connection was lost or refused (OSError), the protocol was cut mid-operation, the server is
# shutting down, crashed or still recovering (SQLSTATE class 08 and 57P01-57P03).
_CONNECTION_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


def lost_database(exc: BaseException) -> bool:
    """Whether `exc` says the database was unreachable (restarting, killed, refusing connections),
    not that the request or the code was wrong: the caller may try again (`service_unavailable`).
    SQLAlchemy wraps asyncpg's errors, so the whole chain of causes is looked at."""
    return any(
        isinstance(e, _CONNECTION_LOST) or (isinstance(e, DBAPIError) and e.connection_invalidated)
        for e in _causes(exc)
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def split_ssl(url: str) -> tuple[str, str]:
    """(URL without ssl options, asyncpg `ssl` mode). libpq's `sslmode` is honoured; asyncpg's own
    default negotiation is not used: loopback gets `disable`, anything else `prefer`, unless set."""
    parsed = make_url(async_url(url))
    query = dict(parsed.query)
    mode = query.pop("sslmode", None) or query.pop("ssl", None)
    if isinstance(mode, tuple):
        mode = mode[-1]
    if not mode:
        mode = "disable" if (parsed.host or "127.0.0.1") in _LOOPBACK else "prefer"
    return parsed.set(query=query).render_as_string(hide_password=False), str(mode)


def create_engine(url: str, *, schema: str | None, app_name: str, pool_size: int = 5, **kw: Any) -> AsyncEngine:
    server_settings = {"application_name": app_name}
    if schema:
        # Unqualified names resolve to the service's own schema only; others are invisible by default.
        server_settings["search_path"] = str(schema)  # metadata gives a quoted_name; asyncpg wants str
    bare, ssl = split_ssl(url)
    if "poolclass" not in kw:
        kw.update(pool_size=pool_size, max_overflow=pool_size)
    return create_async_engine(
        bare, pool_pre_ping=True, connect_args={"server_settings": server_settings, "timeout": 10, "ssl": ssl}, **kw
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def transactional(sessions: async_sessionmaker[AsyncSession]) -> Transactional:
    """The edge's one transaction per unit of work: `tx = transactional(sessions)`, then `tx(rule)` is
    the endpoint that runs `rule(session, request)` in a transaction of its own, committed when the
    rule returns and rolled back when it raises (the rules only flush: CONVENTIONS.md)."""
    return Transactional(sessions)


class Transactional:
    """What `transactional` returns. A class, not a closure, so that `__call__` is generic at each use:
    one `tx` wraps rules of any request and reply types and keeps both. Whatever the sessionmaker
    gives its sessions (identity's audit key in `info`) comes with each one, so one edge serves all."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    def __call__(self, rule: Callable[[AsyncSession, Req], Awaitable[Rep]]) -> Callable[[Req], Awaitable[Rep]]:
        sessions = self._sessions

        async def run(req: Req) -> Rep:
            async with sessions() as session, session.begin():
                return await rule(session, req)

        return run


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
