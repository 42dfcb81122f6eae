"""Accounts through the gateway: invites, users, SSH keys and the audit log, on the real identity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nats.aio.client import Client as NATS

from .conftest import (
    API,
    PASSWORD,
    Browser,
    Gateway,
    UserFactory,
    ed25519_key,
    invite_token,
    log_in,
    unique_email,
)


async def test_invite_accept_login_and_manage_ssh_keys(
    nc: NATS, gateway: Gateway, admin: Browser, tmp_path: Path
) -> None:
    email = unique_email("flow")
    invited, token = await invite_token(nc, admin, email)
    assert invited["email"] == email
    assert invited["status"] == "invited"
    assert invited["role"] == "user"
    assert invited["has_ssh_key"] is False
    assert set(invited) >= {"id", "email", "name", "role", "status", "has_ssh_key", "created_at", "invite_delivery"}

    async with gateway.browser() as anonymous:
        lookup = await anonymous.get(f"{API}/auth/invites/{token}")
        assert lookup.status_code == 200
        assert lookup.json()["email"] == email
        assert datetime.fromisoformat(lookup.json()["expires_at"]) > datetime.now(UTC) + timedelta(hours=1)

        weak = await anonymous.post(f"{API}/auth/invites/{token}/accept", json={"name": "Grace", "password": "short"})
        assert weak.status_code == 422
        assert weak.json()["code"] == "invalid_password"

        accepted = await anonymous.post(
            f"{API}/auth/invites/{token}/accept", json={"name": "Grace Hopper", "password": PASSWORD}
        )
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["status"] == "active"
        assert accepted.json()["name"] == "Grace Hopper"
        assert accepted.json()["id"] == invited["id"]
        assert "set-cookie" not in accepted.headers, "accepting does not log in"

        again = await anonymous.post(f"{API}/auth/invites/{token}/accept", json={"name": "X", "password": PASSWORD})
        assert again.status_code == 410
        assert again.json()["code"] == "invite_used"
        used = await anonymous.get(f"{API}/auth/invites/{token}")
        assert used.status_code == 410
        assert used.json()["code"] == "invite_used"
        unknown = await anonymous.get(f"{API}/auth/invites/no-such-token")
        assert unknown.status_code == 404

    async with gateway.browser() as client:
        user = await log_in(client, email)
        assert user.user["role"] == "user"
        assert (await user.get("/me/ssh-keys")).json() == {"items": [], "next_cursor": None}

        public, fingerprint = ed25519_key(tmp_path, "grace@laptop")
        added = await user.post("/me/ssh-keys", json={"public_key": public})
        assert added.status_code == 201, added.text
        key = added.json()
        assert set(key) == {"id", "type", "fingerprint", "comment", "created_at"}
        assert key["type"] == "ssh-ed25519"
        assert key["fingerprint"] == fingerprint
        assert key["comment"] == "grace@laptop"
        assert (await user.get("/auth/me")).json()["has_ssh_key"] is True, "no stale cached user"

        listed = await user.get("/me/ssh-keys")
        assert listed.json() == {"items": [key], "next_cursor": None}

        duplicate = await user.post("/me/ssh-keys", json={"public_key": public})
        assert duplicate.status_code == 409
        assert duplicate.json()["code"] == "duplicate_ssh_key"
        broken = await user.post("/me/ssh-keys", json={"public_key": "ssh-ed25519 not-base64!"})
        assert broken.status_code == 422
        assert broken.json()["code"] == "invalid_ssh_key"
        assert broken.json()["reason"] == "malformed"

        # Someone else's key is "not found", like a key that does not exist.
        admins_view = await admin.delete(f"/me/ssh-keys/{key['id']}")
        assert admins_view.status_code == 404

        deleted = await user.delete(f"/me/ssh-keys/{key['id']}")
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert (await user.get("/me/ssh-keys")).json()["items"] == []
        assert (await user.get("/auth/me")).json()["has_ssh_key"] is False
        assert (await user.delete(f"/me/ssh-keys/{key['id']}")).status_code == 404
        assert (await user.delete("/me/ssh-keys/not-a-uuid")).status_code == 422


async def test_inviting_an_active_account_is_409_and_a_bad_email_422(admin: Browser, new_user: UserFactory) -> None:
    user = await new_user()
    again = await admin.post("/users/invites", json={"email": user.user["email"]})
    assert again.status_code == 409
    assert again.json()["code"] == "user_already_active"
    bad = await admin.post("/users/invites", json={"email": "not an email"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_request"
    role = await admin.post("/users/invites", json={"email": unique_email(), "role": "root"})
    assert role.status_code == 422


async def test_admin_lists_pages_gets_and_changes_users(admin: Browser, new_user: UserFactory) -> None:
    first, second = await new_user(), await new_user()
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "status": "active", "role": "user"}
        if cursor:
            params["cursor"] = cursor
        page = await admin.get("/users", params=params)
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 2
        assert {u["status"] for u in body["items"]} <= {"active"}
        seen += [u["id"] for u in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert {first.user_id, second.user_id} <= set(seen)
    assert len(seen) == len(set(seen)), "no user on two pages"

    got = await admin.get(f"/users/{first.user_id}")
    assert got.status_code == 200
    assert got.json()["email"] == first.user["email"]
    assert (await admin.get(f"/users/{uuid.uuid4()}")).status_code == 404
    assert (await admin.get("/users/not-a-uuid")).status_code == 422
    assert (await admin.get("/users", params={"limit": 501})).status_code == 422
    assert (await admin.get("/users", params={"limit": 0})).status_code == 422

    promoted = await admin.patch(f"/users/{first.user_id}", json={"role": "admin"})
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    # The promoted user's own cached session follows at once on this replica.
    assert (await first.get("/users", params={"limit": 1})).status_code == 200

    nothing = await admin.patch(f"/users/{first.user_id}", json={})
    assert nothing.status_code == 422
    extra = await admin.patch(f"/users/{first.user_id}", json={"role": "user", "email": "x@example.org"})
    assert extra.status_code == 422
    invited = await admin.patch(f"/users/{uuid.uuid4()}", json={"status": "disabled"})
    assert invited.status_code == 404


async def test_audit_log_is_filtered_and_paged(admin: Browser, new_user: UserFactory) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    user = await new_user()
    log = await admin.get(
        "/audit-log", params={"actor_id": admin.user_id, "action": "user.invited", "since": before.isoformat()}
    )
    assert log.status_code == 200, log.text
    items = log.json()["items"]
    assert user.user_id in {e["target_id"] for e in items}
    assert {(e["action"], e["actor_id"]) for e in items} == {("user.invited", admin.user_id)}
    assert all(datetime.fromisoformat(e["at"]) >= before for e in items)
    entry = next(e for e in items if e["target_id"] == user.user_id)
    assert set(entry) == {"id", "at", "actor_id", "actor_email", "action", "target_type", "target_id", "details"}
    assert entry["actor_email"] == admin.user["email"]
    assert entry["target_type"] == "user"

    by_target = await admin.get("/audit-log", params={"target_type": "user", "target_id": user.user_id})
    assert {"user.invited", "user.invite_accepted"} <= {e["action"] for e in by_target.json()["items"]}
    logins = await admin.get("/audit-log", params={"action": "auth.login", "actor_id": user.user_id, "limit": 1})
    assert len(logins.json()["items"]) == 1

    newest_first = await admin.get("/audit-log", params={"limit": 3})
    page = newest_first.json()
    assert len(page["items"]) == 3
    assert page["next_cursor"] is not None
    following = await admin.get("/audit-log", params={"limit": 3, "cursor": page["next_cursor"]})
    assert not {e["id"] for e in page["items"]} & {e["id"] for e in following.json()["items"]}

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await admin.get("/audit-log", params={"since": future})).json() == {"items": [], "next_cursor": None}
    naive = await admin.get("/audit-log", params={"since": "2025-01-01T00:00:00"})
    assert naive.status_code == 422, "times carry their offset (RFC 3339)"
    assert (await admin.get("/audit-log", params={"actor_id": "me"})).status_code == 422


async def test_a_session_that_is_not_an_admin_sees_nothing_of_the_audit_log(new_user: UserFactory) -> None:
    user = await new_user()
    reply = await user.get("/audit-log")
    assert reply.status_code == 403


async def test_an_admin_verifies_the_audit_chain_and_nobody_else_may(
    gateway: Gateway, admin: Browser, new_user: UserFactory
) -> None:
    user = await new_user()
    reply = await admin.get("/audit-log/verify")
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert set(result) == {"valid", "checked", "first_bad_id", "problem", "next_cursor", "checked_at"}
    assert result["valid"] is True
    assert result["checked"] >= 3, "at least the admin's invite, the user's invite, acceptance and login"
    assert (result["first_bad_id"], result["problem"], result["next_cursor"]) == (None, None, None)
    assert datetime.fromisoformat(result["checked_at"]).tzinfo is not None
    refused = await user.get("/audit-log/verify")
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    async with gateway.browser() as anonymous:
        nobody = await anonymous.get(f"{API}/audit-log/verify")
    assert (nobody.status_code, nobody.json()["code"]) == (401, "unauthenticated")
    bad = await admin.get("/audit-log/verify", params={"cursor": "not-a-cursor"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_request")


async def test_accepting_with_a_token_that_is_too_long_is_422(gateway: Gateway) -> None:
    async with gateway.browser() as client:
        reply = await client.post(f"{API}/auth/invites/{'t' * 201}/accept", json={"name": "A", "password": PASSWORD})
    assert reply.status_code == 422


async def test_an_invite_to_a_lab_internal_domain_is_accepted(admin: Browser) -> None:
    # A self-hosted lab often mails on its own network's names: mDNS's .local, .test, .lan,
    # .internal (ICANN's private-use TLD). Names that reach no mailbox stay refused.
    tag = uuid.uuid4().hex[:10]
    for domain in ("lab.internal", "lab.local", "gpu.lab.test", "lab.lan"):
        created = await admin.post("/users/invites", json={"email": f"ada-{tag}@{domain}"})
        assert created.status_code == 201, (domain, created.text)
        assert created.json()["email"] == f"ada-{tag}@{domain}"
    for address in (f"ada-{tag}@localhost", f"ada-{tag}@lab.invalid", f"ada-{tag}@x.onion", f"ada-{tag}@lab"):
        refused = await admin.post("/users/invites", json={"email": address})
        assert refused.status_code == 422, (address, refused.text)
