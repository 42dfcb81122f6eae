"""`/me/ssh-keys`: the caller's own SSH public keys, which their assignments' nodes will trust."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gpulab_core.contracts import identity as contract
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts.common import Contract
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for

router = APIRouter(prefix="/me/ssh-keys", tags=["ssh keys"])


class NewSshKey(Contract):
    public_key: str = Field(
        max_length=contract.SSH_KEY_MAX_BYTES * 2,
        description="one line as in `~/.ssh/id_ed25519.pub`: type, base64 key, optional comment",
    )


class SshKeyList(BaseModel):
    items: list[contract.SshKey]
    next_cursor: str | None = Field(description="always null: a user's keys fit in one page")


@router.get("", summary="My SSH public keys", responses=problems_for(ops.SSH_KEYS_LIST, 401))
async def list_keys(session: sessions.UserRead, request: Request) -> SshKeyList:
    keys = await upstream.ask(request, ops.SSH_KEYS_LIST, contract.ListSshKeysRequest(user_id=session.user.id))
    return SshKeyList(items=keys.items, next_cursor=None)


@router.post(
    "",
    status_code=201,
    summary="Add an SSH public key",
    responses=problems_for(ops.SSH_KEYS_ADD, 401, 403),
)
async def add_key(body: NewSshKey, session: sessions.UserWrite, request: Request) -> contract.SshKey:
    key = await upstream.ask(
        request, ops.SSH_KEYS_ADD, contract.AddSshKeyRequest(user_id=session.user.id, public_key=body.public_key)
    )
    sessions.cache_of(request).forget(session.key)  # the user's `has_ssh_key` may have changed
    return key


@router.delete(
    "/{id}",
    status_code=204,
    response_class=Response,
    summary="Remove one of my SSH public keys",
    responses=problems_for(ops.SSH_KEYS_DELETE, 401, 403, 422),
)
async def delete_key(id: uuid.UUID, session: sessions.UserWrite, request: Request) -> Response:
    await upstream.command(request, ops.SSH_KEYS_DELETE, contract.DeleteSshKeyRequest(user_id=session.user.id, id=id))
    sessions.cache_of(request).forget(session.key)
    return Response(status_code=204)
