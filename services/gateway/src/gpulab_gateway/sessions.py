"""Browser sessions: the cookie, the CSRF check, and the dependencies that resolve the caller.

identity owns sessions; the gateway asks it (`auth.session`) and trusts a confirmed answer for
`GPULAB_SESSION_CACHE_S` (2 s by default) so that a page's burst of requests costs one round trip.
The cache is keyed by a SHA-256 of the token, never the token itself, so a heap dump or a debug
print of it holds nothing that opens a session.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Depends, Request, Response, Security
from fastapi.requests import HTTPConnection
from fastapi.security import APIKeyCookie, APIKeyHeader

from gpulab_core import errors
from gpulab_core.contracts import identity as contract
from gpulab_gateway import problems, upstream
from gpulab_gateway.config import Settings

COOKIE_NAME = "gpulab_session"
# Over https the cookie is `__Host-gpulab_session`: browsers accept a cookie of that name only
# Secure, Path=/ and without Domain, from the host itself, so neither a sibling subdomain nor a
# plain-http page can plant one (a session fixation). Over http (the local run) no prefix can hold,
# as `__Host-` demands Secure.
HOST_PREFIX = "__Host-"
CSRF_HEADER = "X-CSRF-Token"
# Methods that change nothing, so they need no CSRF token (RFC 9110 "safe" methods).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Strict: the app is a single-page app whose API calls are same-site fetches, which carry Strict
# cookies; no flow needs the cookie on a navigation that starts on another site (docs/api.md).
SAME_SITE: Literal["strict"] = "strict"
# identity's `SessionRequest.session_token` limit: anything longer is not a session of ours.
TOKEN_MAX_CHARS = 200


def cookie_name(settings: Settings) -> str:
    """The session cookie's name: `__Host-gpulab_session` over https, `gpulab_session` over http."""
    return HOST_PREFIX + COOKIE_NAME if settings.secure_cookies else COOKIE_NAME


class SessionCookie(APIKeyCookie):
    """The session cookie under the name this deployment uses (`cookie_name`); the other is ignored.

    OpenAPI's apiKey scheme holds one name: it says `gpulab_session` and its description the rest.
    """

    async def __call__(self, request: HTTPConnection) -> str | None:
        settings: Settings = request.app.state.settings
        return self.check_api_key(request.cookies.get(cookie_name(settings)))


session_cookie = SessionCookie(
    name=COOKIE_NAME,
    scheme_name="session",
    auto_error=False,
    description="The session cookie `POST /auth/login` sets (HttpOnly, SameSite=Strict; when the public URL is "
    "https it is Secure and named `__Host-gpulab_session`).",
)
csrf_header = APIKeyHeader(
    name=CSRF_HEADER,
    scheme_name="csrf",
    auto_error=False,
    description="The `csrf_token` of the session (from `POST /auth/login`, or the `X-CSRF-Token` header "
    "of `GET /auth/me`); required on every POST, PATCH, PUT and DELETE made with the session cookie.",
)


