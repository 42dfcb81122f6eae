"""Invites: single use under concurrency, expiry, replacement, and the event notify sends mail from."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text, update

from gpulab_core import db
from gpulab_core.errors import RemoteError
from gpulab_devstack.testing import Stack, invite_token
from gpulab_identity.models import invites

from .conftest import Identity, unique_email


async def invite(identity: Identity, email: str, role: str = "user") -> Any:
    return await identity.call("invites.create", {"actor_id": str(identity.admin_id), "email": email, "role": role})


async def token_for(stack: Stack, email: str) -> str:
    """The token as notify receives it: from the identity.user_invited event in the outbox or stream."""
    engine = db.create_engine(stack.database_url, schema=None, app_name="test")
    try:
        for _ in range(100):
            async with engine.connect() as conn:
                rows = (await conn.execute(text("SELECT payload FROM identity.outbox ORDER BY seq DESC"))).all()
            for (payload,) in rows:
                if payload["type"] == "identity.user_invited" and payload["data"]["email"] == email:
                    return invite_token(payload["data"])
            break
    finally:
        await engine.dispose()
    raise AssertionError("no invite event in the outbox (already relayed?)")


async def latest_token(identity: Identity, stack: Stack, email: str) -> str:
    """Reads the stream, since the relay may already have published the outbox row."""
    js = identity.runtime.js
    sub = await js.pull_subscribe("gpulab.events.identity.user_invited", stream="GPULAB_EVENTS")
    found: str | None = None
    try:
        while True:
            try:
                msgs = await sub.fetch(200, timeout=1)
            except Exception:
                break
            for m in msgs:
                data = json.loads(m.data)["data"]
                if data["email"] == email:
                    found = invite_token(data)
                await m.ack()
    finally:
        await sub.unsubscribe()
    if found is None:
        found = await token_for(stack, email)
    return found


async def test_invite_creates_an_invited_user_and_an_event_with_the_token(identity: Identity, migrated: Stack) -> None:
    email = unique_email()
    user = await invite(identity, email)
    assert user["status"] == "invited"
    assert user["email"] == email
    assert user["has_ssh_key"] is False
    assert user["invite_delivery"]["state"] == "pending"
    token = await latest_token(identity, migrated, email)
    assert len(token) >= 43, "256 random bits, URL-safe"
    engine = db.create_engine(migrated.database_url, schema=None, app_name="test")
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(text("SELECT token_hash FROM identity.invites"))).scalars().all()
    finally:
        await engine.dispose()
    assert token.encode() not in [bytes(s) for s in stored], "only a hash is stored"
    looked_up = await identity.call("invites.lookup", {"token": token})
    assert looked_up["email"] == email


async def test_hundred_concurrent_accepts_create_exactly_one_account(identity: Identity, migrated: Stack) -> None:
    email = unique_email()
    await invite(identity, email)
    token = await latest_token(identity, migrated, email)

    async def accept(i: int) -> str:
        try:
            await identity.call("invites.accept", {"token": token, "name": f"N{i}", "password": "a long password 123"})
        except RemoteError as exc:
            return exc.code
        return "ok"

    results = await asyncio.gather(*(accept(i) for i in range(100)))
    assert results.count("ok") == 1
    assert results.count("invite_used") == 99
    users = await identity.call("users.list", {"status": "active", "limit": 500})
    assert [u["email"] for u in users["items"]].count(email) == 1
    with pytest.raises(RemoteError) as used:
        await identity.call("invites.lookup", {"token": token})
    assert used.value.code == "invite_used"


async def test_expired_invite_is_refused_with_invite_expired(identity: Identity, migrated: Stack) -> None:
    email = unique_email()
    user = await invite(identity, email)
    token = await latest_token(identity, migrated, email)
    engine = db.create_engine(migrated.database_url, schema=None, app_name="test")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(invites)
                .where(invites.c.user_id == uuid.UUID(str(user["id"])))
                .values(expires_at=text("now() - interval '1 second'"))
            )
    finally:
        await engine.dispose()
    for op, payload in [
        ("invites.lookup", {"token": token}),
        ("invites.accept", {"token": token, "name": "X", "password": "a long password 123"}),
    ]:
        with pytest.raises(RemoteError) as exc:
            await identity.call(op, payload)
        assert exc.value.code == "invite_expired"


async def test_reinvite_replaces_the_old_token(identity: Identity, migrated: Stack) -> None:
    email = unique_email()
    await invite(identity, email)
    first = await latest_token(identity, migrated, email)
    again = await invite(identity, email, role="admin")
    assert again["role"] == "admin"
    second = await latest_token(identity, migrated, email)
    assert first != second
    with pytest.raises(RemoteError) as old:
        await identity.call("invites.lookup", {"token": first})
    assert old.value.code == "invite_expired"
    assert (await identity.call("invites.lookup", {"token": second}))["email"] == email


async def test_bad_password_does_not_use_up_the_invite(identity: Identity, migrated: Stack) -> None:
    email = unique_email()
    await invite(identity, email)
    token = await latest_token(identity, migrated, email)
    for bad, code in [
        ("short", "invalid_password"),
        ("x" * 129, "invalid_password"),
        ("twelve chars\x07!", "invalid_password"),
        ("twelve chars\x00!", "invalid_request"),
    ]:
        with pytest.raises(RemoteError) as exc:
            await identity.call("invites.accept", {"token": token, "name": "A", "password": bad})
        assert exc.value.code == code
    user = await identity.call("invites.accept", {"token": token, "name": "Ådà", "password": "pässwörd-ünïcödé-🔑"})
    assert user["status"] == "active"
    login = await identity.call("auth.login", {"email": email.upper(), "password": "pässwörd-ünïcödé-🔑"})
    assert login["user"]["email"] == email


async def test_unknown_token_is_not_found_and_an_active_email_cannot_be_invited(identity: Identity) -> None:
    with pytest.raises(RemoteError) as exc:
        await identity.call("invites.lookup", {"token": "nope"})
    assert exc.value.code == "not_found"
    with pytest.raises(RemoteError) as dup:
        await invite(identity, identity.admin_email)
    assert dup.value.code == "user_already_active"


async def test_concurrent_invites_of_one_new_address_make_one_user(identity: Identity) -> None:
    email = unique_email()
    replies = await asyncio.gather(*(invite(identity, email) for _ in range(10)), return_exceptions=True)
    users_made = [r for r in replies if not isinstance(r, BaseException)]
    assert len(users_made) == len(replies), [r for r in replies if isinstance(r, BaseException)]
    assert len({u["id"] for u in users_made}) == 1
    users = await identity.call("users.list", {"status": "invited", "limit": 500})
    assert [u["email"] for u in users["items"]].count(email) == 1


def strings_in(value: Any) -> list[str]:
    """Every string anywhere in a JSON value: what a reader of the stream could try as a token."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings_in(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


async def test_invite_event_on_the_stream_carries_no_usable_token(identity: Identity) -> None:
    """Issue 12: the stream keeps events 30 days and every service reads it. Its reader tries every
    string of the invite's event as the token; none opens the invite, which is still pending."""
    email = unique_email()
    await invite(identity, email)
    js = identity.runtime.js
    sub = await js.pull_subscribe("gpulab.events.identity.user_invited", stream="GPULAB_EVENTS")
    event: dict[str, Any] | None = None
    try:
        while event is None:
            for m in await sub.fetch(200, timeout=10):
                body = json.loads(m.data)
                if body["data"]["email"] == email:
                    event = body
                await m.ack()
    finally:
        await sub.unsubscribe()
    for candidate in strings_in(event):
        with pytest.raises(RemoteError) as refused:
            await identity.call("invites.lookup", {"token": candidate})
        assert refused.value.code in {"not_found", "invalid_request"}, f"the event's {candidate!r} opens the invite"
    # Sealed, not left out: notify's key opens it, for this invite only.
    token = invite_token(event["data"])
    assert (await identity.call("invites.lookup", {"token": token}))["email"] == email
