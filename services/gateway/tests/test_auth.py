"""Sessions through the gateway: the cookie, CSRF, 401/403, logout, and locking a user out."""

from __future__ import annotations

import asyncio
import time
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from gpulab_gateway.sessions import COOKIE_NAME

from .conftest import (
    API,
    MAX_FAILURES_PER_ACCOUNT,
    PASSWORD,
    Browser,
    Gateway,
    GatewayFactory,
    UserFactory,
    ed25519_key,
    log_in,
    unique_email,
)

SOME_ID = "00000000-0000-4000-8000-000000000000"
# Every route that needs a session, with a body that would be valid.
PROTECTED = [
    ("GET", "/auth/me", None),
    ("GET", "/users", None),
    ("GET", f"/users/{SOME_ID}", None),
    ("PATCH", f"/users/{SOME_ID}", {"status": "disabled"}),
    ("POST", "/users/invites", {"email": "someone@example.org", "role": "user"}),
    ("GET", "/me/ssh-keys", None),
    ("POST", "/me/ssh-keys", {"public_key": "ssh-ed25519 AAAA"}),
    ("DELETE", f"/me/ssh-keys/{SOME_ID}", None),
    ("GET", "/audit-log", None),
    ("GET", "/audit-log/verify", None),
]
ADMIN_ONLY = [(m, p, b) for m, p, b in PROTECTED if p.startswith(("/users", "/audit-log"))]
WRITES = [(m, p, b) for m, p, b in PROTECTED if m != "GET"]


