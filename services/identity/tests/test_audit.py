"""The audit log: what is recorded, filters and pages, append-only for the service's role, tamper evidence."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gpulab_core import db
from gpulab_core.contracts.identity import REFUSAL_ACTION, RecordRefusalRequest
from gpulab_devstack.testing import Stack
from gpulab_identity.audit import repository as audit_repo
from gpulab_identity.audit.service import REFUSAL_WINDOW, REFUSALS_DROPPED, RefusalBounds, record_refusal
from gpulab_identity.config import Settings as IdentitySettings

from .conftest import Identity, unique_email
from .test_auth import PASSWORD, make_user


def gpulab(stack: Stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GPULAB_DATABASE_URL": stack.service_database_url("identity")}
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
    engine = db.create_engine(migrated.service_database_url("identity"), schema=None, app_name="attacker")
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


async def test_rewriting_the_audit_tail_with_recomputed_hashes_is_detected(identity: Identity, migrated: Stack) -> None:
    """Issue 12: an attacker with full database access rewrites the last rows (here: the record of a
    role change) and re-chains them as the code chains rows, sha256 over the previous hash and the
    row. No row before them changed, so only a chain the attacker cannot recompute tells."""
    user_id, _ = await make_user(identity, migrated)
    await identity.call("users.update", {"actor_id": str(identity.admin_id), "id": user_id, "role": "admin"})
    engine = db.create_engine(migrated.database_url, schema=None, app_name="superuser")
    columns = "seq, id, at, actor_id, actor_email, action, target_type, target_id, details, prev_hash, hash"
    rewrite = "UPDATE identity.audit_log SET details = CAST(:d AS jsonb), prev_hash = :p, hash = :h WHERE seq = :s"
    async with engine.begin() as conn:
        # Under the chain's own lock, so that no append slips in between: the tail stays the tail.
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit_repo._CHAIN_LOCK})
        tail = (await conn.execute(text(f"SELECT {columns} FROM identity.audit_log ORDER BY seq DESC LIMIT 2"))).all()
        before, last = tail[1], tail[0]
        prev = bytes(
            (
                await conn.execute(
                    text("SELECT hash FROM identity.audit_log WHERE seq < :s ORDER BY seq DESC LIMIT 1"),
                    {"s": before.seq},
                )
            ).scalar_one()
        )
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for row, details in ((before, {**before.details, "forged": True}), (last, last.details)):
            fields = {
                k: getattr(row, k)
                for k in ("id", "at", "actor_id", "actor_email", "action", "target_type", "target_id")
            }
            digest = hashlib.sha256(prev + audit_repo.canonical(**fields, details=details)).digest()
            await conn.execute(text(rewrite), {"d": json.dumps(details), "p": prev, "h": digest, "s": row.seq})
            prev = digest
    try:
        result = await identity.call("audit.verify")
        assert result["valid"] is False, "the rewritten tail passed the check"
        assert result["first_bad_id"] == str(before.id)
    finally:
        async with engine.begin() as conn:  # put them back, so later tests see an intact chain
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            for row in tail:
                await conn.execute(
                    text(rewrite),
                    {"d": json.dumps(row.details), "p": bytes(row.prev_hash), "h": bytes(row.hash), "s": row.seq},
                )
        await engine.dispose()
    assert (await identity.call("audit.verify"))["valid"] is True


def refusal(client_ip: str) -> dict[str, Any]:
    return {"code": "csrf_failed", "method": "POST", "route": "/api/v1/users/invites", "client_ip": client_ip}


async def refusal_rows(identity: Identity, client_ip: str) -> int:
    page = await identity.call("audit.list", {"action": REFUSAL_ACTION, "limit": 500})
    return sum(1 for e in page["items"] if e["details"]["client_ip"] == client_ip)


async def test_refusals_from_one_address_are_recorded_up_to_the_bound_a_minute(identity: Identity) -> None:
    """GPULAB_AUDIT_REFUSALS_PER_ADDRESS_PER_MINUTE (10 by default): the 10th is written, the 11th
    is counted and not written; another address is not held back by it."""
    bound = IdentitySettings.model_fields["audit_refusals_per_address_per_minute"].default
    flooder, other = f"203.0.113.{uuid.uuid4().int % 250 + 1}", f"2001:db8::{uuid.uuid4().hex[:4]}"
    dropped = REFUSALS_DROPPED.labels("address")._value.get()
    for _ in range(bound):
        assert (await identity.call("audit.record_refusal", refusal(flooder)))["recorded"] is True
    assert await refusal_rows(identity, flooder) == bound
    assert (await identity.call("audit.record_refusal", refusal(flooder)))["recorded"] is False
    assert await refusal_rows(identity, flooder) == bound, "one over: nothing written"
    assert REFUSALS_DROPPED.labels("address")._value.get() == dropped + 1
    assert (await identity.call("audit.record_refusal", refusal(other)))["recorded"] is True
    assert (await identity.call("audit.verify"))["valid"] is True


async def test_refusals_from_all_addresses_are_recorded_up_to_the_total_bound_a_minute(identity: Identity) -> None:
    """GPULAB_AUDIT_REFUSALS_PER_MINUTE, whatever the addresses: at the bound written, one over not."""
    assert identity.runtime.sessions is not None
    async with identity.runtime.sessions() as session, session.begin():
        already = len(await audit_repo.recent_refusals(session, REFUSAL_ACTION, datetime.now(UTC) - REFUSAL_WINDOW))
    bounds = RefusalBounds(per_address=1000, total=already + 3)
    replies = []
    for i in range(4):
        async with identity.runtime.sessions() as session, session.begin():
            req = RecordRefusalRequest.model_validate(refusal(f"192.0.2.{i + 1}"))
            replies.append((await record_refusal(session, req, bounds)).recorded)
    assert replies == [True, True, True, False]
