"""`/audit-log`: who did what to what, and when; filtered, newest first, a page at a time; and its check."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from gpulab_core.contracts import identity as contract
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts.common import DEFAULT_LIMIT, MAX_LIMIT
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for

router = APIRouter(tags=["audit"])


class AuditLogPage(BaseModel):
    items: list[contract.AuditEntry]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


@router.get(
    "/audit-log",
    summary="The audit log, filtered",
    responses=problems_for(ops.AUDIT_LIST, 401, 403, 422, meaning={403: "`forbidden`: not an admin"}),
)
async def audit_log(
    _session: sessions.AdminRead,
    request: Request,
    actor_id: Annotated[uuid.UUID | None, Query(description="who acted")] = None,
    action: Annotated[str | None, Query(max_length=100, description="e.g. `user.invited`")] = None,
    target_type: Annotated[str | None, Query(max_length=100, description="e.g. `user`")] = None,
    target_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[AwareDatetime | None, Query(description="at or after (RFC 3339)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="before (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
) -> AuditLogPage:
    page = await upstream.ask(
        request,
        ops.AUDIT_LIST,
        contract.ListAuditRequest(
            limit=limit,
            cursor=cursor,
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            since=since,
            until=until,
        ),
    )
    return AuditLogPage(items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/audit-log/verify",
    summary="Recompute the audit log's hash chain (what `gpulab audit verify` checks)",
    description="Checks for at most about half of `GPULAB_RPC_TIMEOUT_S` per call. While `valid` is null the "
    "check is not finished: call again with `cursor` = `next_cursor` (and show `checked` as progress).",
    responses=problems_for(
        ops.AUDIT_VERIFY,
        401,
        403,
        422,
        meaning={403: "`forbidden`: not an admin", 422: "`invalid_request`: the cursor is not valid"},
    ),
)
async def verify_audit_log(
    _session: sessions.AdminRead,
    request: Request,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous call, to go on")
    ] = None,
) -> contract.AuditVerification:
    return await upstream.ask(request, ops.AUDIT_VERIFY, contract.VerifyAuditRequest(cursor=cursor))
