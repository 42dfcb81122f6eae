"""`/users`: the admin's view of accounts: invite, list, look at, enable or disable, change role."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from gpulab_core.contracts import identity as contract
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts.common import DEFAULT_LIMIT, MAX_LIMIT
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for
from gpulab_gateway.users.schemas import NewInvite, UserChange, UserList

router = APIRouter(prefix="/users", tags=["users"])

ADMIN_ONLY = {403: "`csrf_failed`: the `X-CSRF-Token` header is missing or wrong; `forbidden`: not an admin"}
ADMIN_READ = {403: "`forbidden`: not an admin"}

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]


@router.post(
    "/invites",
    status_code=201,
    summary="Invite someone: creates the user (status `invited`) and sends the invite email",
    responses=problems_for(ops.INVITES_CREATE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def invite(body: NewInvite, session: sessions.AdminWrite, request: Request) -> contract.User:
    return await upstream.ask(
        request, ops.INVITES_CREATE, contract.InviteRequest(actor_id=session.user.id, email=body.email, role=body.role)
    )


@router.get(
    "", summary="Users, a page at a time", responses=problems_for(ops.USERS_LIST, 401, 403, 422, meaning=ADMIN_READ)
)
async def list_users(
    _session: sessions.AdminRead,
    request: Request,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Annotated[contract.UserStatus | None, Query(description="only users in this state")] = None,
    role: Annotated[contract.Role | None, Query(description="only users with this role")] = None,
) -> UserList:
    page = await upstream.ask(
        request, ops.USERS_LIST, contract.ListUsersRequest(limit=limit, cursor=cursor, status=status, role=role)
    )
    return UserList(items=page.items, next_cursor=page.next_cursor)


@router.get("/{id}", summary="One user", responses=problems_for(ops.USERS_GET, 401, 403, 422, meaning=ADMIN_READ))
async def get_user(id: uuid.UUID, _session: sessions.AdminRead, request: Request) -> contract.User:
    return await upstream.ask(request, ops.USERS_GET, contract.UserIdRequest(id=id))


@router.patch(
    "/{id}",
    summary="Enable or disable a user, or change their role; a disabled user's sessions end",
    responses=problems_for(ops.USERS_UPDATE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def update_user(id: uuid.UUID, body: UserChange, session: sessions.AdminWrite, request: Request) -> contract.User:
    user = await upstream.ask(
        request,
        ops.USERS_UPDATE,
        contract.UpdateUserRequest(actor_id=session.user.id, id=id, status=body.status, role=body.role),
    )
    # This replica stops trusting its cached sessions of that user at once; others within their TTL.
    sessions.cache_of(request).forget_user(user.id)
    return user
