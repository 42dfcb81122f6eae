"""Self-service requests (API.md "Self-service and fair use"): a user's `/me/requests`, the admins'
inbox `/requests`, extend and release on `/me/assignments/{id}`, and what a user may request
(`/me/environments`). The scheduler decides; the gateway says who asks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import scheduler as sch
from gpulab_core.contracts import selfservice as contract
from gpulab_core.contracts.common import DEFAULT_LIMIT, MAX_LIMIT, Contract
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for

router = APIRouter(tags=["self-service"])

ADMIN_ONLY = {403: "`csrf_failed`: the `X-CSRF-Token` header is missing or wrong; `forbidden`: not an admin"}
ADMIN_READ = {403: "`forbidden`: not an admin"}
USER_WRITE = {403: "`csrf_failed`: the `X-CSRF-Token` header is missing or wrong"}
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]
Status = Annotated[contract.RequestStatus | None, Query(description="only requests in this status")]


class RequestList(BaseModel):
    items: list[contract.Request]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class Denial(Contract):
    reason: str = Field(min_length=1, max_length=contract.MAX_REASON, description="told to the user")


class Extension(Contract):
    hours: int = Field(ge=1, le=contract.MAX_REQUEST_HOURS, description="hours added to the expiry")


# ---- the user's own ----
@router.post(
    "/me/requests",
    status_code=201,
    summary="Request GPUs in a self-service Environment: granted at once, queued, or sent to an admin",
    responses=problems_for(ops.REQUESTS_SUBMIT, 401, 403, 409, 422, meaning=USER_WRITE),
)
async def submit_request(body: contract.NewRequest, session: sessions.UserWrite, request: Request) -> contract.Request:
    payload = contract.SubmitRequest(user_id=session.user.id, **body.model_dump())
    return await upstream.ask(request, ops.REQUESTS_SUBMIT, payload)


@router.get(
    "/me/requests",
    summary="My requests, oldest first, with the queue position and estimated start of those queued",
    responses=problems_for(ops.REQUESTS_LIST, 401, 422),
)
async def my_requests(
    session: sessions.UserRead,
    request: Request,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Status = None,
) -> RequestList:
    query = contract.ListRequestsRequest(limit=limit, cursor=cursor, user_id=session.user.id, status=status)
    page = await upstream.ask(request, ops.REQUESTS_LIST, query)
    return RequestList(items=page.items, next_cursor=page.next_cursor)


@router.post(
    "/me/requests/{id}/cancel",
    summary="Cancel my request while it waits (pending approval or queued)",
    responses=problems_for(ops.REQUESTS_CANCEL, 401, 403, 409, 422, meaning=USER_WRITE),
)
async def cancel_request(id: uuid.UUID, session: sessions.UserWrite, request: Request) -> contract.Request:
    return await upstream.ask(request, ops.REQUESTS_CANCEL, contract.MyRequestRequest(id=id, user_id=session.user.id))


@router.post(
    "/me/assignments/{id}/extend",
    summary="Extend my assignment: applied at once (200 Assignment), or sent to an admin (202 Request)",
    responses={
        202: {"model": contract.Request, "description": "an admin decides (an `approval` Environment)"},
        **problems_for(ops.ASSIGNMENTS_EXTEND, 401, 403, 409, 422, meaning=USER_WRITE),
    },
)
async def extend_assignment(
    id: uuid.UUID, body: Extension, session: sessions.UserWrite, request: Request, response: Response
) -> sch.Assignment | contract.Request:
    payload = contract.ExtendRequest(id=id, user_id=session.user.id, hours=body.hours)
    reply = await upstream.ask(request, ops.ASSIGNMENTS_EXTEND, payload)
    if reply.request is not None:
        response.status_code = 202
        return reply.request
    assert reply.assignment is not None
    return reply.assignment


@router.post(
    "/me/assignments/{id}/release",
    summary="Give my assignment back now (status `released`): its GPUs go to the queue at once",
    responses=problems_for(ops.ASSIGNMENTS_RELEASE, 401, 403, 409, 422, meaning=USER_WRITE),
)
async def release_assignment(id: uuid.UUID, session: sessions.UserWrite, request: Request) -> sch.Assignment:
    return await upstream.ask(request, ops.ASSIGNMENTS_RELEASE, contract.ReleaseRequest(id=id, user_id=session.user.id))


@router.get(
    "/me/environments",
    summary="The Environments I may request GPUs in, with their free GPUs and queues",
    responses=problems_for(ops.ENVIRONMENTS_OFFERS, 401),
)
async def my_environments(_session: sessions.UserRead, request: Request) -> contract.EnvironmentOffers:
    return await upstream.ask(request, ops.ENVIRONMENTS_OFFERS, contract.ListOffersRequest())


@router.get(
    "/me/environments/{id}/estimate",
    summary="Where a request of this size would stand: at once, or its place in the queue and estimated start",
    responses=problems_for(ops.ENVIRONMENTS_ESTIMATE, 401, 422),
)
async def estimate(
    id: uuid.UUID,
    _session: sessions.UserRead,
    request: Request,
    gpus: Annotated[int, Query(ge=1, le=contract.MAX_REQUEST_GPUS)],
    hours: Annotated[int, Query(ge=1, le=contract.MAX_REQUEST_HOURS)],
) -> contract.Estimate:
    payload = contract.EstimateRequest(environment_id=id, gpus=gpus, hours=hours)
    return await upstream.ask(request, ops.ENVIRONMENTS_ESTIMATE, payload)


# ---- the admins' inbox ----
@router.get(
    "/requests",
    summary="Requests, oldest first (the inbox: status=pending_approval)",
    responses=problems_for(ops.REQUESTS_LIST, 401, 403, 422, meaning=ADMIN_READ),
)
async def list_requests(
    _session: sessions.AdminRead,
    request: Request,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Status = None,
    environment_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> RequestList:
    query = contract.ListRequestsRequest(
        limit=limit, cursor=cursor, status=status, environment_id=environment_id, user_id=user_id
    )
    page = await upstream.ask(request, ops.REQUESTS_LIST, query)
    return RequestList(items=page.items, next_cursor=page.next_cursor)


@router.post(
    "/requests/{id}/approve",
    summary="Approve a request: it joins the queue (granted at once when it fits), or the extension applies",
    responses=problems_for(ops.REQUESTS_APPROVE, 401, 403, 409, 422, meaning=ADMIN_ONLY),
)
async def approve_request(id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> contract.Request:
    payload = contract.RequestIdRequest(id=id, actor_id=session.user.id)
    return await upstream.ask(request, ops.REQUESTS_APPROVE, payload)


@router.post(
    "/requests/{id}/deny",
    summary="Deny a request that waits, with the reason its user is told",
    responses=problems_for(ops.REQUESTS_DENY, 401, 403, 409, 422, meaning=ADMIN_ONLY),
)
async def deny_request(id: uuid.UUID, body: Denial, session: sessions.AdminWrite, request: Request) -> contract.Request:
    payload = contract.DenyRequest(id=id, actor_id=session.user.id, reason=body.reason)
    return await upstream.ask(request, ops.REQUESTS_DENY, payload)
