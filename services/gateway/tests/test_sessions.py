"""The in-process session cache: bounded, short-lived, keyed by a hash, and final about logouts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gpulab_core.contracts.identity import User
from gpulab_gateway.sessions import Session, SessionCache, token_key

from .conftest import API, Gateway, log_in


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session(token: str, *, user_id: uuid.UUID | None = None, lasts: timedelta = timedelta(hours=1)) -> Session:
    user = User(
        id=user_id or uuid.uuid4(),
        email="a@example.org",
        name="A",
        role="user",
        status="active",
        has_ssh_key=False,
        created_at=datetime.now(UTC),
    )
    return Session(key=token_key(token), user=user, csrf_token="c", expires_at=datetime.now(UTC) + lasts)


def test_an_entry_is_trusted_for_the_ttl_only() -> None:
    clock = Clock()
    cache = SessionCache(2.0, 100, clock=clock)
    s = session("t1")
    cache.put(s)
    assert cache.get(s.key) is not None
    clock.now += 1.9
    hit = cache.get(s.key)
    assert hit is not None
    assert hit.session == s
    clock.now += 0.2
    assert cache.get(s.key) is None
    assert len(cache) == 0


def test_an_entry_never_outlives_its_session() -> None:
    clock = Clock()
    cache = SessionCache(10.0, 100, clock=clock)
    ending = session("t", lasts=timedelta(seconds=1))
    cache.put(ending)
    clock.now += 1.5
    assert cache.get(ending.key) is None
    over = session("u", lasts=timedelta(seconds=-1))
    cache.put(over)
    assert cache.get(over.key) is None


def test_the_least_recently_used_entry_goes_first_when_full() -> None:
    cache = SessionCache(2.0, 3)
    a, b, c, d = (session(t) for t in "abcd")
    for s in (a, b, c):
        cache.put(s)
    assert cache.get(a.key) is not None  # a is now the most recently used
    cache.put(d)
    assert len(cache) == 3
    assert cache.get(b.key) is None
    assert all(cache.get(s.key) is not None for s in (a, c, d))


def test_an_ended_session_is_refused_and_not_put_back_by_a_late_lookup() -> None:
    clock = Clock()
    cache = SessionCache(2.0, 100, grace_s=5.0, clock=clock)
    s = session("t")
    cache.put(s)
    cache.end(s.key)
    ended = cache.get(s.key)
    assert ended is not None
    assert ended.session is None
    cache.put(s)  # a lookup that started before the logout answers now
    assert cache.get(s.key) == ended
    clock.now += 7.1
    assert cache.get(s.key) is None


def test_forgetting_a_user_drops_all_of_their_sessions_only() -> None:
    cache = SessionCache(2.0, 100)
    user = uuid.uuid4()
    mine = [session(t, user_id=user) for t in ("x", "y")]
    other = session("z")
    for s in [*mine, other]:
        cache.put(s)
    cache.forget_user(user)
    assert [cache.get(s.key) for s in mine] == [None, None]
    assert cache.get(other.key) is not None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = SessionCache(0, 100)
    s = session("t")
    cache.put(s)
    cache.end(s.key)
    assert cache.get(s.key) is None


async def test_the_cache_is_keyed_by_a_hash_of_the_token(gateway: Gateway, admin_email: str) -> None:
    async with gateway.browser() as client:
        await log_in(client, admin_email)
        token = client.cookies["gpulab_session"]
        assert (await client.get(f"{API}/auth/me")).status_code == 200
    cache: SessionCache = gateway.app.state.session_cache
    assert token_key(token) != token
    assert len(token_key(token)) == 64
    assert cache.get(token_key(token)) is not None
    assert cache.get(token) is None
