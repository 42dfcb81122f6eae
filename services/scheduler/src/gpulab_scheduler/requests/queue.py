"""The fair queue of each Environment: the plan (planner.py) over what its nodes hold, the positions
and estimated starts it gives, and the dispatch that grants whatever can start now.

Dispatch holds the Environment's queue lock (a transaction-scoped advisory lock), so that with any
number of scheduler replicas one pass at a time grants in an Environment, in queue order. Each grant
is a savepoint: one that fails (the node's CPUs or RAM short, a quota no longer allowing it) leaves
that request queued and the pass goes on. Each GPU goes to one request: placement's node lock and the
unique index on held GPUs (assignments/placement.py) see to it whatever else happens.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.errors import GpulabError
from gpulab_scheduler.assignments.placement import Busy, usable_gpus
from gpulab_scheduler.environments.repository import Environment
from gpulab_scheduler.requests import repository
from gpulab_scheduler.requests.planner import Busy as Held
from gpulab_scheduler.requests.planner import NodeLine, Planner

# Estimates are planned for the first requests of a queue only: each costs a pass over the nodes, and
# a request further back shows its position, its start unknown (null) until it moves up.
ESTIMATE_DEPTH = 100

# Grants one request on the node the plan chose (None: wherever placement finds room), in a savepoint
# of its own; raises when it cannot.
Grant = Callable[[AsyncSession, repository.Request, uuid.UUID | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Place:
    position: int
    estimated_start_at: datetime | None


async def planners(session: AsyncSession, envs: Sequence[Environment], now: datetime) -> dict[uuid.UUID, Planner]:
    """Each Environment's planner over its online nodes and what runs on them: two queries in all."""
    attached = await repository.environment_nodes_online(session, [e.id for e in envs])
    running = await repository.running_on(session, list({n.id for n in attached}))
    by_node: dict[uuid.UUID, list[repository.Running]] = {}
    for r in running:
        by_node.setdefault(r.node_id, []).append(r)
    found: dict[uuid.UUID, Planner] = {}
    for env in envs:
        mig_only = env.enforcement_mode == "mig"
        lines = [
            NodeLine(
                n.id,
                n.hostname,
                len(usable_gpus(n.hardware, mig_only)),
                [Held(r.gpus, min(r.created_at, now), r.expires_at) for r in by_node.get(n.id, [])],
            )
            for n in attached
            if n.environment_id == env.id
        ]
        found[env.id] = Planner(now, lines)
    return found


def places(
    planner: Planner | None, queue: Sequence[repository.Request], depth: int = ESTIMATE_DEPTH
) -> dict[uuid.UUID, Place]:
    """Position (1 = next) of each queued request, in queue order, and the estimated start of the
    first `depth`; an estimate is None past `depth`, or when nothing known frees enough GPUs
    (assignments without an expiry, too few GPUs)."""
    found: dict[uuid.UUID, Place] = {}
    for position, r in enumerate(queue, start=1):
        if planner is None or position > depth:
            found[r.id] = Place(position, None)
            continue
        spot = planner.earliest(r.gpus, r.hours)
        if spot is not None:
            planner.take(spot, r.gpus, r.hours)
        found[r.id] = Place(position, spot.start if spot else None)
    return found


async def place_of(
    session: AsyncSession, envs: Sequence[Environment], wanted: set[uuid.UUID]
) -> dict[uuid.UUID, Place]:
    """Positions and estimates of the `wanted` requests queued in the Environments (for a reply):
    each queue is planned only as far as the last wanted request within ESTIMATE_DEPTH."""
    now = datetime.now(UTC)
    found: dict[uuid.UUID, Place] = {}
    queues = {env.id: await repository.queued(session, env.id) for env in envs}
    depth = {
        env_id: max((i for i, r in enumerate(q, 1) if r.id in wanted and i <= ESTIMATE_DEPTH), default=0)
        for env_id, q in queues.items()
    }
    planned = [env for env in envs if depth[env.id]]
    plans = await planners(session, planned, now) if planned else {}
    for env_id, q in queues.items():
        found.update(places(plans.get(env_id), q, depth[env_id]))
    return found


async def dispatch(session: AsyncSession, env: Environment, grant: Grant, *, wait: bool) -> list[uuid.UUID]:
    """Grants, in queue order, every queued request of the Environment that can start now without
    delaying any request before it. `wait=False`: nothing when another pass holds the queue lock (it
    grants what this one would). Returns the requests granted."""
    if not await repository.lock_environment(session, env.id, wait=wait):
        return []
    alone = await grant_if_alone(session, env.id, grant)
    if alone is not None:
        return alone
    now = datetime.now(UTC)
    planner = (await planners(session, [env], now))[env.id]
    if planner.free_now() == 0:
        return []  # nothing can start now: the queue need not be read
    queue = await repository.queued(session, env.id)
    granted: list[uuid.UUID] = []
    for r in queue:
        if planner.free_now() == 0:
            break  # nothing else can start now; the rest keep their order
        spot = planner.earliest(r.gpus, r.hours)
        if spot is None:
            continue
        if not planner.starts_now(spot):
            planner.take(spot, r.gpus, r.hours)  # its reservation: later requests must not touch it
            continue
        try:
            if not await _try(session, grant, r, spot.node.id):
                continue  # stays queued: its quota no longer allows it, or the node lacks CPUs or RAM
        except Busy:
            break  # another placement holds a node: the next pass (soon) goes on from here
        planner.take(spot, r.gpus, r.hours)
        granted.append(r.id)
    return granted


async def grant_if_alone(session: AsyncSession, environment_id: uuid.UUID, grant: Grant) -> list[uuid.UUID] | None:
    """A request alone in its queue (the usual case) starts now if it fits now: nobody to plan
    around, and placement picks the node (best fit) without the plan's read of every running
    assignment. What it granted (nothing, or that one); None when the queue is empty or others
    wait, where only a plan can tell. The caller holds the queue's lock."""
    head = await repository.queued(session, environment_id, limit=2)
    if len(head) != 1:
        return [] if not head else None
    try:
        return [head[0].id] if await _try(session, grant, head[0], None) else []
    except Busy:
        return []  # every node that fits is being placed on by someone else: the next pass


async def _try(session: AsyncSession, grant: Grant, r: repository.Request, node_id: uuid.UUID | None) -> bool:
    """The grant in a savepoint: False (rolled back) when a rule refused it; `Busy` goes up."""
    try:
        async with session.begin_nested():
            await grant(session, r, node_id)
    except (GpulabError, IntegrityError):
        return False
    return True


def estimate(
    planner: Planner, queue: Sequence[repository.Request], gpus: int, hours: int
) -> tuple[bool, datetime | None]:
    """Whether a request of `gpus` for `hours` submitted now would start at once, and when it would."""
    places(planner, queue)
    spot = planner.earliest(gpus, hours)
    if spot is None:
        return False, None
    return planner.starts_now(spot), spot.start if spot.start > planner.now + timedelta(seconds=1) else None
