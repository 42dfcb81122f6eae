"""Self-service requests: submit, cancel, approve, deny, read; and the grant that turns a queued
request into an assignment (called by the queue's dispatch). Never commits: the NATS edge (handlers)
owns the transactions; a submission is one, and the dispatch that may grant it at once another.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import scheduler as sch
from gpulab_core.contracts import selfservice as c
from gpulab_core.errors import Conflict, InvalidRequest, NotFound
from gpulab_scheduler.assignments import service as assignments
from gpulab_scheduler.environments import repository as environment_rows
from gpulab_scheduler.environments.service import live_row
from gpulab_scheduler.models import tables
from gpulab_scheduler.quotas import service as quotas
from gpulab_scheduler.requests import queue
from gpulab_scheduler.requests import repository as repo
from gpulab_scheduler.users.directory import Assignee

SOURCE = "scheduler"
E = TypeVar("E", bound=c.RequestEvent)


def to_contract(r: repo.Request, place: queue.Place | None = None) -> c.Request:
    return c.Request(
        id=r.id,
        kind=r.kind,
        user_id=r.user_id,
        user_email=r.user_email,
        environment_id=r.environment_id,
        environment_name=r.environment_name,
        group_id=r.group_id,
        assignment_id=r.assignment_id,
        gpus=r.gpus,
        cpus=r.cpus,
        ram_mb=r.ram_mb,
        hours=r.hours,
        note=r.note,
        status=r.status,
        position=place.position if place and r.status == "queued" else None,
        estimated_start_at=place.estimated_start_at if place and r.status == "queued" else None,
        reason=r.reason,
        created_at=r.created_at,
        decided_at=r.decided_at,
    )


async def to_contracts(session: AsyncSession, rows: list[repo.Request]) -> list[c.Request]:
    """The requests with the positions and estimates of those queued (one plan per Environment)."""
    env_ids = {r.environment_id for r in rows if r.status == "queued"}
    envs = [e for e in [await environment_rows.get(session, i) for i in sorted(env_ids)] if e is not None]
    places = await queue.place_of(session, envs, {r.id for r in rows if r.status == "queued"}) if envs else {}
    return [to_contract(r, places.get(r.id)) for r in rows]


def event_of(kind: type[E], r: repo.Request, status: str, actor_id: uuid.UUID | None, **extra: object) -> E:
    """The event of `kind` about the request, now `status`."""
    return kind.model_validate(
        {
            "request_id": r.id,
            "kind": r.kind,
            "user_id": r.user_id,
            "user_email": r.user_email,
            "environment_id": r.environment_id,
            "environment_name": r.environment_name,
            "group_id": r.group_id,
            "assignment_id": r.assignment_id,
            "gpus": r.gpus,
            "hours": r.hours,
            "note": r.note,
            "status": status,
            "actor_id": actor_id,
            **extra,
        }
    )


async def emit(session: AsyncSession, event_type: str, payload: c.RequestEvent) -> None:
    await outbox.emit(session, tables.outbox, event_type, payload.model_dump(mode="json"), source=SOURCE)


async def mine_or_missing(session: AsyncSession, request_id: uuid.UUID, user_id: uuid.UUID | None) -> repo.Request:
    found = await repo.get(session, request_id, user_id, lock=True)
    if found is None:
        raise NotFound("no such request")
    return found


def not_open(row: repo.Request) -> Conflict:
    """What acting on a request that was decided, granted or cancelled meanwhile answers."""
    return Conflict(f"the request is {row.status} already", code=c.REQUEST_NOT_OPEN)


def check_length(env: environment_rows.Environment, hours: int) -> None:
    if env.max_hours is not None and hours > env.max_hours:
        raise InvalidRequest(
            f"{env.name} allows requests of at most {env.max_hours} hour(s); {hours} asked for",
            code=c.TOO_LONG,
            details={"field": "hours", "max_hours": env.max_hours},
        )


def require_self_service(env: environment_rows.Environment) -> None:
    if env.self_service == "off":
        raise Conflict(f"{env.name} does not take requests: an admin assigns its GPUs", code=c.SELF_SERVICE_OFF)


async def submit(
    session: AsyncSession, req: c.SubmitRequest, assignee: Assignee, group_name: str | None
) -> tuple[repo.Request, bool]:
    """Records the request as `pending_approval` (approval) or `queued` (auto), after the quotas
    allowed it; a queued request alone in its queue is granted at once in this same transaction when
    it fits (the usual case, without a second transaction). True when it was granted here."""
    env = await live_row(session, req.environment_id)
    require_self_service(env)
    check_length(env, req.hours)
    # The queue's lock first (then the quotas', as a dispatch takes them): a request's place (`seq`)
    # is taken and committed while it is held, so that no pass sees a later request without an
    # earlier one of the same Environment.
    await repo.lock_environment(session, env.id, wait=True)
    now = datetime.now(UTC)
    await quotas.enforce_request(
        session, req.user_id, req.group_id, gpus=req.gpus, hours=req.hours, count_open=True, group_name=group_name
    )
    status = "pending_approval" if env.self_service == "approval" else "queued"
    row = await repo.add(
        session,
        {
            "id": uuid.uuid4(),
            "kind": "new",
            "user_id": req.user_id,
            "user_email": assignee.user.email,
            "environment_id": env.id,
            "group_id": req.group_id,
            "gpus": req.gpus,
            "cpus": req.cpus if req.cpus is not None else env.default_cpus,
            "ram_mb": req.ram_mb if req.ram_mb is not None else env.default_ram_mb,
            "hours": req.hours,
            "note": req.note,
            "status": status,
            "queued_at": now if status == "queued" else None,
        },
    )
    granted = status == "queued" and await _grant_if_alone(session, row, assignee)
    if granted:
        row = await mine_or_missing(session, row.id, None)
    # One event says what happened at once (RequestSubmitted's `status`): no RequestGranted beside it.
    await emit(session, c.REQUEST_SUBMITTED, event_of(c.RequestSubmitted, row, row.status, req.user_id))
    return row, granted


async def _grant_if_alone(session: AsyncSession, row: repo.Request, assignee: Assignee) -> bool:
    """The submission's own chance, under the queue's lock it holds: True when it was granted."""

    async def now(session: AsyncSession, r: repo.Request, node_id: uuid.UUID | None) -> None:
        await grant(session, r, node_id, assignee, fresh=True, announce=False)

    return bool(await queue.grant_if_alone(session, row.environment_id, now))


async def cancel(session: AsyncSession, req: c.MyRequestRequest) -> repo.Request:
    row = await mine_or_missing(session, req.id, req.user_id)
    if not await repo.change_status(session, row.id, "cancelled", was=repo.OPEN, decided=True, actor_id=req.user_id):
        raise not_open(row)
    await emit(session, c.REQUEST_CANCELLED, event_of(c.RequestCancelled, row, "cancelled", req.user_id))
    return await mine_or_missing(session, req.id, req.user_id)


async def deny(session: AsyncSession, req: c.DenyRequest) -> repo.Request:
    row = await mine_or_missing(session, req.id, None)
    moved = await repo.change_status(
        session, row.id, "denied", was=repo.OPEN, decided=True, actor_id=req.actor_id, reason=req.reason
    )
    if not moved:
        raise not_open(row)
    await emit(session, c.REQUEST_DENIED, event_of(c.RequestDenied, row, "denied", req.actor_id, reason=req.reason))
    return await mine_or_missing(session, req.id, None)


async def approve_new(session: AsyncSession, row: repo.Request, actor_id: uuid.UUID) -> None:
    """An approved request joins its Environment's queue (the dispatch that follows may grant it)."""
    await repo.lock_environment(session, row.environment_id, wait=True)
    moved = await repo.change_status(
        session, row.id, "queued", was=("pending_approval",), decided=True, actor_id=actor_id
    )
    if not moved:
        raise not_open(row)


