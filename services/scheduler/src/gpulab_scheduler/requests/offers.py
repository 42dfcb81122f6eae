"""What a user may request (the portal's "Request GPUs"): the self-service Environments with their
GPUs and queues, and where a request of a given size would stand. Reads only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts import selfservice as c
from gpulab_core.errors import NotFound
from gpulab_scheduler.environments import repository as environment_rows
from gpulab_scheduler.requests import queue
from gpulab_scheduler.requests import repository as repo


async def offers(session: AsyncSession, now: datetime) -> c.EnvironmentOffers:
    envs = await repo.self_service_environments(session)
    planners = await queue.planners(session, envs, now)
    sizes = await repo.queue_sizes(session, [e.id for e in envs])
    items = []
    for env in envs:
        planner = planners[env.id]
        size = sizes.get(env.id, repo.QueueSize(0, 0))
        items.append(
            c.EnvironmentOffer(
                id=env.id,
                name=env.name,
                self_service=env.self_service,
                max_hours=env.max_hours,
                default_cpus=env.default_cpus,
                default_ram_mb=env.default_ram_mb,
                gpus_total=sum(n.capacity for n in planner.nodes),
                gpus_free=planner.free_now(),
                queued_requests=size.requests,
                queued_gpus=size.gpus,
            )
        )
    return c.EnvironmentOffers(items=items)


async def estimate(session: AsyncSession, req: c.EstimateRequest, now: datetime) -> c.Estimate:
    env = await environment_rows.get(session, req.environment_id)
    if env is None or env.deleted_at is not None or env.self_service == "off":
        raise NotFound("no such self-service environment")
    waiting = await repo.queued(session, env.id)
    planner = (await queue.planners(session, [env], now))[env.id]
    fits_now, start = queue.estimate(planner, waiting, req.gpus, req.hours)
    return c.Estimate(fits_now=fits_now, position=len(waiting) + 1, estimated_start_at=start)
