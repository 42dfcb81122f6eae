"""Login, sessions and logout. Never commits; the handler owns the transaction.

Failed logins are limited per client address and per (account, address), counted in the database
so that every identity replica sees the same counts (auth/repository.py). Never per account alone:
anyone can type someone's email, so a limit on the account alone would let anyone lock its owner
out, and a correct password from an address that has not failed is always evaluated. The address is
the one the gateway resolved (X-Forwarded-For only from GPULAB_TRUSTED_PROXIES). The reply to a
failure is the same whether the email is unknown, the password wrong or the account disabled, and
takes as long (a dummy hash is verified when there is no account).
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.identity import LoginReply, LoginRequest, SessionReply
from gpulab_identity import tokens
from gpulab_identity.audit import repository as audit
from gpulab_identity.auth import repository
from gpulab_identity.config import Settings
from gpulab_identity.errors import InvalidCredentials, TooManyAttempts, Unauthenticated
from gpulab_identity.passwords import Passwords
from gpulab_identity.users import repository as users_repo

WINDOW = timedelta(hours=1)
# An IPv6 client is routinely given a whole /64 (RFC 6177; SLAAC picks the host half itself): counted
# address by address, one client would hold 2^64 fresh budgets. IPv4 addresses count one by one.
IPV6_CLIENT_PREFIX = 64
# A session's last_seen_at is written at most this often: a write per request would make every API
# call a database write, and the idle timeout is measured in minutes anyway.
TOUCH_EVERY = timedelta(seconds=60)
FAILED = "invalid email or password"


@dataclass(frozen=True)
class LoginOutcome:
    """Login's result; failures are returned, not raised, so the handler can commit their record."""

    reply: LoginReply | None = None
    error: Exception | None = None


def address_key(client_ip: str | None) -> str | None:
    """What the limits count a client address by: itself, or its /64 for IPv6 (kept as given if not an IP)."""
    if client_ip is None:
        return None
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


async def _retry_after(session: AsyncSession, client_net: str | None, account: str | None, limit: int) -> int | None:
    """Seconds until another attempt is evaluated, or None when under the limit."""
    now = datetime.now(UTC)
    recent = await repository.recent_failures(
        session, client_net=client_net, account=account, since=now - WINDOW, limit=limit
    )
    if len(recent) < limit:
        return None
    oldest_counted = recent[-1]
    return max(1, int((oldest_counted + WINDOW - now).total_seconds()) + 1)


async def login(session: AsyncSession, req: LoginRequest, settings: Settings, passwords: Passwords) -> LoginOutcome:
    account = req.email.strip().lower()
    client_net = address_key(req.client_ip)
    for limited_account, limit in (
        (None, settings.login_max_failures_per_ip),
        (account, settings.login_max_failures_per_account),
    ):
        wait = await _retry_after(session, client_net, limited_account, limit)
        if wait is not None:
            return LoginOutcome(
                error=TooManyAttempts(
                    "too many failed logins from this address; try again later", details={"retry_after_s": wait}
                )
            )
    row = await users_repo.get_credentials(session, account)
    ok = await passwords.verify(row.password_hash if row else None, req.password)
    if not ok or row is None or row.status != "active":
        await repository.record_failure(session, account, req.client_ip, client_net)
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
    await repository.start_session(
        session,
        session_id=session_id,
        user_id=row.id,
        token_hash=tokens.digest(token),
        csrf_token=csrf,
        now=now,
        expires_at=expires_at,
        client_ip=req.client_ip,
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
    row = await repository.live_session(session, tokens.digest(token), now=now, seen_since=now - idle)
    user = await users_repo.get(session, row.user_id) if row else None
    if row is None or user is None or user.status != "active":
        raise Unauthenticated("not logged in, or the session has ended")
    if now - row.last_seen_at > TOUCH_EVERY:
        await repository.touch_session(session, row.id, now)
    return SessionReply(user=user, session_id=row.id, csrf_token=row.csrf_token, expires_at=row.expires_at)


async def logout(session: AsyncSession, token: str) -> None:
    ended = await repository.end_session(session, tokens.digest(token))
    if ended is not None:
        await audit.append(
            session,
            action="auth.logout",
            actor_id=ended.user_id,
            actor_email=await users_repo.email_of(session, ended.user_id),
            target_type="session",
            target_id=str(ended.id),
        )


async def prune(session: AsyncSession) -> None:
    """Forget failures older than the window and sessions long over; run now and then."""
    now = datetime.now(UTC)
    await repository.prune_failures(session, now - WINDOW)
    await repository.prune_sessions(session, now - timedelta(days=7))
