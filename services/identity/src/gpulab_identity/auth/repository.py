"""Every SQL statement of logins: failed logins (recorded, counted per address and per (account,
address), pruned) and sessions (started, found by token, touched, ended, pruned)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_identity.models import login_failures, sessions


@dataclass(frozen=True)
class LiveSession:
    """A session that has not ended, expired or idled out."""

    id: uuid.UUID
    user_id: uuid.UUID
    csrf_token: str
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class EndedSession:
    id: uuid.UUID
    user_id: uuid.UUID


def _from(client_net: str | None) -> ColumnElement[bool]:
    # An unknown address (a caller that sent none) is one address of its own, not "any address".
    column = login_failures.c.client_net
    return column.is_(None) if client_net is None else column == client_net


async def record_failure(session: AsyncSession, account: str, client_ip: str | None, client_net: str | None) -> None:
    await session.execute(login_failures.insert().values(account=account, client_ip=client_ip, client_net=client_net))


async def recent_failures(
    session: AsyncSession, *, client_net: str | None, account: str | None, since: datetime, limit: int
) -> Sequence[datetime]:
    """When the newest `limit` failures since `since` happened, from this address (and at this account,
    when one is given), newest first."""
    where = [_from(client_net), login_failures.c.at > since]
    if account is not None:
        where.append(login_failures.c.account == account)
    rows = await session.execute(
        select(login_failures.c.at).where(and_(*where)).order_by(login_failures.c.at.desc()).limit(limit)
    )
    return rows.scalars().all()


async def prune_failures(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(login_failures).where(login_failures.c.at < before))


async def start_session(
    session: AsyncSession,
    *,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    token_hash: bytes,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
    client_ip: str | None,
) -> None:
    await session.execute(
        sessions.insert().values(
            id=session_id,
            user_id=user_id,
            token_hash=token_hash,
            csrf_token=csrf_token,
            last_seen_at=now,
            expires_at=expires_at,
            client_ip=client_ip,
        )
    )


async def live_session(
    session: AsyncSession, token_hash: bytes, *, now: datetime, seen_since: datetime
) -> LiveSession | None:
    """The session of this token if it has not ended, is not past its expiry, and was seen after `seen_since`."""
    query = select(
        sessions.c.id, sessions.c.user_id, sessions.c.csrf_token, sessions.c.last_seen_at, sessions.c.expires_at
    ).where(
        sessions.c.token_hash == token_hash,
        sessions.c.ended_at.is_(None),
        sessions.c.expires_at > now,
        sessions.c.last_seen_at > seen_since,
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None
    return LiveSession(
        id=row.id,
        user_id=row.user_id,
        csrf_token=row.csrf_token,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
    )


async def touch_session(session: AsyncSession, session_id: uuid.UUID, now: datetime) -> None:
    await session.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now))


async def end_session(session: AsyncSession, token_hash: bytes) -> EndedSession | None:
    """End the session of this token; None when there is none, or it had ended already."""
    query = (
        update(sessions)
        .where(sessions.c.token_hash == token_hash, sessions.c.ended_at.is_(None))
        .values(ended_at=func.now())
        .returning(sessions.c.id, sessions.c.user_id)
    )
    row = (await session.execute(query)).first()
    return EndedSession(id=row.id, user_id=row.user_id) if row else None


async def end_sessions_of(session: AsyncSession, user_id: uuid.UUID) -> None:
    """End every session of the user that has not ended."""
    await session.execute(
        update(sessions).where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None)).values(ended_at=func.now())
    )


async def prune_sessions(session: AsyncSession, expired_before: datetime) -> None:
    await session.execute(delete(sessions).where(sessions.c.expires_at < expired_before))
