"""Every SQL statement about users (and the per-user facts the User contract shows)."""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, exists, func, select, true, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import pagination
from gpulab_core.contracts.identity import InviteDelivery, ListUsersRequest, Role, User, UserStatus
from gpulab_identity.models import invites, ssh_keys, users

# Two replicas starting at once must not both create "the first" admin (bootstrap.py).
_BOOTSTRAP_LOCK = zlib.crc32(b"gpulab-identity-bootstrap-admin")


@dataclass(frozen=True)
class UserRecord:
    """A user's own row as the rules read it (never the password hash)."""

    id: uuid.UUID
    email: str
    name: str | None
    role: Role
    status: UserStatus


@dataclass(frozen=True)
class Credentials:
    """What login checks a password against."""

    id: uuid.UUID
    email: str
    status: UserStatus
    password_hash: str | None


@dataclass(frozen=True)
class KeysVersion:
    """A user's email and ssh_keys_version, just counted up."""

    email: str
    ssh_keys_version: int


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


def _select() -> Select[Any]:
    return select(*_USER_COLUMNS).select_from(users.outerjoin(_latest_invite, true()))


def _user(row: Row[Any]) -> User:
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
    return _user(row) if row else None


async def email_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    email: str | None = await session.scalar(select(users.c.email).where(users.c.id == user_id))
    return email


def _select_record() -> Select[Any]:
    return select(users.c.id, users.c.email, users.c.name, users.c.role, users.c.status)


def _record(row: Row[Any]) -> UserRecord:
    return UserRecord(id=row.id, email=row.email, name=row.name, role=row.role, status=row.status)


async def get_by_email_for_update(session: AsyncSession, email: str) -> UserRecord | None:
    query = _select_record().where(func.lower(users.c.email) == email.strip().lower()).with_for_update()
    row = (await session.execute(query)).first()
    return _record(row) if row else None


async def get_row_for_update(session: AsyncSession, user_id: uuid.UUID) -> UserRecord | None:
    row = (await session.execute(_select_record().where(users.c.id == user_id).with_for_update())).first()
    return _record(row) if row else None


async def get_credentials(session: AsyncSession, email: str) -> Credentials | None:
    query = select(users.c.id, users.c.status, users.c.password_hash, users.c.email).where(
        func.lower(users.c.email) == email.strip().lower()
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None
    return Credentials(id=row.id, email=row.email, status=row.status, password_hash=row.password_hash)


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


async def set_fields(session: AsyncSession, user_id: uuid.UUID, **values: str) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(**values, updated_at=func.now()))


async def next_ssh_keys_version(session: AsyncSession, user_id: uuid.UUID) -> KeysVersion | None:
    """(email, ssh_keys_version) after adding one, or None for no such user. The UPDATE holds the
    user's row lock until commit, so one user's key changes are serialised and numbered in order."""
    query = (
        update(users)
        .where(users.c.id == user_id)
        .values(ssh_keys_version=users.c.ssh_keys_version + 1)
        .returning(users.c.email, users.c.ssh_keys_version)
    )
    row = (await session.execute(query)).first()
    return KeysVersion(email=row.email, ssh_keys_version=row.ssh_keys_version) if row else None


async def lock_active_admins(session: AsyncSession) -> int:
    """How many active admins there are, with their rows locked: two admins demoting each other at
    the same moment must not both succeed."""
    query = select(users.c.id).where(and_(users.c.role == "admin", users.c.status == "active")).with_for_update()
    return len((await session.execute(query)).all())


async def lock_bootstrap(session: AsyncSession) -> None:
    """Serialise the creation of a first admin until the transaction ends."""
    await session.execute(select(func.pg_advisory_xact_lock(_BOOTSTRAP_LOCK)))


async def admin_exists(session: AsyncSession) -> bool:
    """Whether any admin exists, whatever their status."""
    return bool(await session.scalar(select(func.count()).where(users.c.role == "admin")))


async def list_page(session: AsyncSession, req: ListUsersRequest) -> tuple[list[User], str | None]:
    query = _select()
    if req.status is not None:
        query = query.where(users.c.status == req.status)
    if req.role is not None:
        query = query.where(users.c.role == req.role)
    rows, cursor = await pagination.oldest_first(session, query, users, req.cursor, req.limit)
    return [_user(r) for r in rows], cursor
