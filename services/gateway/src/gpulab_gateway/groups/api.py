"""`/groups` (admin): the lab's groups, which requests and assignments are charged to; and
`/me/groups`: the caller's own. Identity keeps the groups; the scheduler says whether one is in use."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpulab_core.contracts import groups as contract
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts.common import DEFAULT_LIMIT, MAX_LIMIT, Contract
from gpulab_core.contracts.operations import Operation
from gpulab_core.errors import Conflict
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for

router = APIRouter(tags=["groups"])

ADMIN_ONLY = {403: "`csrf_failed`: the `X-CSRF-Token` header is missing or wrong; `forbidden`: not an admin"}
ADMIN_READ = {403: "`forbidden`: not an admin"}
IN_USE = {409: "`group_in_use`: open requests or active assignments are charged to it"}

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]


class NewGroup(Contract):
    name: str = Field(min_length=1, max_length=contract.GROUP_NAME_MAX)
    description: str = Field(default="", max_length=contract.GROUP_DESCRIPTION_MAX)


class GroupChange(BaseModel):
    """At least one of the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    name: str | None = Field(default=None, min_length=1, max_length=contract.GROUP_NAME_MAX)
    description: str | None = Field(default=None, max_length=contract.GROUP_DESCRIPTION_MAX)

    @model_validator(mode="after")
    def _something(self) -> GroupChange:
        if self.name is None and self.description is None:
            raise ValueError("give `name`, `description` or both")
        return self


class NewMember(Contract):
    user_id: uuid.UUID


class GroupList(BaseModel):
    items: list[contract.Group]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


@router.post(
    "/groups",
    status_code=201,
    summary="Create a group",
    responses=problems_for(ops.GROUPS_CREATE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def create_group(body: NewGroup, session: sessions.AdminWrite, request: Request) -> contract.Group:
    payload = contract.CreateGroupRequest(actor_id=session.user.id, name=body.name, description=body.description)
    return await upstream.ask(request, ops.GROUPS_CREATE, payload)


@router.get(
    "/groups",
    summary="Groups, a page at a time",
    responses=problems_for(ops.GROUPS_LIST, 401, 403, 422, meaning=ADMIN_READ),
)
async def list_groups(
    _session: sessions.AdminRead, request: Request, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> GroupList:
    page = await upstream.ask(request, ops.GROUPS_LIST, contract.ListGroupsRequest(limit=limit, cursor=cursor))
    return GroupList(items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/groups/{id}", summary="One group", responses=problems_for(ops.GROUPS_GET, 401, 403, 422, meaning=ADMIN_READ)
)
async def get_group(id: uuid.UUID, _session: sessions.AdminRead, request: Request) -> contract.Group:
    return await upstream.ask(request, ops.GROUPS_GET, contract.GroupIdRequest(id=id))


@router.patch(
    "/groups/{id}",
    summary="Rename a group or change its description",
    responses=problems_for(ops.GROUPS_UPDATE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def update_group(
    id: uuid.UUID, body: GroupChange, session: sessions.AdminWrite, request: Request
) -> contract.Group:
    payload = contract.UpdateGroupRequest(actor_id=session.user.id, id=id, name=body.name, description=body.description)
    return await upstream.ask(request, ops.GROUPS_UPDATE, payload)


@router.delete(
    "/groups/{id}",
    status_code=204,
    response_class=Response,
    summary="Delete a group nothing open is charged to (its name stays in usage reports and the audit log)",
    responses=problems_for(ops.GROUPS_DELETE, 401, 403, 409, 422, meaning={**ADMIN_ONLY, **IN_USE}),
)
async def delete_group(id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> Response:
    # Not found first (404 for an unknown group, whatever the scheduler holds), then in use.
    await upstream.ask(request, ops.GROUPS_GET, contract.GroupIdRequest(id=id))
    if (await upstream.ask(request, ops.GROUPS_CHARGED, contract.GroupChargedRequest(group_id=id))).charged:
        raise Conflict(
            "open requests or active assignments are charged to this group; wait for them to end, or end them",
            code=contract.GROUP_IN_USE,
        )
    await upstream.command(request, ops.GROUPS_DELETE, contract.DeleteGroupRequest(actor_id=session.user.id, id=id))
    return Response(status_code=204)


@router.post(
    "/groups/{id}/members",
    status_code=204,
    response_class=Response,
    summary="Add a user (active, invited or disabled) to a group; adding a member again changes nothing",
    responses=problems_for(ops.GROUPS_ADD_MEMBER, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def add_member(id: uuid.UUID, body: NewMember, session: sessions.AdminWrite, request: Request) -> Response:
    return await _members(request, ops.GROUPS_ADD_MEMBER, session, id, body.user_id)


@router.delete(
    "/groups/{id}/members/{user_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a user from a group; removing a non-member changes nothing",
    responses=problems_for(ops.GROUPS_REMOVE_MEMBER, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def remove_member(id: uuid.UUID, user_id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> Response:
    return await _members(request, ops.GROUPS_REMOVE_MEMBER, session, id, user_id)


async def _members(
    request: Request,
    op: Operation[contract.GroupMemberRequest, Any],
    session: sessions.Session,
    group_id: uuid.UUID,
    user_id: uuid.UUID,
) -> Response:
    payload = contract.GroupMemberRequest(actor_id=session.user.id, group_id=group_id, user_id=user_id)
    await upstream.command(request, op, payload)
    return Response(status_code=204)


@router.get("/me/groups", summary="The groups I am a member of", responses=problems_for(ops.GROUPS_OF_USER, 401))
async def my_groups(session: sessions.UserRead, request: Request) -> GroupList:
    found = await upstream.ask(request, ops.GROUPS_OF_USER, contract.GroupsOfUserRequest(user_id=session.user.id))
    return GroupList(items=found.items, next_cursor=None)