async def grant(
    session: AsyncSession,
    r: repo.Request,
    node_id: uuid.UUID | None,
    assignee: Assignee,
    *,
    fresh: bool,
    announce: bool = True,
) -> None:
    """The request becomes an assignment on `node_id` (None: where placement finds room) for its
    hours, if its quotas allow it now. `fresh`: submitted in this very call, whose check (counting
    it as open) was made a moment ago under the same locks: not checked twice, and its user, who
    sees the grant in the reply, is not mailed. `announce=False`: the submission's own event says it."""
    if not fresh:
        await quotas.enforce_request(session, r.user_id, r.group_id, gpus=r.gpus, hours=r.hours, count_open=False)
    now = datetime.now(UTC)
    made, _event = await assignments.create(
        session,
        sch.CreateAssignmentRequest(
            user_id=r.user_id,
            environment_id=r.environment_id,
            gpus=r.gpus,
            cpus=r.cpus,
            ram_mb=r.ram_mb,
            placement="fixed" if node_id is not None else "dynamic",
            node_id=node_id,
            expires_at=now + timedelta(hours=r.hours),
        ),
        assignee,
        request_id=r.id,
        group_id=r.group_id,
    )
    if not await repo.change_status(session, r.id, "granted", was=("queued",), decided=True, assignment_id=made.id):
        raise Conflict("the request left the queue meanwhile")
    if announce:
        granted = event_of(
            c.RequestGranted, r, "granted", None, assignment_id=made.id, waited=not fresh, expires_at=made.expires_at
        )
        await emit(session, c.REQUEST_GRANTED, granted)
