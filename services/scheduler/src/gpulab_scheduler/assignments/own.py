"""What a user does with their own assignment: extend it (within the quotas and the Environment's
longest duration; an `approval` Environment asks an admin) and release it early. Never commits."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import scheduler as sch
from gpulab_core.contracts import selfservice as c
from gpulab_core.errors import Conflict, InvalidRequest, NotFound
from gpulab_scheduler.assignments import repository
from gpulab_scheduler.assignments.ends import end_active
from gpulab_scheduler.assignments.service import environment_of, to_assignment
from gpulab_scheduler.models import tables
from gpulab_scheduler.quotas import service as quotas
from gpulab_scheduler.quotas.rules import month_bounds
from gpulab_scheduler.requests import repository as requests
from gpulab_scheduler.requests import service as request_rules

SOURCE = "scheduler"


async def _active_mine(session: AsyncSession, assignment_id: uuid.UUID, user_id: uuid.UUID) -> repository.Assignment:
    row = await repository.lock_mine(session, assignment_id, user_id)
    if row is None:
        raise NotFound("no such assignment")
    if row.status != "active":
        raise Conflict(f"the assignment has {row.status} already", code=sch.ASSIGNMENT_ENDED_ALREADY)
    return row


def _booked(start: datetime, hours: int, gpus: int) -> float:
    """GPU-hours from `start` for `hours` that fall in this month (what the monthly quota counts)."""
    now = datetime.now(UTC)
    _month_start, month_end = month_bounds(now)
    begin, end = max(start, now), min(start + timedelta(hours=hours), month_end)
    return gpus * max(0.0, (end - begin).total_seconds() / 3600)


async def check_extension(session: AsyncSession, row: repository.Assignment, hours: int) -> tuple[int, float]:
    """Refuses an extension the rules do not allow; (GPUs, whole length in hours after it)."""
    env = await environment_of(session, row.environment_id)
    request_rules.require_self_service(env)
    if row.expires_at is None:
        raise InvalidRequest("the assignment has no expiry: there is nothing to extend", details={"field": "hours"})
    waiting = (await requests.queue_sizes(session, [env.id])).get(env.id)
    if waiting is not None and waiting.requests:
        raise Conflict(
            f"{waiting.requests} request(s) wait in {env.name}'s queue: release the GPUs when you are done instead",
            code=c.OTHERS_WAITING,
        )
    length = math.ceil((row.expires_at - row.created_at + timedelta(hours=hours)).total_seconds() / 3600)
    request_rules.check_length(env, length)
    gpus = await repository.gpu_count(session, row.id)
    await quotas.enforce(
        session,
        row.user_id,
        row.group_id,
        gpus=0,
        hours=length,
        booked_gpu_hours=_booked(row.expires_at, hours, gpus),
        count_open=True,
    )
    return gpus, length


async def apply_extension(
    session: AsyncSession, row: repository.Assignment, hours: int, request_id: uuid.UUID | None, actor_id: uuid.UUID
) -> datetime:
    expires_at = await repository.extend(session, row.id, hours)
    event = c.AssignmentExtended(
        assignment_id=row.id,
        user_id=row.user_id,
        user_email=row.user_email,
        request_id=request_id,
        hours=hours,
        expires_at=expires_at,
        actor_id=actor_id,
    )
    await outbox.emit(session, tables.outbox, c.ASSIGNMENT_EXTENDED, event.model_dump(mode="json"), source=SOURCE)
    return expires_at


async def extend(session: AsyncSession, req: c.ExtendRequest) -> c.ExtendReply:
    row = await _active_mine(session, req.id, req.user_id)
    gpus, _length = await check_extension(session, row, req.hours)
    env = await environment_of(session, row.environment_id)
    status = "pending_approval" if env.self_service == "approval" else "granted"
    request = await requests.add(
        session,
        {
            "id": uuid.uuid4(),
            "kind": "extension",
            "user_id": row.user_id,
            "user_email": row.user_email,
            "environment_id": row.environment_id,
            "group_id": row.group_id,
            "assignment_id": row.id,
            "gpus": gpus,
            "cpus": row.cpus,
            "ram_mb": row.ram_mb,
            "hours": req.hours,
            "status": status,
            "decided_at": datetime.now(UTC) if status == "granted" else None,
        },
    )
    await request_rules.emit(
        session, c.REQUEST_SUBMITTED, request_rules.event_of(c.RequestSubmitted, request, status, req.user_id)
    )
    if status == "pending_approval":
        return c.ExtendReply(request=request_rules.to_contract(request))
    await apply_extension(session, row, req.hours, request.id, req.user_id)
    return c.ExtendReply(assignment=await to_assignment(session, await repository.get(session, row.id) or row))


async def approve_extension(session: AsyncSession, r: requests.Request, actor_id: uuid.UUID) -> None:
    """An admin approves an extension: the rules are checked again (the queue may have filled since)."""
    assert r.assignment_id is not None
    row = await _active_mine(session, r.assignment_id, r.user_id)
    await check_extension(session, row, r.hours)
    moved = await requests.change_status(
        session, r.id, "granted", was=("pending_approval",), decided=True, actor_id=actor_id
    )
    if not moved:
        raise request_rules.not_open(r)
    await apply_extension(session, row, r.hours, r.id, actor_id)
    granted = request_rules.event_of(c.RequestGranted, r, "granted", actor_id, waited=True, expires_at=row.expires_at)
    await request_rules.emit(session, c.REQUEST_GRANTED, granted)


async def release(session: AsyncSession, req: c.ReleaseRequest) -> sch.Assignment:
    """Ends the assignment now (status `released`): its GPUs go to the queue at once."""
    await _active_mine(session, req.id, req.user_id)
    await end_active(session, "released", req.user_id, assignment_id=req.id)
    ended = await repository.get(session, req.id)
    assert ended is not None
    return await to_assignment(session, ended)
