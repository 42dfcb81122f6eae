"""identity.user_status_changed and identity.ssh_keys_changed, read back from the stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import func, select

from gpulab_core.contracts import events as ev
from gpulab_core.errors import RemoteError
from gpulab_core.events import EVENT_SUBJECT_PREFIX, STREAM
from gpulab_devstack.testing import Stack, wait_until
from gpulab_identity.models import tables

from .conftest import Identity, unique_email
from .test_auth import make_user
from .test_invites import invite
from .test_ssh_keys import real_key


async def published(identity: Identity, event_type: str, user_id: str) -> list[dict[str, Any]]:
    """Every `event_type` event about one user in the stream, oldest first, once identity's outbox
    is empty: the relay deletes a row only after JetStream acknowledged it, so all are in by then."""
    assert identity.runtime.engine is not None
    engine = identity.runtime.engine

    async def relayed() -> bool:
        async with engine.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(tables.outbox)) == 0

    await wait_until(relayed, timeout_s=20)
    js = identity.runtime.js
    subject = f"{EVENT_SUBJECT_PREFIX}.{event_type}"
    try:
        last = (await js.get_last_msg(STREAM, subject)).seq
    except NotFoundError:
        return []
    assert last is not None
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    found: list[dict[str, Any]] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            event = json.loads(msg.data)
            if event["data"]["user_id"] == user_id:
                assert event["type"] == event_type
                assert event["source"] == "identity"
                found.append(event["data"])
            if msg.metadata.sequence.stream >= last:
                return found
    finally:
        await sub.unsubscribe()


async def test_accepting_disabling_and_enabling_each_emit_one_status_event_with_the_actor(
    identity: Identity, migrated: Stack
) -> None:
    user_id, email = await make_user(identity, migrated)  # invited -> active by accepting
    admin = str(identity.admin_id)
    await identity.call("users.update", {"id": user_id, "status": "disabled", "actor_id": admin})
    await identity.call("users.update", {"id": user_id, "role": "admin", "actor_id": admin})  # no status change
    await identity.call("users.update", {"id": user_id, "status": "disabled", "actor_id": admin})  # already so
    await identity.call("users.update", {"id": user_id, "status": "active", "actor_id": admin})

    changes = await published(identity, ev.USER_STATUS_CHANGED, user_id)
    assert [(c["status"], c["actor_id"]) for c in changes] == [
        ("active", user_id),
        ("disabled", admin),
        ("active", admin),
    ]
    assert all(ev.UserStatusChanged.model_validate(c).email == email for c in changes)


async def test_a_refused_status_change_emits_nothing(identity: Identity) -> None:
    user_id = (await invite(identity, unique_email()))["id"]
    with pytest.raises(RemoteError) as refused:
        await identity.call("users.update", {"id": user_id, "status": "disabled", "actor_id": str(identity.admin_id)})
    assert refused.value.code == "invalid_request", "an invited user becomes active only by accepting"
    assert await published(identity, ev.USER_STATUS_CHANGED, user_id) == []


async def test_each_key_change_emits_the_full_list_with_a_growing_version(
    identity: Identity, migrated: Stack, tmp_path: Path
) -> None:
    user_id, _ = await make_user(identity, migrated)
    other_id, _ = await make_user(identity, migrated)
    k1, k2 = (real_key(tmp_path, name)[0] for name in ("k1", "k2"))
    first = await identity.call("ssh_keys.add", {"user_id": user_id, "public_key": k1})
    await identity.call("ssh_keys.add", {"user_id": user_id, "public_key": k2})
    refused: list[tuple[str, dict[str, Any]]] = [
        ("ssh_keys.add", {"user_id": user_id, "public_key": "ssh-ed25519 AAAA"}),  # invalid
        ("ssh_keys.add", {"user_id": user_id, "public_key": k1}),  # duplicate
        ("ssh_keys.delete", {"user_id": other_id, "id": first["id"]}),  # not theirs
    ]
    for operation, payload in refused:
        with pytest.raises(RemoteError):
            await identity.call(operation, payload)
    await identity.call("ssh_keys.delete", {"user_id": user_id, "id": first["id"]})

    changes = [ev.SshKeysChanged.model_validate(c) for c in await published(identity, ev.SSH_KEYS_CHANGED, user_id)]
    line1, line2 = k1.strip(), k2.strip()
    assert [c.public_keys for c in changes] == [[line1], [line1, line2], [line2]]
    versions = [c.version for c in changes]
    assert versions == sorted(set(versions)), "strictly growing"
    assert await published(identity, ev.SSH_KEYS_CHANGED, other_id) == []
    assert await identity.call("ssh_keys.authorized", {"user_id": user_id}) == {
        "public_keys": [line2],
        "version": versions[-1],
    }


async def test_concurrent_key_changes_of_one_user_are_numbered_in_the_order_they_commit(
    identity: Identity, migrated: Stack, tmp_path: Path
) -> None:
    user_id, _ = await make_user(identity, migrated)
    lines = [real_key(tmp_path, f"c{i}")[0] for i in range(6)]
    await asyncio.gather(*(identity.call("ssh_keys.add", {"user_id": user_id, "public_key": line}) for line in lines))

    changes = [ev.SshKeysChanged.model_validate(c) for c in await published(identity, ev.SSH_KEYS_CHANGED, user_id)]
    # Each change waited for the one before it: version n is the list after n additions.
    assert sorted(c.version for c in changes) == [1, 2, 3, 4, 5, 6]
    for change in changes:
        assert len(change.public_keys) == change.version
    newest = max(changes, key=lambda c: c.version)
    assert sorted(newest.public_keys) == sorted(line.strip() for line in lines)


async def test_authorized_keys_of_an_unknown_user_is_not_found(identity: Identity) -> None:
    with pytest.raises(RemoteError) as missing:
        await identity.call("ssh_keys.authorized", {"user_id": "00000000-0000-4000-8000-000000000000"})
    assert missing.value.code == "not_found"
