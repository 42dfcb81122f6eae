"""The accounting metrics on the scheduler's `/metrics` (docs/adr/0020): computed from the database by
a background refresh into this collector, so that every replica shows the same totals and a scrape
never queries the database (it reads the last snapshot)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_scheduler.usage import repository

log = logging.getLogger(__name__)
NO_GROUP_LABEL = "none"


@dataclass(frozen=True, slots=True)
class Snapshot:
    gpu_seconds: list[repository.GpuSeconds]
    environments: list[repository.EnvironmentGauges]
    taken_at: float  # Unix time


class UsageCollector(Collector):
    """Shows the last snapshot; before the first refresh, the families without samples."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self.snapshot)

    @staticmethod
    def _families(snapshot: Snapshot | None) -> list[Metric]:
        seconds = CounterMetricFamily(
            "gpulab_gpu_seconds",
            "GPU-seconds of all assignments so far, ended and running (from the database)",
            labels=["group", "environment"],
        )
        total = GaugeMetricFamily(
            "gpulab_gpus_total", "GPUs of the online nodes attached to the Environment", labels=["environment"]
        )
        held = GaugeMetricFamily("gpulab_gpus_held", "GPUs held by active assignments", labels=["environment"])
        queued = GaugeMetricFamily("gpulab_requests_queued", "Requests waiting in the queue", labels=["environment"])
        refreshed = GaugeMetricFamily(
            "gpulab_usage_refreshed_timestamp_seconds", "When these accounting metrics were read from the database"
        )
        if snapshot is not None:
            for row in snapshot.gpu_seconds:
                group = str(row.group_id) if row.group_id is not None else NO_GROUP_LABEL
                seconds.add_metric([group, row.environment], row.gpu_seconds)
            for env in snapshot.environments:
                total.add_metric([env.environment], env.gpus_total)
                held.add_metric([env.environment], env.gpus_held)
                queued.add_metric([env.environment], env.requests_queued)
            refreshed.add_metric([], snapshot.taken_at)
        return [seconds, total, held, queued, refreshed]


# One per process (the default registry is per process); every scheduler runtime in it refreshes it.
COLLECTOR = UsageCollector()
REGISTRY.register(COLLECTOR)


async def refresh(sessions: async_sessionmaker[AsyncSession]) -> Snapshot:
    """Two statements in one read-only transaction (one snapshot of the database)."""
    async with sessions() as session, session.begin():
        now = datetime.now(UTC)
        snapshot = Snapshot(
            await repository.gpu_seconds_so_far(session, now),
            await repository.environment_gauges(session),
            now.timestamp(),
        )
    COLLECTOR.snapshot = snapshot
    return snapshot


def refresher(sessions: async_sessionmaker[AsyncSession], every_s: float) -> Callable[[], Coroutine[Any, Any, None]]:
    """The background task: refresh every `every_s`; a failure keeps the last snapshot and retries."""

    async def run() -> None:
        while True:
            started = time.monotonic()
            try:
                await refresh(sessions)
            except Exception as exc:
                log.warning("usage metrics refresh failed, retrying: %s", exc)
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - started)))

    return run
