"""Every SQL statement of the SSH keys aggregate (identity.ssh_keys); the rules are in service.py."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.identity import SshKey
from gpulab_identity.models import ssh_keys, users
from gpulab_identity.ssh_keys.parse import ParsedKey

_ORDER = (ssh_keys.c.created_at, ssh_keys.c.id)
# What the SshKey contract shows (the key itself only goes out in authorized_keys `lines`).
_SHOWN = (ssh_keys.c.id, ssh_keys.c.type, ssh_keys.c.fingerprint, ssh_keys.c.comment, ssh_keys.c.created_at)


def _key(row: Row[*tuple[Any, ...]]) -> SshKey:
    return SshKey(id=row.id, type=row.type, fingerprint=row.fingerprint, comment=row.comment, created_at=row.created_at)


async def list_for(session: AsyncSession, user_id: uuid.UUID) -> list[SshKey]:
    query = select(*_SHOWN).where(ssh_keys.c.user_id == user_id).order_by(*_ORDER)
    return [_key(r) for r in (await session.execute(query)).all()]


async def count_for(session: AsyncSession, user_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(ssh_keys).where(ssh_keys.c.user_id == user_id)
    return int(await session.scalar(query) or 0)


async def insert(session: AsyncSession, key_id: uuid.UUID, user_id: uuid.UUID, parsed: ParsedKey) -> SshKey:
    """Raises IntegrityError for a key registered already."""
    row = (
        await session.execute(
            ssh_keys.insert()
            .values(
                id=key_id,
                user_id=user_id,
                type=parsed.type,
                fingerprint=parsed.fingerprint,
                comment=parsed.comment,
                public_key=parsed.normalized,
            )
            .returning(*_SHOWN)
        )
    ).one()
    return _key(row)


async def delete_for(session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> str | None:
    """The removed key's fingerprint, or None when the user has no such key."""
    query = (
        delete(ssh_keys).where(ssh_keys.c.id == key_id, ssh_keys.c.user_id == user_id).returning(ssh_keys.c.fingerprint)
    )
    return (await session.execute(query)).scalar()


async def lines(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """The user's authorized_keys lines, oldest first."""
    query = select(ssh_keys.c.public_key).where(ssh_keys.c.user_id == user_id).order_by(*_ORDER)
    return list((await session.execute(query)).scalars())


async def keys_version_shared(session: AsyncSession, user_id: uuid.UUID) -> int | None:
    """The user's ssh_keys_version under a share lock (it waits for a key change in flight); None: no user."""
    query = select(users.c.ssh_keys_version).where(users.c.id == user_id).with_for_update(read=True)
    version: int | None = await session.scalar(query)
    return version
