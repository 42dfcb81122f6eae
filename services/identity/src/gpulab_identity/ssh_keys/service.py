"""SSH keys: add (validated by parse.py), list, delete. Never commits; the handler owns the transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.identity import SSH_KEY_MAX_BYTES, SshKey
from gpulab_core.errors import NotFound
from gpulab_identity.audit import repository as audit
from gpulab_identity.errors import DuplicateSshKey, InvalidSshKeyError
from gpulab_identity.models import ssh_keys, users
from gpulab_identity.ssh_keys.parse import InvalidSshKey, parse_public_key


def _key(row: Row[Any]) -> SshKey:
    return SshKey(id=row.id, type=row.type, fingerprint=row.fingerprint, comment=row.comment, created_at=row.created_at)


async def list_keys(session: AsyncSession, user_id: uuid.UUID) -> list[SshKey]:
    rows = (
        await session.execute(select(ssh_keys).where(ssh_keys.c.user_id == user_id).order_by(ssh_keys.c.created_at))
    ).all()
    return [_key(r) for r in rows]


async def add(session: AsyncSession, user_id: uuid.UUID, text: str) -> SshKey:
    if len(text.encode("utf-8", "surrogatepass")) > SSH_KEY_MAX_BYTES:
        raise InvalidSshKeyError(f"the key is larger than {SSH_KEY_MAX_BYTES} bytes", details={"reason": "too_large"})
    try:
        parsed = parse_public_key(text)
    except InvalidSshKey as exc:
        raise InvalidSshKeyError(exc.message, details={"reason": exc.reason}) from None
    owner = (await session.execute(select(users.c.email).where(users.c.id == user_id))).first()
    if owner is None:
        raise NotFound("no such user")
    key_id = uuid.uuid4()
    try:
        async with session.begin_nested():  # a duplicate must not spoil the caller's transaction
            await session.execute(
                ssh_keys.insert().values(
                    id=key_id,
                    user_id=user_id,
                    type=parsed.type,
                    fingerprint=parsed.fingerprint,
                    comment=parsed.comment,
                    public_key=parsed.normalized,
                )
            )
    except IntegrityError:
        raise DuplicateSshKey(f"this key ({parsed.fingerprint}) is already registered") from None
    await audit.append(
        session,
        action="ssh_key.added",
        actor_id=user_id,
        actor_email=owner.email,
        target_type="ssh_key",
        target_id=str(key_id),
        details={"type": parsed.type, "fingerprint": parsed.fingerprint},
    )
    row = (await session.execute(select(ssh_keys).where(ssh_keys.c.id == key_id))).one()
    return _key(row)


async def remove(session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    gone = (
        await session.execute(
            delete(ssh_keys)
            .where(ssh_keys.c.id == key_id, ssh_keys.c.user_id == user_id)
            .returning(ssh_keys.c.fingerprint)
        )
    ).first()
    if gone is None:
        raise NotFound("no such key")  # also when it is someone else's: 404 = not found or not yours
    owner = (await session.execute(select(users.c.email).where(users.c.id == user_id))).first()
    await audit.append(
        session,
        action="ssh_key.removed",
        actor_id=user_id,
        actor_email=owner.email if owner else None,
        target_type="ssh_key",
        target_id=str(key_id),
        details={"fingerprint": gone.fingerprint},
    )
