"""Quotas (API.md "Self-service and fair use"): admins set a user's or a group's (`PUT /quotas/...`)
and read them all with their use; a user reads their own and their groups' (`GET /me/quota`)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from gpulab_core.contracts import groups as groups_contract
from gpulab_core.contracts import identity as identity_contract
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import selfservice as contract
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for

router = APIRouter(tags=["self-service"])

ADMIN_ONLY = {403: "`csrf_failed`: the `X-CSRF-Token` header is missing or wrong; `forbidden`: not an admin"}
ADMIN_READ = {403: "`forbidden`: not an admin"}
NO_SUCH = {404: "`not_found`: no such user or group"}


async def _set(
    request: Request, session: sessions.Session, kind: str, subject: uuid.UUID, body: contract.QuotaLimits
) -> contract.Quota:
    payload = contract.SetQuotaRequest(
        subject_type=kind,
        subject_id=subject,
        actor_id=session.user.id,
        **body.model_dump(),
    )
    return await upstream.ask(request, ops.QUOTAS_SET, payload)


@router.put(
    "/quotas/users/{id}",
    summary="Set a user's quota (a null limit is no limit)",
    responses=problems_for(ops.QUOTAS_SET, 401, 403, 404, 422, meaning={**ADMIN_ONLY, **NO_SUCH}),
)
async def set_user_quota(
    id: uuid.UUID, body: contract.QuotaLimits, session: sessions.AdminWrite, request: Request
) -> contract.Quota:
    await upstream.ask(request, ops.USERS_GET, identity_contract.UserIdRequest(id=id))  # 404 when unknown
    return await _set(request, session, "user", id, body)


@router.put(
    "/quotas/groups/{id}",
    summary="Set a group's quota (a null limit is no limit)",
    responses=problems_for(ops.QUOTAS_SET, 401, 403, 404, 422, meaning={**ADMIN_ONLY, **NO_SUCH}),
)
async def set_group_quota(
    id: uuid.UUID, body: contract.QuotaLimits, session: sessions.AdminWrite, request: Request
) -> contract.Quota:
    await upstream.ask(request, ops.GROUPS_GET, groups_contract.GroupIdRequest(id=id))  # 404 when unknown
    return await _set(request, session, "group", id, body)


@router.get(
    "/quotas",
    summary="Every quota set, with what counts against it now",
    responses=problems_for(ops.QUOTAS_LIST, 401, 403, meaning=ADMIN_READ),
)
async def list_quotas(_session: sessions.AdminRead, request: Request) -> contract.QuotaList:
    return await upstream.ask(request, ops.QUOTAS_LIST, contract.ListQuotasRequest())


@router.get(
    "/me/quota",
    summary="My quota and my groups' (limits null: no limit), with what counts against each",
    responses=problems_for(ops.QUOTAS_MINE, 401),
)
async def my_quota(session: sessions.UserRead, request: Request) -> contract.MyQuota:
    mine = await upstream.ask(request, ops.GROUPS_OF_USER, groups_contract.GroupsOfUserRequest(user_id=session.user.id))
    payload = contract.MyQuotaRequest(user_id=session.user.id, group_ids=[g.id for g in mine.items])
    return await upstream.ask(request, ops.QUOTAS_MINE, payload)
