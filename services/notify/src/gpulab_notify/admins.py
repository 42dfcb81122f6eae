"""Who the admins are: asked of identity over NATS RPC (`users.list`) each time it matters.

notify keeps no copy of identity's users: an admin notification is rare, and asking at that moment
means a disabled admin is never told and a new one is, without a projection to keep in step.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict

from gpulab_core.contracts import identity
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts.common import MAX_LIMIT
from gpulab_core.rpc import RpcClient


class Admin(BaseModel):
    """The fields of identity's `User` that notify uses. Lenient about the others (unlike the shared
    contract), so that an identity upgraded first, whose users gained a field, is still understood."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    email: str
    role: str
    status: str


class _Page(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[Admin]
    next_cursor: str | None


async def active_admins(rpc: RpcClient) -> list[Admin]:
    """Every active admin, each address once, following identity's pages.

    Raises what the RPC client raises (`Unavailable` when identity does not answer): the caller's
    event is then redelivered later rather than recorded as mailed to nobody.
    """
    found: dict[str, Admin] = {}
    cursor: str | None = None
    while True:
        request = identity.ListUsersRequest(role="admin", status="active", limit=MAX_LIMIT, cursor=cursor)
        page = _Page.model_validate(await rpc.request(ops.USERS_LIST, request))
        for user in page.items:
            # identity filters already; checked again because a mail to a disabled account is the one
            # mistake this list must never make.
            if user.role == "admin" and user.status == "active":
                found.setdefault(user.email.lower(), user)
        if page.next_cursor is None:
            return list(found.values())
        cursor = page.next_cursor