def cookie_of(reply: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    jar.load(reply.headers["set-cookie"])
    assert COOKIE_NAME in jar
    return jar


def attributes(reply: httpx.Response) -> set[str]:
    """The Set-Cookie attributes, lower-cased, without values (`httponly`, `secure`, `path=/` ...)."""
    parts = [p.strip().lower() for p in reply.headers["set-cookie"].split(";")[1:]]
    return {p for p in parts if not p.startswith(("max-age", "expires"))}


async def test_login_sets_an_httponly_strict_cookie_that_is_not_secure_over_http(
    gateway: Gateway, admin_email: str
) -> None:
    async with gateway.browser() as client:
        reply = await client.post(f"{API}/auth/login", json={"email": admin_email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"user", "csrf_token"}
    assert body["user"]["email"] == admin_email
    assert body["user"]["role"] == "admin"
    assert reply.headers["cache-control"] == "no-store"
    cookie = cookie_of(reply)[COOKIE_NAME]
    assert attributes(reply) == {"httponly", "path=/", "samesite=strict"}
    # Max-Age runs to the session's absolute end (identity's default: 24 h).
    assert 23 * 3600 < int(cookie["max-age"]) <= 24 * 3600
    assert len(cookie.value) >= 32


async def test_over_https_the_session_cookie_is_host_prefixed_so_a_planted_one_is_ignored(
    make_gateway: GatewayFactory, admin_email: str, new_user: UserFactory
) -> None:
    # The attack: a sibling subdomain (or a plain-http page on the path) sets a cookie of the
    # session's name holding the attacker's own session, and the victim then works in the attacker's
    # account (adds their SSH key there). A `__Host-` cookie can only be set Secure, for Path=/,
    # without Domain, by the host itself: browsers refuse anything else under that name.
    gateway = make_gateway(public_url="https://gpulab.example.org", base_url="https://gw")
    async with gateway.browser() as client:
        reply = await client.post(f"{API}/auth/login", json={"email": admin_email, "password": PASSWORD})
        assert reply.status_code == 200
        jar: SimpleCookie = SimpleCookie()
        jar.load(reply.headers["set-cookie"])
        assert list(jar) == [f"__Host-{COOKIE_NAME}"]
        assert attributes(reply) == {"httponly", "path=/", "samesite=strict", "secure"}
        assert (await client.get(f"{API}/auth/me")).status_code == 200
        logged_out = await client.post(f"{API}/auth/logout", headers={"X-CSRF-Token": reply.json()["csrf_token"]})
        assert logged_out.status_code == 204
        assert logged_out.headers["set-cookie"].startswith(f"__Host-{COOKIE_NAME}=")

    attacker = await new_user()
    attacker_token = attacker.client.cookies[COOKIE_NAME]  # http: the unprefixed name
    async with gateway.browser() as victim:
        victim.cookies.set(COOKIE_NAME, attacker_token)
        assert (await victim.get(f"{API}/auth/me")).status_code == 401


async def test_unknown_email_and_wrong_password_get_the_same_401(gateway: Gateway, admin_email: str) -> None:
    async with gateway.browser() as client:
        unknown = await client.post(f"{API}/auth/login", json={"email": unique_email(), "password": PASSWORD})
        wrong = await client.post(f"{API}/auth/login", json={"email": admin_email, "password": "not the password"})
    for reply in (unknown, wrong):
        assert reply.status_code == 401
        assert reply.headers["content-type"] == "application/problem+json"
        assert "set-cookie" not in reply.headers
    assert unknown.json() == wrong.json()
    assert unknown.json()["code"] == "invalid_credentials"


async def test_too_many_failed_logins_get_429_with_retry_after(gateway: Gateway, new_user: UserFactory) -> None:
    user = await new_user()
    email = user.user["email"]
    async with gateway.browser() as client:
        for _ in range(MAX_FAILURES_PER_ACCOUNT):
            failed = await client.post(f"{API}/auth/login", json={"email": email, "password": "wrong password!"})
            assert failed.status_code == 401
        # Even the right password is not evaluated now.
        limited = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert limited.status_code == 429
    body = limited.json()
    assert body["code"] == "too_many_attempts"
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 3601
    assert body["retry_after_s"] == retry_after


async def test_bad_login_bodies_are_422(gateway: Gateway) -> None:
    async with gateway.browser() as client:
        malformed = await client.post(
            f"{API}/auth/login", content=b'{"email": ', headers={"content-type": "application/json"}
        )
        extra = await client.post(f"{API}/auth/login", json={"email": "a@b.c", "password": "x", "admin": True})
        as_form = await client.post(f"{API}/auth/login", data={"email": "a@b.c", "password": "x"})
    assert malformed.json()["code"] == "malformed_json"
    assert extra.status_code == 422
    assert extra.json()["code"] == "invalid_request"
    assert extra.json()["errors"][0]["loc"] == ["body", "admin"]
    # A cross-site HTML form cannot send JSON: a form-encoded body is refused.
    assert as_form.status_code == 422


async def test_me_is_the_user_with_the_csrf_token_in_a_header(admin: Browser) -> None:
    reply = await admin.get("/auth/me")
    assert reply.status_code == 200
    assert reply.json() == admin.user
    assert reply.headers["x-csrf-token"] == admin.csrf
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
async def test_every_protected_route_is_401_without_a_valid_session(
    gateway: Gateway, method: str, path: str, body: object
) -> None:
    async with gateway.browser() as client:
        without = await client.request(method, API + path, json=body)
        client.cookies.set(COOKIE_NAME, "not-a-session-token")
        made_up = await client.request(method, API + path, json=body, headers={"X-CSRF-Token": "x"})
        client.cookies.set(COOKIE_NAME, "x" * 5000)
        oversized = await client.request(method, API + path, json=body)
    for reply in (without, made_up, oversized):
        assert reply.status_code == 401, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
async def test_admin_routes_are_403_for_a_user(new_user: UserFactory, method: str, path: str, body: object) -> None:
    user = await new_user()
    reply = await user.client.request(method, API + path, json=body, headers=user.write_headers())
    assert reply.status_code == 403
    assert reply.json()["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_writes_without_the_right_csrf_token_are_403(
    admin: Browser, method: str, path: str, body: object, token: str | None
) -> None:
    headers = {} if token is None else {"X-CSRF-Token": token}
    reply = await admin.client.request(method, API + path, json=body, headers=headers)
    assert reply.status_code == 403
    assert reply.json()["code"] == "csrf_failed"


async def test_a_refused_csrf_token_changes_nothing(admin: Browser, new_user: UserFactory, tmp_path: Path) -> None:
    email = unique_email("csrf")
    invited = await admin.client.post(f"{API}/users/invites", json={"email": email}, headers={"X-CSRF-Token": "no"})
    assert invited.status_code == 403
    users = await admin.get("/users", params={"limit": 500, "status": "invited"})
    assert email not in {u["email"] for u in users.json()["items"]}

    user = await new_user()
    patched = await admin.client.patch(f"{API}/users/{user.user_id}", json={"status": "disabled"})
    assert patched.status_code == 403
    assert (await admin.get(f"/users/{user.user_id}")).json()["status"] == "active"
    assert (await user.get("/auth/me")).status_code == 200

    public, _ = ed25519_key(tmp_path, "csrf@test")
    added = await user.client.post(f"{API}/me/ssh-keys", json={"public_key": public})
    assert added.status_code == 403
    assert (await user.get("/me/ssh-keys")).json()["items"] == []
    key = (await user.post("/me/ssh-keys", json={"public_key": public})).json()
    removed = await user.client.delete(f"{API}/me/ssh-keys/{key['id']}", headers={"X-CSRF-Token": admin.csrf})
    assert removed.status_code == 403, "another session's token is not this session's"
    assert [k["id"] for k in (await user.get("/me/ssh-keys")).json()["items"]] == [key["id"]]

    logout = await user.client.post(f"{API}/auth/logout")
    assert logout.status_code == 403
    assert "set-cookie" not in logout.headers
    assert (await user.get("/auth/me")).status_code == 200


async def test_logout_ends_the_session_on_the_server_even_while_cached(
    make_gateway: GatewayFactory, admin_email: str
) -> None:
    # A long cache: the refusal below cannot come from an entry that merely expired.
    gateway = make_gateway(session_cache_s=10)
    other_replica = make_gateway(session_cache_s=0)
    async with gateway.browser() as client:
        browser = await log_in(client, admin_email)
        token = client.cookies[COOKIE_NAME]
        assert (await browser.get("/auth/me")).status_code == 200  # cached now

        reply = await browser.post("/auth/logout")
        assert reply.status_code == 204
        cleared = cookie_of(reply)[COOKIE_NAME]
        assert cleared.value == ""
        assert cleared["max-age"] == "0"
        assert COOKIE_NAME not in client.cookies

    for replica in (gateway, other_replica):
        async with replica.browser() as replay:
            replay.cookies.set(COOKIE_NAME, token)
            refused = await replay.get(f"{API}/auth/me")
            assert refused.status_code == 401, "the old cookie must not open the session anywhere"
            again = await replay.post(f"{API}/auth/logout", headers={"X-CSRF-Token": browser.csrf})
            assert again.status_code == 204, "logging out twice is fine"


async def test_logout_without_a_session_is_204_and_clears_the_cookie(gateway: Gateway) -> None:
    async with gateway.browser() as client:
        reply = await client.post(f"{API}/auth/logout")
    assert reply.status_code == 204
    assert cookie_of(reply)[COOKIE_NAME]["max-age"] == "0"


async def test_logging_in_again_starts_a_new_session_and_ends_the_old_one(
    gateway: Gateway, admin_email: str, new_user: UserFactory
) -> None:
    other = await new_user()
    async with gateway.browser() as client:
        first = await log_in(client, admin_email)
        old_token = client.cookies[COOKIE_NAME]
        # Someone else logs in on the same browser: a new session, and the old cookie is dead.
        second = await log_in(client, other.user["email"])
        assert client.cookies[COOKIE_NAME] != old_token
        assert second.csrf != first.csrf
        assert (await second.get("/auth/me")).json()["email"] == other.user["email"]
    async with gateway.browser() as replay:
        replay.cookies.set(COOKIE_NAME, old_token)
        assert (await replay.get(f"{API}/auth/me")).status_code == 401


async def test_a_disabled_user_is_out_within_the_cache_ttl_on_every_replica(
    make_gateway: GatewayFactory, gateway: Gateway, admin: Browser, new_user: UserFactory
) -> None:
    ttl_s = 2.0  # the default GPULAB_SESSION_CACHE_S
    other_replica = make_gateway(session_cache_s=ttl_s)
    user = await new_user(on=other_replica)
    async with gateway.browser() as here:
        here.cookies.set(COOKIE_NAME, user.client.cookies[COOKIE_NAME])
        assert (await here.get(f"{API}/auth/me")).status_code == 200
        assert (await user.get("/auth/me")).status_code == 200  # cached on the other replica

        disabled = await admin.patch(f"/users/{user.user_id}", json={"status": "disabled"})
        assert disabled.status_code == 200
        assert disabled.json()["status"] == "disabled"
        started = time.monotonic()
        # The replica that disabled the user forgets its sessions at once.
        assert (await here.get(f"{API}/auth/me")).status_code == 401
    # The other one trusts its cache at most ttl_s.
    while (await user.get("/auth/me")).status_code == 200:
        assert time.monotonic() - started <= ttl_s + 0.5, "still in after the cache TTL"
        await asyncio.sleep(0.1)
    assert (await user.get("/me/ssh-keys")).status_code == 401

    enabled = await admin.patch(f"/users/{user.user_id}", json={"status": "active"})
    assert enabled.json()["status"] == "active"
    assert (await user.get("/auth/me")).status_code == 401, "disabling ended the sessions for good"
    async with other_replica.browser() as client:
        await log_in(client, user.user["email"])


async def test_nul_characters_are_refused_with_422_not_a_server_error(gateway: Gateway, admin: Browser) -> None:
    async with gateway.browser() as client:
        login = await client.post(f"{API}/auth/login", json={"email": "\u0000", "password": "x" * 12})
    assert login.status_code == 422
    assert login.json()["code"] == "invalid_request"
    for query in ({"action": "\x00"}, {"target_id": "a\x00b"}):
        listed = await admin.get("/audit-log", params=query)
        assert listed.status_code == 422, listed.text
