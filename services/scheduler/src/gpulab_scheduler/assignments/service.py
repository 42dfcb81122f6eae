"""Assignments: make one on exact GPUs, end it (revoke, expiry, node deleted, user disabled), list.

Never commits: the NATS edge owns the transaction.

Placement. `fixed` takes the named node; `dynamic` takes the first node, in a documented order, that
has the room: online nodes of the environment by (free GPUs ascending, host name): best fit, which
keeps the nodes with the most free GPUs whole for the requests that need many (docs/adr/0013).
On the chosen node the GPUs with the lowest indices are taken.

Concurrency. A node's row in the scheduler's node projection is locked (`FOR UPDATE SKIP LOCKED`)
while its free GPUs, CPUs and RAM are counted and the assignment is written, so two replicas never
both fill the last GPU; a node locked by another request is skipped and the whole placement tried
again if no other node fitted, so a busy node is never reported full. The partial unique index on
(node, GPU) among active assignments is the last word: even a bug here cannot give one GPU twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox, pagination
from gpulab_core.contracts import scheduler as c
from gpulab_core.errors import Conflict, InvalidRequest, NotFound
from gpulab_scheduler.assignments.usernames import username_for
from gpulab_scheduler.environments.service import live_row
from gpulab_scheduler.identity_client import AuthorizedKeys, IdentityClient, UserFacts
from gpulab_scheduler.models import assignment_gpus, assignments, environment_nodes, environments, nodes, tables

SOURCE = "scheduler"


class Busy(Exception):
    """Every node that might fit was locked by another placement: try the whole placement again."""


@dataclass(frozen=True)
class Room:
    node: Any
    free_gpus: list[dict[str, Any]]  # in index order
    free_cpus: int | None  # None: the node did not report its CPUs
    free_ram_mb: int | None


async def to_assignment(session: AsyncSession, row: Any) -> c.Assignment:
    gpus = (
        await session.execute(
            select(assignment_gpus.c.gpu_index, assignment_gpus.c.gpu_uuid)
            .where(assignment_gpus.c.assignment_id == row.id)
            .order_by(assignment_gpus.c.gpu_index)
        )
    ).all()
    return c.Assignment(
        id=row.id,
        user_id=row.user_id,
        environment_id=row.environment_id,
        node_id=row.node_id,
        placement=row.placement,
        gpus=[c.AssignedGpu(index=g.gpu_index, uuid=g.gpu_uuid) for g in gpus],
        cpus=row.cpus,
        ram_mb=row.ram_mb,
        linux_username=row.linux_username,
        status=row.status,
        created_at=row.created_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
    )


async def _room(session: AsyncSession, node: Any, mig_only: bool) -> Room:
    held = set(
        (
            await session.execute(
                select(assignment_gpus.c.gpu_uuid).where(
                    assignment_gpus.c.node_id == node.id, assignment_gpus.c.active.is_(True)
                )
            )
        ).scalars()
    )
    used = (
        await session.execute(
            select(
                func.coalesce(func.sum(assignments.c.cpus), 0), func.coalesce(func.sum(assignments.c.ram_mb), 0)
            ).where(assignments.c.node_id == node.id, assignments.c.status == "active")
        )
    ).one()
    hardware = node.hardware or {}
    gpus = sorted(hardware.get("gpus", []), key=lambda g: g["index"])
    free = [g for g in gpus if g["uuid"] not in held and (g.get("mig_capable") or not mig_only)]
    cores, ram = hardware.get("cpu_cores"), hardware.get("ram_mb")
    return Room(
        node=node,
        free_gpus=free,
        free_cpus=cores - int(used[0]) if cores else None,
        free_ram_mb=ram - int(used[1]) if ram else None,
    )


def _shortfall(room: Room, gpus: int, cpus: int, ram_mb: int) -> str | None:
    """Why the request does not fit on this node, or None when it does."""
    if len(room.free_gpus) < gpus:
        return "gpus"
    if cpus and room.free_cpus is not None and room.free_cpus < cpus:
        return "cpus"
    if ram_mb and room.free_ram_mb is not None and room.free_ram_mb < ram_mb:
        return "ram"
    return None


async def _candidates(session: AsyncSession, environment_id: uuid.UUID, node_id: uuid.UUID | None) -> list[Any]:
    """The environment's nodes with what their active assignments hold, in one query."""
    held = (
        select(func.count())
        .select_from(assignment_gpus)
        .where(assignment_gpus.c.node_id == nodes.c.id, assignment_gpus.c.active.is_(True))
        .scalar_subquery()
    )
    active = and_(assignments.c.node_id == nodes.c.id, assignments.c.status == "active")
    used_cpus = select(func.coalesce(func.sum(assignments.c.cpus), 0)).where(active).scalar_subquery()
    used_ram = select(func.coalesce(func.sum(assignments.c.ram_mb), 0)).where(active).scalar_subquery()
    query = (
        select(nodes, held.label("held_gpus"), used_cpus.label("used_cpus"), used_ram.label("used_ram"))
        .join(environment_nodes, environment_nodes.c.node_id == nodes.c.id)
        .where(environment_nodes.c.environment_id == environment_id, nodes.c.deleted_at.is_(None))
    )
    if node_id is not None:
        query = query.where(nodes.c.id == node_id)
    return list((await session.execute(query)).all())


