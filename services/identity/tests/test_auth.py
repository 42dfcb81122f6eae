"""Login, sessions, logout, rate limits, disabled users."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import text

from gpulab_core import db
from gpulab_core.errors import RemoteError
from gpulab_core.rpc import subject
from gpulab_devstack.testing import Stack
from gpulab_identity.auth import service as auth

from .conftest import ADMIN_PASSWORD, Identity, unique_email
from .test_invites import invite, latest_token

PASSWORD = "a perfectly fine password"


async def make_user(identity: Identity, stack: Stack, role: str = "user") -> tuple[str, str]:
    email = unique_email()
    user = await invite(identity, email, role)
    token = await latest_token(identity, stack, email)
    await identity.call("invites.accept", {"token": token, "name": "Test", "password": PASSWORD})
    return str(user["id"]), email


async def raw_login(identity: Identity, email: str, password: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"email": email, "password": password, "client_ip": "203.0.113.9"}).encode()
    msg = await identity.runtime.nc.request(subject("identity", "auth.login"), body, timeout=30)
    return msg.data, dict(msg.headers or {})


async def test_unknown_email_and_wrong_password_get_the_very_same_reply(identity: Identity, migrated: Stack) -> None:
    _, email = await make_user(identity, migrated)
    unknown = await raw_login(identity, unique_email("ghost"), PASSWORD)
    wrong = await raw_login(identity, email, PASSWORD + "x")
    assert unknown == wrong, "byte for byte, headers included"
    assert json.loads(unknown[0])["error"]["code"] == "invalid_credentials"


async def test_login_gives_a_new_session_each_time_and_logout_ends_it(identity: Identity, migrated: Stack) -> None:
    _, email = await make_user(identity, migrated)
    first = await identity.call("auth.login", {"email": email, "password": PASSWORD})
    second = await identity.call("auth.login", {"email": email, "password": PASSWORD})
    assert first["session_token"] != second["session_token"]
    assert first["csrf_token"] != second["csrf_token"]
    me = await identity.call("auth.session", {"session_token": first["session_token"]})
    assert me["user"]["email"] == email
    assert me["csrf_token"] == first["csrf_token"]
    await identity.call("auth.logout", {"session_token": first["session_token"]})
    with pytest.raises(RemoteError) as gone:
        await identity.call("auth.session", {"session_token": first["session_token"]})
    assert gone.value.code == "unauthenticated"
    # the other session is unaffected
    assert (await identity.call("auth.session", {"session_token": second["session_token"]}))["user"]


async def test_idle_and_absolute_timeouts_end_a_session(identity: Identity, migrated: Stack) -> None:
    _, email = await make_user(identity, migrated)
    idle = await identity.call("auth.login", {"email": email, "password": PASSWORD})
    old = await identity.call("auth.login", {"email": email, "password": PASSWORD})
    engine = db.create_engine(migrated.database_url, schema=None, app_name="test")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE identity.sessions SET last_seen_at = now() - interval '3 hours' WHERE id = :i"),
                {"i": (await identity.call("auth.session", {"session_token": idle["session_token"]}))["session_id"]},
            )
            await conn.execute(
                text("UPDATE identity.sessions SET expires_at = now() - interval '1 second' WHERE id = :i"),
                {"i": (await identity.call("auth.session", {"session_token": old["session_token"]}))["session_id"]},
            )
    finally:
        await engine.dispose()
    for token in (idle["session_token"], old["session_token"]):
        with pytest.raises(RemoteError) as exc:
            await identity.call("auth.session", {"session_token": token})
        assert exc.value.code == "unauthenticated"


async def test_disabled_user_cannot_log_in_and_their_sessions_end(identity: Identity, migrated: Stack) -> None:
    user_id, email = await make_user(identity, migrated)
    session = await identity.call("auth.login", {"email": email, "password": PASSWORD})
    await identity.call("users.update", {"actor_id": str(identity.admin_id), "id": user_id, "status": "disabled"})
    with pytest.raises(RemoteError) as out:
        await identity.call("auth.session", {"session_token": session["session_token"]})
    assert out.value.code == "unauthenticated"
    disabled, _ = await raw_login(identity, email, PASSWORD)
    unknown, _ = await raw_login(identity, unique_email("ghost"), PASSWORD)
    assert disabled == unknown, "a disabled account is not told apart from a wrong password"
    await identity.call("users.update", {"actor_id": str(identity.admin_id), "id": user_id, "status": "active"})
    assert (await identity.call("auth.login", {"email": email, "password": PASSWORD}))["user"]


async def test_failed_logins_are_limited_per_account_and_address_with_retry_after(
    identity: Identity, migrated: Stack
) -> None:
    _, email = await make_user(identity, migrated)
    attacker = {"email": email, "password": "wrong wrong wrong", "client_ip": "198.51.100.20"}
    for _ in range(5):  # the fixture's limit: evaluated up to it
        with pytest.raises(RemoteError) as bad:
            await identity.call("auth.login", attacker)
        assert bad.value.code == "invalid_credentials"
    with pytest.raises(RemoteError) as limited:  # one over: refused unevaluated, even the right password
        await identity.call("auth.login", {**attacker, "password": PASSWORD})
    assert limited.value.code == "too_many_attempts"
    assert 0 < limited.value.details["retry_after_s"] <= 3601
    # The owner, from any other address, is not locked out by someone else's failures.
    assert await identity.call("auth.login", {"email": email, "password": PASSWORD, "client_ip": "203.0.113.20"})
    # A caller that names no address is counted as one address of its own.
    assert await identity.call("auth.login", {"email": email, "password": PASSWORD})


async def test_an_ipv6_client_is_counted_by_its_64(identity: Identity, migrated: Stack) -> None:
    _, email = await make_user(identity, migrated)
    for host in range(1, 6):  # five addresses of one /64: the fixture's limit
        with pytest.raises(RemoteError):
            await identity.call(
                "auth.login", {"email": email, "password": "wrong wrong wrong", "client_ip": f"2001:db8:1:2::{host}"}
            )
    with pytest.raises(RemoteError) as limited:
        await identity.call("auth.login", {"email": email, "password": PASSWORD, "client_ip": "2001:db8:1:2:ffff::9"})
    assert limited.value.code == "too_many_attempts"
    assert await identity.call("auth.login", {"email": email, "password": PASSWORD, "client_ip": "2001:db8:1:3::1"})


def test_address_key_is_the_address_or_its_ipv6_64() -> None:
    assert auth.address_key("198.51.100.7") == "198.51.100.7"
    assert auth.address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert auth.address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert auth.address_key("not-an-ip") == "not-an-ip"
    assert auth.address_key(None) is None


async def test_last_admin_cannot_be_disabled_or_demoted(identity: Identity) -> None:
    admins = await identity.call("users.list", {"role": "admin", "status": "active", "limit": 500})
    others = [u["id"] for u in admins["items"] if u["id"] != str(identity.admin_id)]
    for other in others:  # earlier tests may have made admins: leave exactly one
        await identity.call("users.update", {"actor_id": str(identity.admin_id), "id": other, "status": "disabled"})
    for change in ({"status": "disabled"}, {"role": "user"}):
        with pytest.raises(RemoteError) as exc:
            await identity.call(
                "users.update", {"actor_id": str(identity.admin_id), "id": str(identity.admin_id), **change}
            )
        assert exc.value.code == "last_admin"
    login = await identity.call("auth.login", {"email": identity.admin_email, "password": ADMIN_PASSWORD})
    assert login["user"]["role"] == "admin"


async def test_concurrent_logins_each_get_their_own_session(identity: Identity, migrated: Stack) -> None:
    _, email = await make_user(identity, migrated)
    replies = await asyncio.gather(
        *(identity.call("auth.login", {"email": email, "password": PASSWORD}) for _ in range(5))
    )
    assert len({r["session_token"] for r in replies}) == 5
    assert all(uuid.UUID(r["user"]["id"]) for r in replies)


async def test_long_passwords_are_not_truncated(identity: Identity, migrated: Stack) -> None:
    email = unique_email()
    await invite(identity, email)
    token = await latest_token(identity, migrated, email)
    password = "é" * 100 + "🔑" * 27 + "a"  # 128 characters, 331 bytes in UTF-8
    await identity.call("invites.accept", {"token": token, "name": "Long", "password": password})
    assert (await identity.call("auth.login", {"email": email, "password": password}))["user"]
    for near_miss in (password[:-1] + "b", password[:72], password[:-1]):
        with pytest.raises(RemoteError) as exc:
            await identity.call("auth.login", {"email": email, "password": near_miss})
        assert exc.value.code == "invalid_credentials"
