"""Assignments: make one on exact GPUs (placement.py), end it (ends.py), look them up.

Never commits: the NATS edge owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import scheduler as c
from gpulab_core.errors import Conflict, InvalidRequest, NotFound
from gpulab_scheduler.assignments import repository
from gpulab_scheduler.assignments.ends import end_active
from gpulab_scheduler.assignments.placement import place
from gpulab_scheduler.assignments.usernames import username_for
from gpulab_scheduler.environments import repository as environment_rows
from gpulab_scheduler.environments.service import live_row
from gpulab_scheduler.models import tables
from gpulab_scheduler.quotas import service as quotas
from gpulab_scheduler.users.directory import Assignee, UserDirectory, confirm_active

SOURCE = "scheduler"


def to_contract(row: repository.Assignment, gpus: list[repository.Gpu]) -> c.Assignment:
    return c.Assignment(
        id=row.id,
        user_id=row.user_id,
        environment_id=row.environment_id,
        environment_name=row.environment_name,  # None (a row missing) fails loudly
        node_id=row.node_id,
        node_hostname=row.node_hostname,
        placement=row.placement,
        gpus=[c.AssignedGpu(index=g.index, uuid=g.uuid, name=g.name, memory_mb=g.memory_mb) for g in gpus],
        cpus=row.cpus,
        ram_mb=row.ram_mb,
        linux_username=row.linux_username,
        status=row.status,
        created_at=row.created_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        node_state=row.node_state,
        node_message=row.node_message,
        request_id=row.request_id,
        group_id=row.group_id,
    )


async def to_assignments(session: AsyncSession, rows: Sequence[repository.Assignment]) -> list[c.Assignment]:
    """The assignments as contracts, with their GPUs read in one query for all of them.

    A GPU's model name and memory are stored with it at placement (not joined from the node's
    hardware report now): they say what the assignment got, even after the node reports a GPU
    replaced or gone, and a read needs no JSON of every node.
    """
    gpus = await repository.gpus_of(session, [r.id for r in rows])
    return [to_contract(row, gpus[row.id]) for row in rows]


async def to_assignment(session: AsyncSession, row: repository.Assignment) -> c.Assignment:
    (assignment,) = await to_assignments(session, [row])
    return assignment


async def check_request(req: c.CreateAssignmentRequest, users: UserDirectory) -> Assignee:
    """What can be refused before any transaction: the request's shape and the user (from the
    scheduler's copy, or asked of identity once, outside the placement's transaction and its retries)."""
    if req.placement == "fixed" and req.node_id is None:
        raise InvalidRequest("a fixed assignment names its node_id", details={"field": "node_id"})
    if req.placement == "dynamic" and req.node_id is not None:
        raise InvalidRequest(
            "a dynamic assignment does not name a node; use placement fixed", details={"field": "node_id"}
        )
    assignee = await users.assignee(req.user_id)
    if assignee is None:
        raise InvalidRequest("no such user", details={"field": "user_id"})
    if assignee.user.status != "active":
        raise Conflict(f"the user is {assignee.user.status}, not active")
    if not assignee.keys.public_keys:
        raise InvalidRequest("the user has no SSH key: they add one first", code=c.USER_HAS_NO_SSH_KEY)
    return assignee


async def create(
    session: AsyncSession,
    req: c.CreateAssignmentRequest,
    assignee: Assignee,
    *,
    request_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
) -> tuple[c.Assignment, c.AssignmentCreated]:
    """Places and records the assignment. From a self-service request (`request_id`), the queue has
    checked the quotas; an admin's (`POST /assignments`) may exceed them, and its event says so for the
    audit log."""
    env = await live_row(session, req.environment_id)
    user, keys = assignee.user, assignee.keys
    await confirm_active(session, req.user_id)
    now = datetime.now(UTC)
    if req.expires_at is not None:
        expires_at: datetime | None = req.expires_at
        if req.expires_at <= now:
            raise InvalidRequest("expires_at is in the past", details={"field": "expires_at"})
    elif env.default_expiry_hours:
        expires_at = now + timedelta(hours=env.default_expiry_hours)
    else:
        expires_at = None
    cpus = req.cpus if req.cpus is not None else env.default_cpus
    ram_mb = req.ram_mb if req.ram_mb is not None else env.default_ram_mb
    room, gpus = await place(session, env, req, cpus, ram_mb)
    username = await username_for(session, req.user_id, user.email)
    assignment_id = uuid.uuid4()
    created_at = await repository.add(
        session,
        assignment_id=assignment_id,
        user_id=req.user_id,
        user_email=user.email,
        environment_id=env.id,
        node_id=room.node.id,
        placement=req.placement,
        cpus=cpus,
        ram_mb=ram_mb,
        linux_username=username,
        created_by=req.actor_id,
        expires_at=expires_at,
        gpus=gpus,
        request_id=request_id,
        group_id=group_id,
    )
    over = None if request_id is not None else await quotas.over_quota(session, req.user_id)
    # What was just written, without reading it back (one fewer round trip on the hot path).
    assignment = c.Assignment(
        id=assignment_id,
        user_id=req.user_id,
        environment_id=env.id,
        environment_name=env.name,
        node_id=room.node.id,
        node_hostname=room.node.hostname,
        placement=req.placement,
        gpus=[
            c.AssignedGpu(index=g["index"], uuid=g["uuid"], name=g.get("name"), memory_mb=g.get("memory_mb"))
            for g in sorted(gpus, key=lambda g: g["index"])
        ],
        cpus=cpus,
        ram_mb=ram_mb,
        linux_username=username,
        status="active",
        created_at=created_at,
        expires_at=expires_at,
        ended_at=None,
        node_state="pending",
        node_message=None,
        request_id=request_id,
        group_id=group_id,
    )
    event = c.AssignmentCreated(
        assignment_id=assignment_id,
        user_id=req.user_id,
        user_email=user.email,
        environment_id=env.id,
        environment_name=env.name,
        node_id=room.node.id,
        node_hostname=room.node.hostname,
        placement=req.placement,
        linux_username=username,
        ssh_public_keys=keys.public_keys,
        enforcement_mode=env.enforcement_mode,
        gpus=[c.EventGpu(index=g.index, uuid=g.uuid) for g in assignment.gpus],
        cpus=cpus,
        ram_mb=ram_mb,
        expires_at=expires_at,
        actor_id=req.actor_id,
        request_id=request_id,
        group_id=group_id,
        over_quota=over,
    )
    await outbox.emit(session, tables.outbox, c.ASSIGNMENT_CREATED, event.model_dump(mode="json"), source=SOURCE)
    return assignment, event


async def row_of(
    session: AsyncSession, assignment_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> repository.Assignment:
    row = await repository.get(session, assignment_id, user_id)
    if row is None:
        raise NotFound("no such assignment")
    return row


async def revoke(session: AsyncSession, req: c.AssignmentIdRequest) -> c.Assignment:
    row = await row_of(session, req.id)
    if row.status == "active":
        await end_active(session, "revoked", req.actor_id, assignment_id=req.id)
        row = await row_of(session, req.id)
    elif row.status != "revoked":
        raise Conflict(f"the assignment has {row.status} already", code=c.ASSIGNMENT_ENDED_ALREADY)
    return await to_assignment(session, row)


async def get(session: AsyncSession, req: c.AssignmentIdRequest) -> c.Assignment:
    return await to_assignment(session, await row_of(session, req.id))


async def get_mine(session: AsyncSession, req: c.MyAssignmentRequest) -> c.Assignment:
    return await to_assignment(session, await row_of(session, req.id, req.user_id))


async def list_page(session: AsyncSession, req: c.ListAssignmentsRequest) -> c.AssignmentPage:
    rows, cursor = await repository.page(
        session,
        req.cursor,
        req.limit,
        user_id=req.user_id,
        environment_id=req.environment_id,
        node_id=req.node_id,
        status=req.status,
    )
    return c.AssignmentPage(items=await to_assignments(session, rows), next_cursor=cursor)


async def environment_of(session: AsyncSession, environment_id: uuid.UUID) -> environment_rows.Environment:
    """The assignment's environment, deleted or not (its row is kept for this)."""
    env = await environment_rows.get(session, environment_id)
    if env is None:
        raise NotFound("no such environment")
    return env
