"""SSH keys: add (validated by parse.py), list, delete. Never commits; the handler owns the transaction.

Every change emits `identity.ssh_keys_changed` with the user's full list of keys and a version
taken under the user's row lock before the change: of two changes of one user's keys, the later
waits for the earlier's commit, so its list holds both and its version is higher.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import events
from gpulab_core.contracts.identity import SSH_KEY_MAX_BYTES, SshKey
from gpulab_core.errors import NotFound
from gpulab_identity.audit import repository as audit
from gpulab_identity.errors import DuplicateSshKey, InvalidSshKeyError, TooManySshKeys
from gpulab_identity.models import tables
from gpulab_identity.ssh_keys import repository as repo
from gpulab_identity.ssh_keys.parse import InvalidSshKey, parse_public_key
from gpulab_identity.users import repository as users_repo


async def list_keys(session: AsyncSession, user_id: uuid.UUID) -> list[SshKey]:
    return await repo.list_for(session, user_id)


async def add(session: AsyncSession, user_id: uuid.UUID, text: str, max_keys: int) -> SshKey:
    """Store one more key for the user; at most `max_keys` (GPULAB_SSH_KEYS_PER_USER_MAX) each."""
    if len(text.encode("utf-8", "surrogatepass")) > SSH_KEY_MAX_BYTES:
        raise InvalidSshKeyError(f"the key is larger than {SSH_KEY_MAX_BYTES} bytes", details={"reason": "too_large"})
    try:
        parsed = parse_public_key(text)
    except InvalidSshKey as exc:
        raise InvalidSshKeyError(exc.message, details={"reason": exc.reason}) from None
    owner = await users_repo.next_ssh_keys_version(session, user_id)
    if owner is None:
        raise NotFound("no such user")
    # Counted under the user's row lock (taken just above), so two adds at once cannot both pass.
    if await repo.count_for(session, user_id) >= max_keys:
        raise TooManySshKeys(
            f"you have {max_keys} SSH keys already, the most one person may have; remove one you no longer use first"
        )
    key_id = uuid.uuid4()
    try:
        async with session.begin_nested():  # a duplicate must not spoil the caller's transaction
            key = await repo.insert(session, key_id, user_id, parsed)
    except IntegrityError:
        # Nothing is emitted for a refused key (the edge rolls the version back with the rest).
        # Only (user_id, fingerprint) is unique: another user holding the same key does not matter.
        raise DuplicateSshKey(f"you have this key ({parsed.fingerprint}) already") from None
    await audit.append(
        session,
        action="ssh_key.added",
        actor_id=user_id,
        actor_email=owner.email,
        target_type="ssh_key",
        target_id=str(key_id),
        details={"type": parsed.type, "fingerprint": parsed.fingerprint},
    )
    await _emit_keys_changed(session, user_id, owner.ssh_keys_version)
    return key


async def remove(session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    # Locked and numbered before the delete, as in add(); a key not found rolls the number back.
    owner = await users_repo.next_ssh_keys_version(session, user_id)
    fingerprint = await repo.delete_for(session, user_id, key_id)
    if owner is None or fingerprint is None:
        raise NotFound("no such key")  # also when it is someone else's: 404 = not found or not yours
    await audit.append(
        session,
        action="ssh_key.removed",
        actor_id=user_id,
        actor_email=owner.email,
        target_type="ssh_key",
        target_id=str(key_id),
        details={"fingerprint": fingerprint},
    )
    await _emit_keys_changed(session, user_id, owner.ssh_keys_version)


async def authorized(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    """The user's authorized_keys lines and their version, as identity.ssh_keys_changed carries them
    (what the scheduler puts in a new assignment; later changes reach the nodes by the event)."""
    # The share lock waits for a key change in flight, so the lines read next are those of this version.
    version = await repo.keys_version_shared(session, user_id)
    if version is None:
        raise NotFound("no such user")
    return {"public_keys": await repo.lines(session, user_id), "version": version}


async def _emit_keys_changed(session: AsyncSession, user_id: uuid.UUID, version: int) -> None:
    """The user's whole list as it stands in this transaction: consumers replace, never patch."""
    payload = events.SshKeysChanged(user_id=user_id, public_keys=await repo.lines(session, user_id), version=version)
    await outbox.emit(
        session, tables.outbox, events.SSH_KEYS_CHANGED, payload.model_dump(mode="json"), source="identity"
    )
