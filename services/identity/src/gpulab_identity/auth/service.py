"""Login, sessions and logout. Never commits; the handler owns the transaction.

Login failures are rate-limited per account and per client address, counted in the database so
that every identity replica sees the same counts. The reply to a failure is the same whether the
email is unknown, the password wrong or the account disabled, and takes as long (a dummy hash is
verified when there is no account).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.identity import LoginReply, LoginRequest, SessionReply
from gpulab_identity import tokens
from gpulab_identity.audit import repository as audit
from gpulab_identity.config import Settings
from gpulab_identity.errors import InvalidCredentials, TooManyAttempts, Unauthenticated
from gpulab_identity.models import login_failures, sessions
from gpulab_identity.passwords import Passwords
from gpulab_identity.users import repository as users_repo

WINDOW = timedelta(hours=1)
# A session's last_seen_at is written at most this often: a write per request would make every API
# call a database write, and the idle timeout is measured in minutes anyway.
TOUCH_EVERY = timedelta(seconds=60)
FAILED = "invalid email or password"


@dataclass(frozen=True)
class LoginOutcome:
    """Login's result; failures are returned, not raised, so the handler can commit their record."""

    reply: LoginReply | None = None
    error: Exception | None = None


async def _retry_after(session: AsyncSession, kind: str, value: str, limit: int) -> int | None:
    """Seconds until another attempt is evaluated, or None when under the limit."""
    since = datetime.now(UTC) - WINDOW
    col = login_failures.c.account if kind == "account" else login_failures.c.client_ip
    recent = (
        (
            await session.execute(
                select(login_failures.c.at)
                .where(col == value, login_failures.c.at > since)
                .order_by(login_failures.c.at.desc())
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if len(recent) < limit:
        return None
    oldest_counted = recent[-1]
    return max(1, int((oldest_counted + WINDOW - datetime.now(UTC)).total_seconds()) + 1)


async def login(session: AsyncSession, req: LoginRequest, settings: Settings, passwords: Passwords) -> LoginOutcome:
    account = req.email.strip().lower()
    for kind, value, limit in (
        ("account", account, settings.login_max_failures_per_account),
        ("client_ip", req.client_ip, settings.login_max_failures_per_ip),
    ):
        if value is None:
            continue
        wait = await _retry_after(session, kind, value, limit)
        if wait is not None:
            return LoginOutcome(
                error=TooManyAttempts("too many failed logins; try again later", details={"retry_after_s": wait})
            )
    row = await users_repo.get_credentials(session, account)
    ok = await passwords.verify(row.password_hash if row else None, req.password)
    if not ok or row is None or row.status != "active":
        await session.execute(login_failures.insert().values(account=account, client_ip=req.client_ip))
        await audit.append(
            session,
            action="auth.login_failed",
            actor_id=row.id if row else None,
            actor_email=row.email if row else None,
            target_type="user",
            target_id=str(row.id) if row else None,
            details={
                "email": req.email[:320],
                "client_ip": req.client_ip,
                "reason": "no_account" if row is None else ("password" if not ok else row.status),
            },
        )
        return LoginOutcome(error=InvalidCredentials(FAILED))
    token, csrf = tokens.new_token(), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    expires_at = now + timedelta(hours=settings.session_absolute_hours)
    session_id = uuid.uuid4()
    # Always a new session (and id) at login: a session fixed before login is never promoted.
    await session.execute(
        sessions.insert().values(
            id=session_id,
            user_id=row.id,
            token_hash=tokens.digest(token),
            csrf_token=csrf,
            last_seen_at=now,
            expires_at=expires_at,
            client_ip=req.client_ip,
        )
    )
    await audit.append(
        session,
        action="auth.login",
        actor_id=row.id,
        actor_email=row.email,
        target_type="session",
        target_id=str(session_id),
        details={"client_ip": req.client_ip},
    )
    user = await users_repo.get(session, row.id)
    assert user is not None
    return LoginOutcome(reply=LoginReply(session_token=token, csrf_token=csrf, user=user, expires_at=expires_at))


async def current(session: AsyncSession, token: str, settings: Settings) -> SessionReply:
    now = datetime.now(UTC)
    idle = timedelta(minutes=settings.session_idle_minutes)
    row = (
        await session.execute(
            select(sessions).where(
                sessions.c.token_hash == tokens.digest(token),
                sessions.c.ended_at.is_(None),
                sessions.c.expires_at > now,
                sessions.c.last_seen_at > now - idle,
            )
        )
    ).first()
    user = await users_repo.get(session, row.user_id) if row else None
    if row is None or user is None or user.status != "active":
        raise Unauthenticated("not logged in, or the session has ended")
    if now - row.last_seen_at > TOUCH_EVERY:
        await session.execute(update(sessions).where(sessions.c.id == row.id).values(last_seen_at=now))
    return SessionReply(user=user, session_id=row.id, csrf_token=row.csrf_token, expires_at=row.expires_at)


async def logout(session: AsyncSession, token: str) -> None:
    ended = (
        await session.execute(
            update(sessions)
            .where(sessions.c.token_hash == tokens.digest(token), sessions.c.ended_at.is_(None))
            .values(ended_at=func.now())
            .returning(sessions.c.id, sessions.c.user_id)
        )
    ).first()
    if ended is not None:
        user = await users_repo.get(session, ended.user_id)
        await audit.append(
            session,
            action="auth.logout",
            actor_id=ended.user_id,
            actor_email=user.email if user else None,
            target_type="session",
            target_id=str(ended.id),
        )


async def prune(session: AsyncSession) -> None:
    """Forget failures older than the window and sessions long over; run now and then."""
    now = datetime.now(UTC)
    await session.execute(delete(login_failures).where(login_failures.c.at < now - WINDOW))
    await session.execute(delete(sessions).where(and_(sessions.c.expires_at < now - timedelta(days=7))))
