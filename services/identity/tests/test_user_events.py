"""identity.user_status_changed and identity.ssh_keys_changed, read back from the stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import func, select

from gpulab_core.contracts import events as ev
from gpulab_core.contracts.identity import SSH_KEY_COMMENT_MAX, SSH_KEYS_PER_USER_DEFAULT
from gpulab_core.errors import RemoteError
from gpulab_core.events import EVENT_SUBJECT_PREFIX, MAX_MESSAGE_BYTES, STREAM, Event
from gpulab_core.outbox import MSG_ID, encode_body, message_size
from gpulab_devstack.testing import Stack, wait_until
from gpulab_identity.config import SSH_KEYS_PER_USER_LIMIT
from gpulab_identity.models import tables
from gpulab_identity.ssh_keys.parse import MAX_RSA_BITS, parse_public_key

from .conftest import Identity, unique_email
from .ssh_key_support import line, wire
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


async def test_the_tenth_key_is_stored_and_the_eleventh_refused_with_nothing_changed(
    identity: Identity, migrated: Stack, tmp_path: Path
) -> None:
    """GPULAB_SSH_KEYS_PER_USER_MAX (default 10), counted under the user's row lock: even eleven adds
    at once store ten."""
    user_id, _ = await make_user(identity, migrated)
    keys = [real_key(tmp_path, f"m{i}")[0] for i in range(SSH_KEYS_PER_USER_DEFAULT + 1)]
    outcomes = await asyncio.gather(
        *(identity.call("ssh_keys.add", {"user_id": user_id, "public_key": key}) for key in keys),
        return_exceptions=True,
    )
    [refused] = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(refused, RemoteError)
    assert refused.code == "too_many_ssh_keys"
    assert "10 SSH keys already" in refused.message
    stored = (await identity.call("ssh_keys.list", {"user_id": user_id}))["items"]
    assert len(stored) == SSH_KEYS_PER_USER_DEFAULT
    changes = [ev.SshKeysChanged.model_validate(c) for c in await published(identity, ev.SSH_KEYS_CHANGED, user_id)]
    assert sorted(c.version for c in changes) == list(range(1, SSH_KEYS_PER_USER_DEFAULT + 1))  # none refused
    audited = (await identity.call("audit.list", {"actor_id": user_id, "action": "ssh_key.added"}))["items"]
    assert len(audited) == SSH_KEYS_PER_USER_DEFAULT

    # One removed: room for one more.
    await identity.call("ssh_keys.delete", {"user_id": user_id, "id": stored[0]["id"]})
    await identity.call("ssh_keys.add", {"user_id": user_id, "public_key": real_key(tmp_path, "again")[0]})
    assert len((await identity.call("ssh_keys.list", {"user_id": user_id}))["items"]) == SSH_KEYS_PER_USER_DEFAULT


def test_the_largest_key_list_anyone_can_store_fits_one_bus_message() -> None:
    """The most keys the setting allows, each the longest line the parser accepts (a 16384-bit RSA key
    with 256 four-byte characters of comment, each written as a 12-byte JSON escape): the event that
    carries them fits the bus with room to spare, so no key change can be refused for its size."""
    modulus = (1 << (MAX_RSA_BITS - 1)) | 1
    blob = wire(b"ssh-rsa", b"\x01\x00\x01", b"\x00" + modulus.to_bytes(MAX_RSA_BITS // 8, "big"))
    longest = parse_public_key(line("ssh-rsa", blob, "\U0001f511" * SSH_KEY_COMMENT_MAX)).normalized
    payload = ev.SshKeysChanged(user_id=uuid.uuid4(), public_keys=[longest] * SSH_KEYS_PER_USER_LIMIT, version=1)
    event = Event(
        id=uuid.uuid4(),
        type=ev.SSH_KEYS_CHANGED,
        source="identity",
        occurred_at=datetime.now(UTC),
        data=payload.model_dump(mode="json"),
    )
    size = message_size(encode_body(event.model_dump(mode="json")), {MSG_ID: str(event.id), "traceparent": "0" * 55})
    assert size < MAX_MESSAGE_BYTES * 0.6, size
