"""Groups (API.md "Self-service and fair use"): identity keeps them and their members (subjects
`gpulab.rpc.identity.groups.*`); the scheduler charges requests and assignments to a group, asks
identity whether a user is a member (`groups.membership`) and tells the gateway whether a group is
still charged (`gpulab.rpc.scheduler.groups.charged`) before it may be deleted."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from gpulab_core.contracts.common import MAX_LIMIT, Contract, Page

GROUP_NAME_MAX = 100
GROUP_DESCRIPTION_MAX = 2000


class Group(Contract):
    id: uuid.UUID
    name: str
    description: str
    member_ids: list[uuid.UUID]
    created_at: datetime


class GroupPage(Contract):
    items: list[Group]
    next_cursor: str | None


class GroupList(Contract):
    items: list[Group]


class CreateGroupRequest(Contract):
    actor_id: uuid.UUID
    name: str = Field(min_length=1, max_length=GROUP_NAME_MAX)
    description: str = Field(default="", max_length=GROUP_DESCRIPTION_MAX)


class ListGroupsRequest(Page):
    pass


class GroupIdRequest(Contract):
    id: uuid.UUID


class UpdateGroupRequest(Contract):
    """Fields left out (or null) stay as they are."""

    actor_id: uuid.UUID
    id: uuid.UUID
    name: str | None = Field(default=None, min_length=1, max_length=GROUP_NAME_MAX)
    description: str | None = Field(default=None, max_length=GROUP_DESCRIPTION_MAX)


class DeleteGroupRequest(Contract):
    actor_id: uuid.UUID
    id: uuid.UUID


class GroupMemberRequest(Contract):
    """Add or remove one member. Adding a member twice, or removing one who is not, changes nothing
    and succeeds (idempotent)."""

    actor_id: uuid.UUID
    group_id: uuid.UUID
    user_id: uuid.UUID


class GroupsOfUserRequest(Contract):
    user_id: uuid.UUID


class GroupMembershipRequest(Contract):
    user_id: uuid.UUID
    group_id: uuid.UUID


class GroupMembership(Contract):
    group_id: uuid.UUID
    name: str
    member: bool


class GroupNamesRequest(Contract):
    ids: list[uuid.UUID] = Field(max_length=MAX_LIMIT)


class GroupNames(Contract):
    """Names of the groups asked for that exist or existed (deleted groups keep their name); unknown
    ids are left out."""

    names: dict[uuid.UUID, str]


# The scheduler's answer to "may this group be deleted?".
class GroupChargedRequest(Contract):
    group_id: uuid.UUID


class GroupCharged(Contract):
    charged: bool = Field(description="true while open requests or active assignments are charged to it")


# Error codes.
GROUP_EXISTS = "group_exists"  # 409: a live group has this name
GROUP_IN_USE = "group_in_use"  # 409: open requests or active assignments are charged to it (the gateway's)
