"""Every SQL statement of invites: created, replaced, looked up and claimed by token hash, delivery state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.identity import DeliveryState
from gpulab_identity.models import invites


@dataclass(frozen=True)
class InviteState:
    """Why an invite can or cannot be used any more."""

    used_at: datetime | None
    replaced_at: datetime | None


@dataclass(frozen=True)
class UsableInvite:
    user_id: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True)
class ClaimedInvite:
    id: uuid.UUID
    user_id: uuid.UUID


def _usable(token_hash: bytes) -> ColumnElement[bool]:
    return and_(
        invites.c.token_hash == token_hash,
        invites.c.used_at.is_(None),
        invites.c.replaced_at.is_(None),
        invites.c.expires_at > func.now(),
    )


async def lock_address(session: AsyncSession, email: str) -> None:
    """Serialise invites of one address until the transaction ends (there may be no row to lock yet)."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext("invite:" + email.lower()))))


async def replace_open(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Mark the user's unused, unreplaced invites replaced: their links stop working at once."""
    await session.execute(
        update(invites)
        .where(invites.c.user_id == user_id, invites.c.used_at.is_(None), invites.c.replaced_at.is_(None))
        .values(replaced_at=func.now())
    )


async def insert(
    session: AsyncSession,
    *,
    invite_id: uuid.UUID,
    user_id: uuid.UUID,
    token_hash: bytes,
    expires_at: datetime,
    created_by: uuid.UUID,
) -> None:
    await session.execute(
        invites.insert().values(
            id=invite_id,
            user_id=user_id,
            token_hash=token_hash,
            expires_at=expires_at,
            created_by=created_by,
            delivery_state="pending",
            delivery_updated_at=func.now(),
        )
    )


async def state_of(session: AsyncSession, token_hash: bytes) -> InviteState | None:
    query = select(invites.c.used_at, invites.c.replaced_at).where(invites.c.token_hash == token_hash)
    row = (await session.execute(query)).first()
    return InviteState(used_at=row.used_at, replaced_at=row.replaced_at) if row else None


async def find_usable(session: AsyncSession, token_hash: bytes) -> UsableInvite | None:
    """The invite of this token if it is unused, not replaced and not expired."""
    query = select(invites.c.user_id, invites.c.expires_at).where(_usable(token_hash))
    row = (await session.execute(query)).first()
    return UsableInvite(user_id=row.user_id, expires_at=row.expires_at) if row else None


async def claim(session: AsyncSession, token_hash: bytes) -> ClaimedInvite | None:
    """Mark the invite of this token used if it is usable. One conditional UPDATE: of any number of
    concurrent claims exactly one gets the row; the others wait for its commit and then find used_at set."""
    query = (
        update(invites).where(_usable(token_hash)).values(used_at=func.now()).returning(invites.c.id, invites.c.user_id)
    )
    row = (await session.execute(query)).first()
    return ClaimedInvite(id=row.id, user_id=row.user_id) if row else None


async def record_delivery(
    session: AsyncSession, invite_id: uuid.UUID, state: DeliveryState, detail: str | None, at: datetime
) -> None:
    """Set the delivery state unless a report newer than `at` is stored already."""
    await session.execute(
        update(invites)
        .where(
            invites.c.id == invite_id,
            (invites.c.delivery_updated_at.is_(None)) | (invites.c.delivery_updated_at <= at),
        )
        .values(delivery_state=state, delivery_detail=detail, delivery_updated_at=at)
    )
