"""Invites: create (or replace), look up, accept. Never commits; the handler owns the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox, sealing
from gpulab_core.contracts import events
from gpulab_core.contracts.identity import AcceptInviteRequest, InviteLookupReply, InviteRequest, User
from gpulab_core.errors import NotFound
from gpulab_identity import tokens
from gpulab_identity.audit import repository as audit
from gpulab_identity.errors import AlreadyActive, InviteExpired, InviteUsed
from gpulab_identity.invites import repository as repo
from gpulab_identity.models import tables
from gpulab_identity.passwords import Passwords, check_rules
from gpulab_identity.users import repository as users_repo
from gpulab_identity.users import service as users


async def create(session: AsyncSession, req: InviteRequest, ttl: timedelta, seal_key: str) -> User:
    email = str(req.email).strip()
    # Two invites of one new address at once: there is no row to lock yet, so lock the address itself;
    # the second then finds the first's user and re-invites instead of failing on the unique index.
    await repo.lock_address(session, email)
    existing = await users_repo.get_by_email_for_update(session, email)
    if existing is not None and existing.status != "invited":
        raise AlreadyActive(f"{existing.email} already has an account ({existing.status})")
    if existing is None:
        user_id = await users_repo.insert(session, email=email, role=req.role, status="invited")
    else:
        user_id = existing.id
        if existing.role != req.role:
            await users_repo.set_fields(session, user_id, role=req.role)
        # Re-inviting replaces the old token: the old link stops working at once.
        await repo.replace_open(session, user_id)
    token = tokens.new_token()
    invite_id = uuid.uuid4()
    expires_at = datetime.now(UTC) + ttl
    await repo.insert(
        session,
        invite_id=invite_id,
        user_id=user_id,
        token_hash=tokens.digest(token),
        expires_at=expires_at,
        created_by=req.actor_id,
    )
    inviter = await users_repo.get(session, req.actor_id)
    payload = events.UserInvited(
        user_id=user_id,
        invite_id=invite_id,
        email=email,
        role=req.role,
        sealed_token=sealing.seal_invite_token(seal_key, invite_id, token),
        expires_at=expires_at,
        invited_by=req.actor_id,
        invited_by_name=(inviter.name or inviter.email) if inviter else None,
    )
    await outbox.emit(session, tables.outbox, events.USER_INVITED, payload.model_dump(mode="json"), source="identity")
    await audit.append(
        session,
        action="user.invited",
        actor_id=req.actor_id,
        actor_email=inviter.email if inviter else None,
        target_type="user",
        target_id=str(user_id),
        details={
            "email": email,
            "role": req.role,
            "reinvite": existing is not None,
            "expires_at": expires_at.isoformat(),
        },
    )
    user = await users_repo.get(session, user_id)
    assert user is not None
    return user


async def _classify_unusable(session: AsyncSession, token_hash: bytes) -> Exception:
    row = await repo.state_of(session, token_hash)
    if row is None:
        return NotFound("no such invite")
    if row.used_at is not None:
        return InviteUsed("this invite has already been used")
    if row.replaced_at is not None:
        return InviteExpired("this invite was replaced by a newer one; use the link in the latest email")
    return InviteExpired("this invite has expired; ask an admin to invite you again")


async def lookup(session: AsyncSession, token: str) -> InviteLookupReply:
    token_hash = tokens.digest(token)
    row = await repo.find_usable(session, token_hash)
    if row is None:
        raise await _classify_unusable(session, token_hash)
    email = await users_repo.email_of(session, row.user_id)
    assert email is not None  # invites are removed with their user
    return InviteLookupReply(email=email, expires_at=row.expires_at)


async def accept(session: AsyncSession, req: AcceptInviteRequest, passwords: Passwords) -> User:
    password = check_rules(req.password)  # before claiming: a bad password must not use up the invite
    token_hash = tokens.digest(req.token)
    # The claim is one conditional UPDATE: of any number of concurrent accepts, exactly one gets the
    # row; the others wait for its commit and then find used_at set.
    claimed = await repo.claim(session, token_hash)
    if claimed is None:
        raise await _classify_unusable(session, token_hash)
    password_hash = await passwords.hash(password)
    before = await users_repo.get_row_for_update(session, claimed.user_id)
    assert before is not None  # the invite's user: invites are removed with their user
    await users_repo.set_fields(
        session, claimed.user_id, name=req.name.strip(), password_hash=password_hash, status="active"
    )
    user = await users_repo.get(session, claimed.user_id)
    assert user is not None
    await audit.append(
        session,
        action="user.invite_accepted",
        actor_id=user.id,
        actor_email=user.email,
        target_type="user",
        target_id=str(user.id),
        details={"invite_id": str(claimed.id)},
    )
    if before.status != user.status:  # invited -> active; the user acted, by accepting
        await users.emit_status_changed(session, user.id, user.email, user.status, user.id)
    return user


async def record_delivery(session: AsyncSession, data: events.InviteDelivery) -> None:
    """notify's progress; an older report never overwrites a newer one (events may arrive out of order)."""
    await repo.record_delivery(session, data.invite_id, data.state, data.detail, data.at)
    if data.state == "failed":
        await audit.append(
            session,
            action="user.invite_delivery_failed",
            target_type="user",
            target_id=str(data.user_id),
            details={"invite_id": str(data.invite_id), "detail": data.detail},
        )
