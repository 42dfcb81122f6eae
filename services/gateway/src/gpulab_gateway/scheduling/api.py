"""`/environments`, `/assignments` (admin) and `/me/assignments` (the user's own, and how to reach them)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import scheduler as contract
from gpulab_core.contracts.common import DEFAULT_LIMIT, MAX_LIMIT, Contract, Page
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for

router = APIRouter(tags=["allocation"])

S = contract.SERVICE
ADMIN_ONLY = {403: "`csrf_failed`: the `X-CSRF-Token` header is missing or wrong; `forbidden`: not an admin"}
ADMIN_READ = {403: "`forbidden`: not an admin"}
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]


class EnvironmentList(BaseModel):
    items: list[contract.Environment]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class AssignmentList(BaseModel):
    items: list[contract.Assignment]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class AttachNode(Contract):
    node_id: uuid.UUID


# ---- environments ----
@router.post(
    "/environments",
    status_code=201,
    summary="Create an Environment",
    responses=problems_for(ops.ENVIRONMENTS_CREATE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def create_environment(
    body: contract.EnvironmentFields, session: sessions.AdminWrite, request: Request
) -> contract.Environment:
    payload = contract.CreateEnvironmentRequest(actor_id=session.user.id, **body.model_dump())
    return await upstream.ask(request, ops.ENVIRONMENTS_CREATE, payload)


@router.get(
    "/environments",
    summary="Environments, a page at a time",
    responses=problems_for(ops.ENVIRONMENTS_LIST, 401, 403, 422, meaning=ADMIN_READ),
)
async def list_environments(
    _session: sessions.AdminRead, request: Request, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> EnvironmentList:
    page = await upstream.ask(request, ops.ENVIRONMENTS_LIST, Page(limit=limit, cursor=cursor))
    return EnvironmentList(items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/environments/{id}",
    summary="One Environment",
    responses=problems_for(ops.ENVIRONMENTS_GET, 401, 403, 422, meaning=ADMIN_READ),
)
async def get_environment(id: uuid.UUID, _session: sessions.AdminRead, request: Request) -> contract.Environment:
    return await upstream.ask(request, ops.ENVIRONMENTS_GET, contract.EnvironmentIdRequest(id=id))


@router.patch(
    "/environments/{id}",
    summary="Change an Environment (only the fields given)",
    responses=problems_for(ops.ENVIRONMENTS_UPDATE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def update_environment(
    id: uuid.UUID, body: contract.EnvironmentChange, session: sessions.AdminWrite, request: Request
) -> contract.Environment:
    payload = contract.UpdateEnvironmentRequest(id=id, actor_id=session.user.id, **body.model_dump(exclude_unset=True))
    return await upstream.ask(request, ops.ENVIRONMENTS_UPDATE, payload)


@router.delete(
    "/environments/{id}",
    status_code=204,
    summary="Delete an Environment without active assignments",
    responses=problems_for(ops.ENVIRONMENTS_DELETE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def delete_environment(id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> Response:
    payload = contract.EnvironmentIdRequest(id=id, actor_id=session.user.id)
    await upstream.command(request, ops.ENVIRONMENTS_DELETE, payload)
    return Response(status_code=204)


@router.post(
    "/environments/{id}/nodes",
    status_code=204,
    summary="Attach a node to an Environment",
    responses=problems_for(ops.ENVIRONMENTS_ATTACH_NODE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def attach_node(id: uuid.UUID, body: AttachNode, session: sessions.AdminWrite, request: Request) -> Response:
    payload = contract.EnvironmentNodeRequest(id=id, node_id=body.node_id, actor_id=session.user.id)
    await upstream.ask(request, ops.ENVIRONMENTS_ATTACH_NODE, payload)
    return Response(status_code=204)


@router.delete(
    "/environments/{id}/nodes/{node_id}",
    status_code=204,
    summary="Detach a node: no new assignment of this Environment goes there",
    responses=problems_for(ops.ENVIRONMENTS_DETACH_NODE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def detach_node(id: uuid.UUID, node_id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> Response:
    payload = contract.EnvironmentNodeRequest(id=id, node_id=node_id, actor_id=session.user.id)
    await upstream.ask(request, ops.ENVIRONMENTS_DETACH_NODE, payload)
    return Response(status_code=204)


# ---- assignments ----
@router.post(
    "/assignments",
    status_code=201,
    summary="Assign GPUs to a user: on a named node (`fixed`) or the best-fitting online node (`dynamic`)",
    responses=problems_for(ops.ASSIGNMENTS_CREATE, 401, 403, meaning=ADMIN_ONLY),
)
async def create_assignment(
    body: contract.NewAssignment, session: sessions.AdminWrite, request: Request
) -> contract.Assignment:
    payload = contract.CreateAssignmentRequest(actor_id=session.user.id, **body.model_dump())
    return await upstream.ask(request, ops.ASSIGNMENTS_CREATE, payload)


@router.get(
    "/assignments",
    summary="Assignments, filtered",
    responses=problems_for(ops.ASSIGNMENTS_LIST, 401, 403, 422, meaning=ADMIN_READ),
)
async def list_assignments(
    _session: sessions.AdminRead,
    request: Request,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    user_id: uuid.UUID | None = None,
    environment_id: uuid.UUID | None = None,
    node_id: uuid.UUID | None = None,
    status: Annotated[contract.AssignmentStatus | None, Query()] = None,
) -> AssignmentList:
    query = contract.ListAssignmentsRequest(
        limit=limit, cursor=cursor, user_id=user_id, environment_id=environment_id, node_id=node_id, status=status
    )
    page = await upstream.ask(request, ops.ASSIGNMENTS_LIST, query)
    return AssignmentList(items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/assignments/{id}",
    summary="One assignment",
    responses=problems_for(ops.ASSIGNMENTS_GET, 401, 403, 422, meaning=ADMIN_READ),
)
async def get_assignment(id: uuid.UUID, _session: sessions.AdminRead, request: Request) -> contract.Assignment:
    return await upstream.ask(request, ops.ASSIGNMENTS_GET, contract.AssignmentIdRequest(id=id))


@router.post(
    "/assignments/{id}/revoke",
    summary="Revoke an assignment: its GPUs are free at once; the node removes the access at its next heartbeat",
    responses=problems_for(ops.ASSIGNMENTS_REVOKE, 401, 403, 422, meaning=ADMIN_ONLY),
)
async def revoke_assignment(id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> contract.Assignment:
    payload = contract.AssignmentIdRequest(id=id, actor_id=session.user.id)
    return await upstream.ask(request, ops.ASSIGNMENTS_REVOKE, payload)


# ---- the user's own ----
@router.get("/me/assignments", summary="My assignments", responses=problems_for(ops.ASSIGNMENTS_LIST, 401, 422))
async def my_assignments(
    session: sessions.UserRead,
    request: Request,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Annotated[contract.AssignmentStatus | None, Query()] = None,
) -> AssignmentList:
    query = contract.ListAssignmentsRequest(limit=limit, cursor=cursor, user_id=session.user.id, status=status)
    page = await upstream.ask(request, ops.ASSIGNMENTS_LIST, query)
    return AssignmentList(items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/me/assignments/{id}/access",
    summary="How to reach my assignment's node: an SSH config, or a NetBird setup key",
    responses=problems_for(ops.ASSIGNMENTS_ACCESS, 401, 422),
)
async def my_access(id: uuid.UUID, session: sessions.UserRead, request: Request) -> contract.Access:
    payload = contract.MyAssignmentRequest(id=id, user_id=session.user.id)
    return await upstream.ask(request, ops.ASSIGNMENTS_ACCESS, payload)