def _estimate(node: Any, mig_only: bool) -> Room:
    """A node's room from the candidates query (how many GPUs are free, not which), for ordering."""
    hardware = node.hardware or {}
    eligible = [g for g in hardware.get("gpus", []) if g.get("mig_capable") or not mig_only]
    free = max(0, len(eligible) - int(node.held_gpus))
    cores, ram = hardware.get("cpu_cores"), hardware.get("ram_mb")
    return Room(
        node=node,
        free_gpus=[{}] * free,
        free_cpus=cores - int(node.used_cpus) if cores else None,
        free_ram_mb=ram - int(node.used_ram) if ram else None,
    )


async def place(
    session: AsyncSession, env: Any, req: c.CreateAssignmentRequest, cpus: int, ram_mb: int
) -> tuple[Room, list[dict[str, Any]]]:
    """The node and GPUs for the request, with that node's row locked until the transaction ends."""
    mig_only = env.enforcement_mode == "mig"
    found = await _candidates(session, req.environment_id, req.node_id)
    if req.placement == "fixed" and not found:
        raise InvalidRequest("the node is not attached to this environment", details={"field": "node_id"})
    online = [n for n in found if n.status == "online"]
    if not online:
        if req.placement == "fixed":
            raise Conflict(f"node {found[0].hostname} is {found[0].status}, not online", code=c.NO_CAPACITY)
        raise Conflict("no node of this environment is online", code=c.NO_CAPACITY)
    if req.placement == "fixed":
        gpu_count = len([g for g in (online[0].hardware or {}).get("gpus", []) if g.get("mig_capable") or not mig_only])
        if req.gpus > gpu_count:
            raise InvalidRequest(
                f"node {online[0].hostname} has {gpu_count} GPU(s); {req.gpus} were asked for",
                details={"field": "gpus"},
            )
    # Best fit: fewest free GPUs first (estimated in one query, counted exactly under the lock).
    rooms = [_estimate(n, mig_only) for n in online]
    rooms.sort(key=lambda r: (len(r.free_gpus), r.node.hostname, str(r.node.id)))
    short: dict[str, int] = {}
    busy = False
    for guess in rooms:
        if _shortfall(guess, req.gpus, cpus, ram_mb) is not None:
            short[_shortfall(guess, req.gpus, cpus, ram_mb) or ""] = 1
            continue
        locked = (
            await session.execute(select(nodes).where(nodes.c.id == guess.node.id).with_for_update(skip_locked=True))
        ).first()
        if locked is None:
            busy = True
            continue
        room = await _room(session, locked, mig_only)
        why = _shortfall(room, req.gpus, cpus, ram_mb)
        if why is None and locked.status == "online" and locked.deleted_at is None:
            return room, room.free_gpus[: req.gpus]
        short[why or "gpus"] = 1
    if busy:
        raise Busy()
    most = max((len(r.free_gpus) for r in rooms), default=0)
    if "gpus" in short or not short:
        detail = f"not enough free GPUs: {req.gpus} asked for, at most {most} free on one online node"
    elif "cpus" in short:
        detail = f"not enough free CPUs on the online nodes with {req.gpus} free GPU(s) ({cpus} asked for)"
    else:
        detail = f"not enough free RAM on the online nodes with {req.gpus} free GPU(s) ({ram_mb} MiB asked for)"
    raise Conflict(detail, code=c.NO_CAPACITY, details={"reason": next(iter(short), "gpus")})


