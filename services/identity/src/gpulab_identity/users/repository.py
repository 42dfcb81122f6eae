"""Every SQL statement about users (and the per-user facts the User contract shows)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, exists, func, select, true, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import pagination
from gpulab_core.contracts.identity import InviteDelivery, ListUsersRequest, User
from gpulab_identity.models import invites, ssh_keys, users

_has_key = exists().where(ssh_keys.c.user_id == users.c.id).label("has_ssh_key")
# The newest invite of the user: its delivery state is what the admin needs to see.
_latest_invite = (
    select(invites.c.delivery_state, invites.c.delivery_detail, invites.c.delivery_updated_at)
    .where(invites.c.user_id == users.c.id)
    .order_by(invites.c.created_at.desc())
    .limit(1)
    .lateral("latest_invite")
)
_USER_COLUMNS = [
    users.c.id,
    users.c.email,
    users.c.name,
    users.c.role,
    users.c.status,
    users.c.created_at,
    _has_key,
    _latest_invite.c.delivery_state,
    _latest_invite.c.delivery_detail,
    _latest_invite.c.delivery_updated_at,
]


def _select() -> Any:
    return select(*_USER_COLUMNS).select_from(users.outerjoin(_latest_invite, true()))


def to_user(row: Row[Any]) -> User:
    delivery = None
    if row.delivery_state is not None and row.delivery_updated_at is not None:
        delivery = InviteDelivery(
            state=row.delivery_state, detail=row.delivery_detail, updated_at=row.delivery_updated_at
        )
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        role=row.role,
        status=row.status,
        has_ssh_key=row.has_ssh_key,
        created_at=row.created_at,
        invite_delivery=delivery,
    )


async def get(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    row = (await session.execute(_select().where(users.c.id == user_id))).first()
    return to_user(row) if row else None


async def get_by_email_for_update(session: AsyncSession, email: str) -> Any:
    query = select(users).where(func.lower(users.c.email) == email.strip().lower()).with_for_update()
    return (await session.execute(query)).first()


async def get_row_for_update(session: AsyncSession, user_id: uuid.UUID) -> Any:
    return (await session.execute(select(users).where(users.c.id == user_id).with_for_update())).first()


async def get_credentials(session: AsyncSession, email: str) -> Any:
    query = select(users.c.id, users.c.status, users.c.password_hash, users.c.email).where(
        func.lower(users.c.email) == email.strip().lower()
    )
    return (await session.execute(query)).first()


async def insert(
    session: AsyncSession,
    *,
    email: str,
    role: str,
    status: str,
    name: str | None = None,
    password_hash: str | None = None,
) -> uuid.UUID:
    user_id = uuid.uuid4()
    await session.execute(
        users.insert().values(
            id=user_id, email=email.strip(), role=role, status=status, name=name, password_hash=password_hash
        )
    )
    return user_id


async def set_fields(session: AsyncSession, user_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(**values, updated_at=func.now()))


async def next_ssh_keys_version(session: AsyncSession, user_id: uuid.UUID) -> Any:
    """(email, ssh_keys_version) after adding one, or None for no such user. The UPDATE holds the
    user's row lock until commit, so one user's key changes are serialised and numbered in order."""
    query = (
        update(users)
        .where(users.c.id == user_id)
        .values(ssh_keys_version=users.c.ssh_keys_version + 1)
        .returning(users.c.email, users.c.ssh_keys_version)
    )
    return (await session.execute(query)).first()


async def lock_active_admins(session: AsyncSession) -> int:
    """How many active admins there are, with their rows locked: two admins demoting each other at
    the same moment must not both succeed."""
    query = select(users.c.id).where(and_(users.c.role == "admin", users.c.status == "active")).with_for_update()
    return len((await session.execute(query)).all())


async def list_page(session: AsyncSession, req: ListUsersRequest) -> tuple[list[User], str | None]:
    query = _select()
    if req.status is not None:
        query = query.where(users.c.status == req.status)
    if req.role is not None:
        query = query.where(users.c.role == req.role)
    rows, cursor = await pagination.oldest_first(session, query, users, req.cursor, req.limit)
    return [to_user(r) for r in rows], cursor