@dataclass(frozen=True)
class Session:
    """What the gateway knows of the caller's session."""

    key: str  # token_key(token): how the cache and logout name this session
    user: contract.User
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class Cached:
    """A cache hit: the session, or None when it was ended through this gateway."""

    session: Session | None


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionCache:
    """An LRU of sessions identity confirmed, each trusted for at most `ttl_s` (and never past its end).

    A session ended here (logout) leaves a marker instead, for `ttl_s + grace_s`: a lookup that was
    already in flight when the session ended must not put it back. Not thread-safe; one event loop.
    """

    def __init__(
        self, ttl_s: float, max_entries: int, *, grace_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._grace_s = grace_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Session | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Cached | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline, session = entry
        if self._clock() >= deadline:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return Cached(session)

    def put(self, session: Session) -> None:
        if self._ttl_s <= 0:
            return
        current = self._entries.get(session.key)
        if current is not None and current[1] is None and self._clock() < current[0]:
            return  # ended while the lookup was in flight
        left = (session.expires_at - datetime.now(UTC)).total_seconds()
        ttl = min(self._ttl_s, left)
        if ttl <= 0:
            return
        self._store(session.key, (self._clock() + ttl, session))

    def end(self, key: str) -> None:
        """The session is over: refuse it here without asking identity, and never re-cache it."""
        if self._ttl_s > 0:
            self._store(key, (self._clock() + self._ttl_s + self._grace_s, None))

    def forget(self, key: str) -> None:
        """Ask identity next time (the session's user changed)."""
        self._entries.pop(key, None)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Ask identity next time for every session of this user (disabled, or role changed)."""
        stale = [k for k, (_, s) in self._entries.items() if s is not None and s.user.id == user_id]
        for key in stale:
            del self._entries[key]

    def _store(self, key: str, entry: tuple[float, Session | None]) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def cache_of(request: Request) -> SessionCache:
    cache: SessionCache = request.app.state.session_cache
    return cache


async def resolve(request: Request, token: str | None) -> Session | None:
    """The session this token opens, or None (no token, unknown, expired, idle, or user disabled)."""
    if not token or len(token) > TOKEN_MAX_CHARS:
        return None
    cache = cache_of(request)
    key = token_key(token)
    cached = cache.get(key)
    if cached is not None:
        return cached.session
    try:
        reply = await upstream.identity(
            request, "auth.session", contract.SessionRequest(session_token=token), contract.SessionReply
        )
    except errors.RemoteError as exc:
        if exc.code == contract.UNAUTHENTICATED:
            return None
        raise
    session = Session(key=key, user=reply.user, csrf_token=reply.csrf_token, expires_at=reply.expires_at)
    cache.put(session)
    return session


def check_csrf(request: Request, session: Session) -> None:
    sent = request.headers.get(CSRF_HEADER)
    # Constant time: how much of a guess matched must not show in the response time.
    if sent is None or not hmac.compare_digest(sent.encode("latin-1"), session.csrf_token.encode("utf-8")):
        raise errors.GpulabError(f"the {CSRF_HEADER} header is missing or wrong", code=problems.CSRF_FAILED)


async def authenticated(request: Request, token: Annotated[str | None, Security(session_cookie)]) -> Session:
    """The caller's session (401 without one); on a state-changing method, also the CSRF check (403).

    The CSRF check lives here, not only in `writer`, so that no route that changes something can
    forget it: every route that reads the session through any of these dependencies is covered.
    """
    session = await resolve(request, token)
    if session is None:
        raise errors.GpulabError("log in first", code=problems.UNAUTHENTICATED)
    request.state.session = session  # who it was, should this request be refused (problems.py)
    if request.method not in SAFE_METHODS:
        check_csrf(request, session)
    return session


async def writer(
    session: Annotated[Session, Depends(authenticated)],
    _csrf: Annotated[str | None, Security(csrf_header)],  # declares the header in OpenAPI; checked above
) -> Session:
    return session


async def admin(session: Annotated[Session, Depends(authenticated)]) -> Session:
    if session.user.role != "admin":
        raise errors.GpulabError("only an admin may do this", code=problems.FORBIDDEN)
    return session


async def admin_writer(
    session: Annotated[Session, Depends(admin)],
    _csrf: Annotated[str | None, Security(csrf_header)],
) -> Session:
    return session


# What a route declares; the `*Write` ones are for POST, PATCH and DELETE.
UserRead = Annotated[Session, Depends(authenticated)]
UserWrite = Annotated[Session, Depends(writer)]
AdminRead = Annotated[Session, Depends(admin)]
AdminWrite = Annotated[Session, Depends(admin_writer)]


def set_cookie(response: Response, settings: Settings, token: str, expires_at: datetime) -> None:
    max_age = max(0, int((expires_at - datetime.now(UTC)).total_seconds()))
    # `__Host-` over https: Secure, Path=/ and no Domain, as that prefix demands.
    response.set_cookie(
        cookie_name(settings),
        token,
        max_age=max_age,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite=SAME_SITE,
    )


def clear_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings), path="/", secure=settings.secure_cookies, httponly=True, samesite=SAME_SITE
    )
