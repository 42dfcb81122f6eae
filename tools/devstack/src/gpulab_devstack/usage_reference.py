"""For the GPU-hour accounting tests (scheduler and gateway): hand-made assignment intervals written
straight into the scheduler's tables, and the usage they must give, computed here in plain Python,
independently of the scheduler's SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class Interval:
    """An assignment: [start, end) on `gpus` GPUs; `end` None: running."""

    user_id: uuid.UUID
    user_email: str
    environment_id: uuid.UUID
    node_id: uuid.UUID
    group_id: uuid.UUID | None
    gpus: int
    start: datetime
    end: datetime | None
    id: uuid.UUID = uuid.UUID(int=0)


@dataclass(frozen=True)
class Expected:
    gpu_hours: float
    assignments: int


async def insert(engine: AsyncEngine, intervals: Iterable[Interval]) -> list[Interval]:
    """Writes each as an assignment (ended ones `revoked`) with its GPUs; returns them with their ids."""
    made: list[Interval] = []
    async with engine.begin() as conn:
        for iv in intervals:
            assignment_id = uuid.uuid4()
            await conn.execute(
                text(
                    "INSERT INTO scheduler.assignments (id, user_id, user_email, environment_id, node_id, placement,"
                    " cpus, ram_mb, linux_username, status, created_at, ended_at, group_id) VALUES (:id, :user_id,"
                    " :email, :env, :node, 'fixed', 1, 1024, 'acct', :status, :start, :end, :group)"
                ),
                {
                    "id": assignment_id,
                    "user_id": iv.user_id,
                    "email": iv.user_email,
                    "env": iv.environment_id,
                    "node": iv.node_id,
                    "status": "active" if iv.end is None else "revoked",
                    "start": iv.start,
                    "end": iv.end,
                    "group": iv.group_id,
                },
            )
            for index in range(iv.gpus):
                await conn.execute(
                    text(
                        "INSERT INTO scheduler.assignment_gpus (assignment_id, gpu_uuid, gpu_index, node_id, active)"
                        " VALUES (:id, :gpu, :index, :node, :active)"
                    ),
                    {
                        "id": assignment_id,
                        "gpu": f"GPU-acct-{uuid.uuid4()}",
                        "index": index,
                        "node": iv.node_id,
                        "active": iv.end is None,
                    },
                )
            made.append(replace(iv, id=assignment_id))
    return made


def expected(
    intervals: Iterable[Interval],
    since: datetime,
    until: datetime,
    now: datetime,
    key: Callable[[Interval], uuid.UUID | None],
) -> dict[uuid.UUID | None, Expected]:
    """Per key: GPU-hours of the overlap of each interval with [since, until), and how many intervals
    ran during the range or started in it."""
    seconds: dict[uuid.UUID | None, float] = {}
    counts: dict[uuid.UUID | None, int] = {}
    for iv in intervals:
        end = iv.end if iv.end is not None else now
        ran_during = iv.start < until and end > since
        started_in = since <= iv.start < until
        if not (ran_during or started_in):
            continue
        overlap = max(0.0, (min(end, until) - max(iv.start, since)).total_seconds())
        k = key(iv)
        seconds[k] = seconds.get(k, 0.0) + overlap * iv.gpus
        counts[k] = counts.get(k, 0) + 1
    return {k: Expected(round(seconds[k] / 3600, 4), counts[k]) for k in seconds}