@dataclass(frozen=True)
class Assignee:
    user: UserFacts
    keys: AuthorizedKeys


async def check_request(req: c.CreateAssignmentRequest, identity: IdentityClient) -> Assignee:
    """What can be refused before any transaction: the request's shape and the user (asked of identity
    once, outside the placement's transaction and its retries)."""
    if req.placement == "fixed" and req.node_id is None:
        raise InvalidRequest("a fixed assignment names its node_id", details={"field": "node_id"})
    if req.placement == "dynamic" and req.node_id is not None:
        raise InvalidRequest(
            "a dynamic assignment does not name a node; use placement fixed", details={"field": "node_id"}
        )
    user = await identity.user(req.user_id)
    if user is None:
        raise InvalidRequest("no such user", details={"field": "user_id"})
    if user.status != "active":
        raise Conflict(f"the user is {user.status}, not active")
    keys = await identity.authorized_keys(req.user_id)
    if not keys.public_keys:
        raise InvalidRequest("the user has no SSH key: they add one first", code=c.USER_HAS_NO_SSH_KEY)
    return Assignee(user, keys)


async def create(
    session: AsyncSession, req: c.CreateAssignmentRequest, assignee: Assignee
) -> tuple[c.Assignment, c.AssignmentCreated]:
    env = await live_row(session, req.environment_id)
    user, keys = assignee.user, assignee.keys
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
    row = (
        await session.execute(
            assignments.insert()
            .values(
                id=assignment_id,
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
            )
            .returning(*assignments.c)
        )
    ).one()
    await session.execute(
        assignment_gpus.insert(),
        [
            {"assignment_id": assignment_id, "gpu_uuid": g["uuid"], "gpu_index": g["index"], "node_id": room.node.id}
            for g in gpus
        ],
    )
    assignment = await to_assignment(session, row)
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
    )
    await outbox.emit(session, tables.outbox, c.ASSIGNMENT_CREATED, event.model_dump(mode="json"), source=SOURCE)
    return assignment, event


async def end_where(
    session: AsyncSession, condition: Any, reason: c.EndReason, actor_id: uuid.UUID | None = None
) -> list[Any]:
    """End every active assignment matching `condition`: free its GPUs at once, one event each.
    The UPDATE re-checks `status = 'active'` on each row under its lock, so with several replicas
    (or a revoke racing the expiry) an assignment ends exactly once."""
    now = datetime.now(UTC)
    status = "expired" if reason == "expired" else "revoked"
    ended = (
        await session.execute(
            update(assignments)
            .where(and_(assignments.c.status == "active", condition))
            .values(status=status, ended_at=now, end_reason=reason)
            .returning(*assignments.c)
        )
    ).all()
    if not ended:
        return []
    ids = [r.id for r in ended]
    await session.execute(update(assignment_gpus).where(assignment_gpus.c.assignment_id.in_(ids)).values(active=False))
    hostnames = dict(
        (
            await session.execute(
                select(nodes.c.id, nodes.c.hostname).where(nodes.c.id.in_({r.node_id for r in ended}))
            )
        ).all()
    )
    for r in ended:
        event = c.AssignmentEnded(
            assignment_id=r.id,
            user_id=r.user_id,
            user_email=r.user_email,
            node_id=r.node_id,
            node_hostname=hostnames.get(r.node_id, str(r.node_id)),
            reason=reason,
            ended_at=now,
            actor_id=actor_id,
        )
        await outbox.emit(session, tables.outbox, c.ASSIGNMENT_ENDED, event.model_dump(mode="json"), source=SOURCE)
    return list(ended)


