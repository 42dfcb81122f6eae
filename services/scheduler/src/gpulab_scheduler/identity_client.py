"""What the scheduler asks of identity, over NATS RPC, when an assignment or a request is made (never per
heartbeat)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from gpulab_core.contracts import groups as grp
from gpulab_core.contracts import identity as c
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts.groups import GroupMembership
from gpulab_core.errors import RemoteError
from gpulab_core.rpc import RpcClient


class UserFacts(BaseModel):
    """The fields of identity's User the scheduler reads; lenient about the others."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    email: str
    status: str
    has_ssh_key: bool


class AuthorizedKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")

    public_keys: list[str]
    version: int


@dataclass
class IdentityClient:
    rpc: RpcClient

    async def user(self, user_id: uuid.UUID) -> UserFacts | None:
        try:
            reply = await self.rpc.request(ops.USERS_GET, c.UserIdRequest(id=user_id))
        except RemoteError as exc:
            if exc.code == "not_found":
                return None
            raise
        return UserFacts.model_validate(reply)

    async def authorized_keys(self, user_id: uuid.UUID) -> AuthorizedKeys:
        reply = await self.rpc.request(ops.SSH_KEYS_AUTHORIZED, c.ListSshKeysRequest(user_id=user_id))
        return AuthorizedKeys.model_validate(reply)

    async def membership(self, user_id: uuid.UUID, group_id: uuid.UUID) -> GroupMembership | None:
        """Whether the user is in the group, and its name; None when there is no such group."""
        try:
            reply = await self.rpc.request(
                ops.GROUPS_MEMBERSHIP, grp.GroupMembershipRequest(user_id=user_id, group_id=group_id)
            )
        except RemoteError as exc:
            if exc.code == "not_found":
                return None
            raise
        return GroupMembership.model_validate(reply)
