"""The rules about users: status and role changes. Never commits; the handler owns the transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import events
from gpulab_core.contracts.identity import UpdateUserRequest, User, UserStatus
from gpulab_core.errors import InvalidRequest, NotFound
from gpulab_identity.audit import repository as audit
from gpulab_identity.auth import repository as auth_repo
from gpulab_identity.errors import LastAdmin
from gpulab_identity.models import tables
from gpulab_identity.users import repository as repo


async def actor_email(session: AsyncSession, actor_id: uuid.UUID | None) -> str | None:
    if actor_id is None:
        return None
    return await repo.email_of(session, actor_id)


async def emit_status_changed(
    session: AsyncSession, user_id: uuid.UUID, email: str, status: UserStatus, actor_id: uuid.UUID | None
) -> None:
    """In the transaction of the change: the scheduler ends a disabled user's assignments from it."""
    payload = events.UserStatusChanged(user_id=user_id, email=email, status=status, actor_id=actor_id)
    await outbox.emit(
        session, tables.outbox, events.USER_STATUS_CHANGED, payload.model_dump(mode="json"), source="identity"
    )


async def update_user(session: AsyncSession, req: UpdateUserRequest) -> User:
    if req.status is None and req.role is None:
        raise InvalidRequest("nothing to change: give status and/or role")
    row = await repo.get_row_for_update(session, req.id)
    if row is None:
        raise NotFound("no such user")
    changes: dict[str, str] = {}
    if req.status is not None and req.status != row.status:
        if row.status == "invited":
            raise InvalidRequest("an invited user becomes active by accepting the invite")
        changes["status"] = req.status
    if req.role is not None and req.role != row.role:
        changes["role"] = req.role
    if (
        changes
        and row.role == "admin"
        and row.status == "active"
        and (changes.get("status") == "disabled" or changes.get("role") == "user")
    ):
        if await repo.lock_active_admins(session) <= 1:
            raise LastAdmin("the last active admin cannot be disabled or made a user")
    if changes:
        await repo.set_fields(session, req.id, **changes)
        if changes.get("status") == "disabled":
            await auth_repo.end_sessions_of(session, req.id)
        if req.status is not None and "status" in changes:
            await emit_status_changed(session, req.id, row.email, req.status, req.actor_id)
        email = await actor_email(session, req.actor_id)
        for field, value in changes.items():
            await audit.append(
                session,
                action=f"user.{field}_changed",
                actor_id=req.actor_id,
                actor_email=email,
                target_type="user",
                target_id=str(req.id),
                details={"email": row.email, "from": getattr(row, field), "to": value},
            )
    user = await repo.get(session, req.id)
    assert user is not None
    return user