async def row_of(session: AsyncSession, assignment_id: uuid.UUID, user_id: uuid.UUID | None = None) -> Any:
    query = select(assignments).where(assignments.c.id == assignment_id)
    if user_id is not None:
        query = query.where(assignments.c.user_id == user_id)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound("no such assignment")
    return row


async def revoke(session: AsyncSession, req: c.AssignmentIdRequest) -> c.Assignment:
    row = await row_of(session, req.id)
    if row.status == "active":
        await end_where(session, assignments.c.id == req.id, "revoked", req.actor_id)
        row = await row_of(session, req.id)
    elif row.status != "revoked":
        raise Conflict(f"the assignment has {row.status} already", code=c.ASSIGNMENT_ENDED_ALREADY)
    return await to_assignment(session, row)


async def get(session: AsyncSession, req: c.AssignmentIdRequest) -> c.Assignment:
    return await to_assignment(session, await row_of(session, req.id))


async def get_mine(session: AsyncSession, req: c.MyAssignmentRequest) -> c.Assignment:
    return await to_assignment(session, await row_of(session, req.id, req.user_id))


async def list_page(session: AsyncSession, req: c.ListAssignmentsRequest) -> c.AssignmentPage:
    query = select(assignments)
    for column, value in (
        (assignments.c.user_id, req.user_id),
        (assignments.c.environment_id, req.environment_id),
        (assignments.c.node_id, req.node_id),
        (assignments.c.status, req.status),
    ):
        if value is not None:
            query = query.where(column == value)
    rows, cursor = await pagination.oldest_first(session, query, assignments, req.cursor, req.limit)
    return c.AssignmentPage(items=[await to_assignment(session, r) for r in rows], next_cursor=cursor)


async def expire_due(session: AsyncSession) -> int:
    return len(await end_where(session, assignments.c.expires_at <= func.now(), "expired"))


async def warn_expiring(session: AsyncSession, within: timedelta) -> int:
    """One `assignment_expiring` event per assignment, `within` before its end (exactly once)."""
    now = datetime.now(UTC)
    due = (
        await session.execute(
            update(assignments)
            .where(
                assignments.c.status == "active",
                assignments.c.expiry_warned_at.is_(None),
                assignments.c.expires_at.is_not(None),
                assignments.c.expires_at > now,
                assignments.c.expires_at <= now + within,
            )
            .values(expiry_warned_at=now)
            .returning(
                assignments.c.id,
                assignments.c.user_id,
                assignments.c.user_email,
                assignments.c.node_id,
                assignments.c.expires_at,
            )
        )
    ).all()
    for r in due:
        hostname = await session.scalar(select(nodes.c.hostname).where(nodes.c.id == r.node_id))
        event = c.AssignmentExpiring(
            assignment_id=r.id,
            user_id=r.user_id,
            user_email=r.user_email,
            node_hostname=hostname or "",
            expires_at=r.expires_at,
        )
        await outbox.emit(session, tables.outbox, c.ASSIGNMENT_EXPIRING, event.model_dump(mode="json"), source=SOURCE)
    return len(due)


async def environment_of(session: AsyncSession, environment_id: uuid.UUID) -> Any:
    return (await session.execute(select(environments).where(environments.c.id == environment_id))).one()
