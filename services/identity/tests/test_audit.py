"""The audit log: what is recorded, filters and pages, append-only for the service's role, tamper evidence."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gpulab_core import db
from gpulab_devstack.testing import Stack

from .conftest import Identity, unique_email
from .test_auth import PASSWORD, make_user


def gpulab(stack: Stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GPULAB_DATABASE_URL": stack.app_database_url}
    return subprocess.run(
        [sys.executable, "-m", "gpulab_identity.admin_cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_admin_and_security_actions_are_recorded_with_actor_and_target(
    identity: Identity, migrated: Stack
) -> None:
    user_id, email = await make_user(identity, migrated)
    await identity.call("users.update", {"actor_id": str(identity.admin_id), "id": user_id, "role": "admin"})
    page = await identity.call("audit.list", {"target_id": user_id, "limit": 50})
    actions = [e["action"] for e in page["items"]]
    assert actions == ["user.role_changed", "user.invite_accepted", "user.invited"], "newest first"
    role_change = page["items"][0]
    assert role_change["actor_id"] == str(identity.admin_id)
    assert role_change["actor_email"] == identity.admin_email
    assert role_change["details"] == {"email": email, "from": "user", "to": "admin"}
    logins = await identity.call("audit.list", {"action": "auth.login", "actor_id": user_id})
    assert logins["items"] == [], "make_user does not log in"
    await identity.call("auth.login", {"email": email, "password": PASSWORD})
    logins = await identity.call("audit.list", {"action": "auth.login", "actor_id": user_id})
    assert len(logins["items"]) == 1


async def test_cursor_pages_through_everything_once(identity: Identity, migrated: Stack) -> None:
    for _ in range(3):
        await make_user(identity, migrated)
    seen: list[str] = []
    cursor = None
    while True:
        page = await identity.call("audit.list", {"limit": 4, **({"cursor": cursor} if cursor else {})})
        seen.extend(e["id"] for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = await identity.call("audit.list", {"limit": 500})
    assert seen == [e["id"] for e in everything["items"]]
    assert len(seen) == len(set(seen)) >= 9


async def test_the_services_role_cannot_change_or_remove_audit_rows(identity: Identity, migrated: Stack) -> None:
    await make_user(identity, migrated)
    engine = db.create_engine(migrated.app_database_url, schema=None, app_name="attacker")
    try:
        for statement in (
            "UPDATE identity.audit_log SET action = 'nothing.happened'",
            "DELETE FROM identity.audit_log",
            "TRUNCATE identity.audit_log",
            "ALTER TABLE identity.audit_log DISABLE TRIGGER audit_log_append_only",
            "SET session_replication_role = replica",
        ):
            with pytest.raises(DBAPIError) as refused:
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
            assert "permission denied" in str(refused.value) or "must be owner" in str(refused.value), statement
        async with engine.begin() as conn:  # reading and appending are what the service does
            assert await conn.scalar(text("SELECT count(*) FROM identity.audit_log")) > 0
    finally:
        await engine.dispose()


async def test_audit_verify_passes_then_detects_a_row_altered_by_a_superuser(
    identity: Identity, migrated: Stack
) -> None:
    await make_user(identity, migrated)
    ok = gpulab(migrated, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    engine = db.create_engine(migrated.database_url, schema=None, app_name="superuser")
    async with engine.begin() as conn:
        target, original = (
            await conn.execute(text("SELECT seq, details FROM identity.audit_log ORDER BY seq LIMIT 1 OFFSET 2"))
        ).one()
    forge = "UPDATE identity.audit_log SET details = CAST(:d AS jsonb) WHERE seq = :s"
    try:
        async with engine.begin() as conn:
            # A superuser can get past the trigger; the hash chain still tells.
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(forge), {"s": target, "d": '{"forged": true}'})
        bad = gpulab(migrated, "audit", "verify")
        assert bad.returncode == 1
        assert f"seq={target}" in bad.stderr
        assert "TAMPERED" in bad.stderr
    finally:
        async with engine.begin() as conn:  # put it back, so later tests see an intact chain
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(forge), {"s": target, "d": json.dumps(original)})
        await engine.dispose()
    assert gpulab(migrated, "audit", "verify").returncode == 0


def test_admin_create_from_the_command_line(migrated: Stack) -> None:
    email = unique_email("cli-admin")
    refused = gpulab(migrated, "admin", "create", "--email", email, "--password-stdin", stdin="short\n")
    assert refused.returncode == 1
    assert "at least 12 characters" in refused.stderr
    exists = gpulab(migrated, "admin", "create", "--email", email, "--password-stdin", stdin=PASSWORD + "\n")
    assert exists.returncode == 1, "an admin exists already (the fixture's): nothing is created"
    assert "already exists" in exists.stderr
    made = gpulab(migrated, "admin", "create", "--email", email, "--password-stdin", "--force", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert f"admin {email} created" in made.stdout
