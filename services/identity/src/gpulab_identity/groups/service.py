"""Groups: create, change, delete (soft), members. Never commits; the handler owns the transaction.

Every change writes its audit row in the same transaction. Adding a member twice, or removing one
who is not a member, succeeds and changes nothing (no audit row). Invited and disabled users may
be members: membership is the admin's bookkeeping; whether a user may request is the scheduler's.
"""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts import groups as c
from gpulab_core.errors import InvalidRequest, NotFound
from gpulab_identity.audit import repository as audit
from gpulab_identity.errors import GroupExists
from gpulab_identity.groups import repository as repo
from gpulab_identity.groups.repository import GroupRecord
from gpulab_identity.users import repository as users_repo


def _group(record: GroupRecord, members: list[uuid.UUID]) -> c.Group:
    return c.Group(
        id=record.id,
        name=record.name,
        description=record.description,
        member_ids=members,
        created_at=record.created_at,
    )


async def _with_members(session: AsyncSession, records: list[GroupRecord]) -> list[c.Group]:
    members = await repo.member_ids(session, [r.id for r in records])
    return [_group(r, members[r.id]) for r in records]


def _name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise InvalidRequest("the name must not be blank", details={"field": "name"})
    return cleaned


async def _audit(
    session: AsyncSession, action: str, actor_id: uuid.UUID, group_id: uuid.UUID, details: dict[str, object]
) -> None:
    await audit.append(
        session,
        action=action,
        actor_id=actor_id,
        actor_email=await users_repo.email_of(session, actor_id),
        target_type="group",
        target_id=str(group_id),
        details=details,
    )


async def _live(session: AsyncSession, group_id: uuid.UUID, *, lock: bool = False) -> GroupRecord:
    record = await repo.get(session, group_id, lock=lock)
    if record is None:
        raise NotFound("no such group")
    return record


async def create(session: AsyncSession, req: c.CreateGroupRequest) -> c.Group:
    name = _name(req.name)
    group_id = uuid.uuid4()
    try:
        async with session.begin_nested():  # a taken name must not spoil the caller's transaction
            record = await repo.insert(session, group_id, name, req.description)
    except IntegrityError:
        raise GroupExists(f"a group named {name!r} exists") from None
    await _audit(session, "group.created", req.actor_id, group_id, {"name": name})
    return _group(record, [])


async def get(session: AsyncSession, group_id: uuid.UUID) -> c.Group:
    return (await _with_members(session, [await _live(session, group_id)]))[0]


async def list_page(session: AsyncSession, req: c.ListGroupsRequest) -> c.GroupPage:
    records, cursor = await repo.list_page(session, req.cursor, req.limit)
    return c.GroupPage(items=await _with_members(session, records), next_cursor=cursor)


async def of_user(session: AsyncSession, user_id: uuid.UUID) -> c.GroupList:
    return c.GroupList(items=await _with_members(session, await repo.of_user(session, user_id)))


async def update(session: AsyncSession, req: c.UpdateGroupRequest) -> c.Group:
    if req.name is None and req.description is None:
        raise InvalidRequest("nothing to change: give name and/or description")
    record = await _live(session, req.id, lock=True)
    changes: dict[str, str] = {}
    if req.name is not None and _name(req.name) != record.name:
        changes["name"] = _name(req.name)
    if req.description is not None and req.description != record.description:
        changes["description"] = req.description
    if changes:
        try:
            async with session.begin_nested():
                await repo.set_fields(session, req.id, **changes)
        except IntegrityError:
            raise GroupExists(f"a group named {changes['name']!r} exists") from None
        details: dict[str, object] = {"name": changes.get("name", record.name)}
        if "name" in changes:
            details["from_name"] = record.name
        if "description" in changes:
            details["description_changed"] = True
        await _audit(session, "group.updated", req.actor_id, req.id, details)
    return await get(session, req.id)


async def delete(session: AsyncSession, req: c.DeleteGroupRequest) -> None:
    record = await _live(session, req.id, lock=True)
    members = (await repo.member_ids(session, [req.id]))[req.id]
    await repo.mark_deleted(session, req.id)
    await _audit(session, "group.deleted", req.actor_id, req.id, {"name": record.name, "members": len(members)})


async def add_member(session: AsyncSession, req: c.GroupMemberRequest) -> None:
    await _change_member(session, req, adding=True)


async def remove_member(session: AsyncSession, req: c.GroupMemberRequest) -> None:
    await _change_member(session, req, adding=False)


async def _change_member(session: AsyncSession, req: c.GroupMemberRequest, *, adding: bool) -> None:
    record = await repo.get_shared(session, req.group_id)
    if record is None:
        raise NotFound("no such group")
    email = await users_repo.email_of(session, req.user_id)
    if email is None:
        raise NotFound("no such user")
    change = repo.add_member if adding else repo.remove_member
    if await change(session, req.group_id, req.user_id):
        details: dict[str, object] = {"name": record.name, "user_id": str(req.user_id), "email": email}
        action = "group.member_added" if adding else "group.member_removed"
        await _audit(session, action, req.actor_id, req.group_id, details)


async def membership(session: AsyncSession, req: c.GroupMembershipRequest) -> c.GroupMembership:
    record = await _live(session, req.group_id)
    member = await repo.is_member(session, req.group_id, req.user_id)
    return c.GroupMembership(group_id=record.id, name=record.name, member=member)


async def names(session: AsyncSession, req: c.GroupNamesRequest) -> c.GroupNames:
    return c.GroupNames(names=await repo.names(session, list(dict.fromkeys(req.ids))))
