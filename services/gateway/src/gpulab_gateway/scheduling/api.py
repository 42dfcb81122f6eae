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
from gpulab_gateway.openapi import problems

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
    responses=problems(401, 403, 409, 422, meaning={**ADMIN_ONLY, 409: "`environment_exists`: the name is taken"}),
)
async def create_environment(
    body: contract.EnvironmentFields, session: sessions.AdminWrite, request: Request
) -> contract.Environment:
    payload = contract.CreateEnvironmentRequest(actor_id=session.user.id, **body.model_dump())
    return await upstream.ask(request, ops.ENVIRONMENTS_CREATE, payload)


@router.get(
    "/environments", summary="Environments, a page at a time", responses=problems(401, 403, 422, meaning=ADMIN_READ)
)
async def list_environments(
    _session: sessions.AdminRead, request: Request, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> EnvironmentList:
    page = await upstream.ask(request, ops.ENVIRONMENTS_LIST, Page(limit=limit, cursor=cursor))
    return EnvironmentList(items=page.items, next_cursor=page.next_cursor)


@router.get("/environments/{id}", summary="One Environment", responses=problems(401, 403, 404, 422, meaning=ADMIN_READ))
async def get_environment(id: uuid.UUID, _session: sessions.AdminRead, request: Request) -> contract.Environment:
    return await upstream.ask(request, ops.ENVIRONMENTS_GET, contract.EnvironmentIdRequest(id=id))


@router.patch(
    "/environments/{id}",
    summary="Change an Environment (only the fields given)",
    responses=problems(
        401,
        403,
        404,
        409,
        422,
        meaning={
            **ADMIN_ONLY,
            409: "`environment_exists`: the name is taken; `node_not_mig_capable`: a node cannot serve `mig`",
        },
    ),
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
    responses=problems(
        401, 403, 404, 409, 422, meaning={**ADMIN_ONLY, 409: "`environment_in_use`: it has active assignments"}
    ),
)
async def delete_environment(id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> Response:
    payload = contract.EnvironmentIdRequest(id=id, actor_id=session.user.id)
    await upstream.command(request, ops.ENVIRONMENTS_DELETE, payload)
    return Response(status_code=204)


@router.post(
    "/environments/{id}/nodes",
    status_code=204,
    summary="Attach a node to an Environment",
    responses=problems(
        401,
        403,
        404,
        409,
        422,
        meaning={**ADMIN_ONLY, 409: "`node_not_mig_capable`: the node reported no MIG-capable GPU"},
    ),
)
async def attach_node(id: uuid.UUID, body: AttachNode, session: sessions.AdminWrite, request: Request) -> Response:
    payload = contract.EnvironmentNodeRequest(id=id, node_id=body.node_id, actor_id=session.user.id)
    await upstream.ask(request, ops.ENVIRONMENTS_ATTACH_NODE, payload)
    return Response(status_code=204)


@router.delete(
    "/environments/{id}/nodes/{node_id}",
    status_code=204,
    summary="Detach a node: no new assignment of this Environment goes there",
    responses=problems(401, 403, 404, 422, meaning=ADMIN_ONLY),
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
    responses=problems(
        401,
        403,
        404,
        409,
        422,
        meaning={
            **ADMIN_ONLY,
            409: "`no_capacity`: the detail says what was short (no online node, GPUs, CPUs or RAM)",
            422: "`user_has_no_ssh_key`, `invalid_request` (e.g. a node outside the Environment)",
        },
    ),
)
async def create_assignment(
    body: contract.NewAssignment, session: sessions.AdminWrite, request: Request
) -> contract.Assignment:
    payload = contract.CreateAssignmentRequest(actor_id=session.user.id, **body.model_dump())
    return await upstream.ask(request, ops.ASSIGNMENTS_CREATE, payload)


@router.get("/assignments", summary="Assignments, filtered", responses=problems(401, 403, 422, meaning=ADMIN_READ))
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


@router.get("/assignments/{id}", summary="One assignment", responses=problems(401, 403, 404, 422, meaning=ADMIN_READ))
async def get_assignment(id: uuid.UUID, _session: sessions.AdminRead, request: Request) -> contract.Assignment:
    return await upstream.ask(request, ops.ASSIGNMENTS_GET, contract.AssignmentIdRequest(id=id))


@router.post(
    "/assignments/{id}/revoke",
    summary="Revoke an assignment: its GPUs are free at once; the node removes the access at its next heartbeat",
    responses=problems(
        401, 403, 404, 409, 422, meaning={**ADMIN_ONLY, 409: "`assignment_not_active`: it has expired already"}
    ),
)
async def revoke_assignment(id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> contract.Assignment:
    payload = contract.AssignmentIdRequest(id=id, actor_id=session.user.id)
    return await upstream.ask(request, ops.ASSIGNMENTS_REVOKE, payload)


# ---- the user's own ----
@router.get("/me/assignments", summary="My assignments", responses=problems(401, 422))
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
    responses=problems(
        401,
        404,
        409,
        422,
        502,
        meaning={
            409: "`assignment_not_active`: it has ended",
            502: "`access_provider_unavailable`: the jump host is not configured, or NetBird failed",
        },
    ),
)
async def my_access(id: uuid.UUID, session: sessions.UserRead, request: Request) -> contract.Access:
    payload = contract.MyAssignmentRequest(id=id, user_id=session.user.id)
    return await upstream.ask(request, ops.ASSIGNMENTS_ACCESS, payload)
