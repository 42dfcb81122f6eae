"""The offline sweeper: every online node silent for `offline_after_s` turns offline, one event each."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import outbox
from gpulab_core.contracts import inventory as c
from gpulab_inventory.heartbeat.metrics import WENT_OFFLINE
from gpulab_inventory.models import tables
from gpulab_inventory.nodes import liveness, repository

log = logging.getLogger(__name__)
SOURCE = "inventory"


@dataclass
class Sweeper:
    sessions: async_sessionmaker[AsyncSession]
    offline_after_s: float
    flush: Callable[[], Awaitable[object]]  # this replica's pending last_seen_at, written first
    forget: Callable[[uuid.UUID], None]  # a node that went offline: its cached copy is stale

    async def sweep(self) -> list[uuid.UUID]:
        """Mark offline every online node silent for `offline_after_s`, one event each.

        Safe with several replicas at once: the UPDATE's WHERE is re-checked on each row under its lock,
        so a node turns offline, and its event is emitted, exactly once. This replica's own pending
        liveness is written first, so a node that talks to it is never judged on stale data.
        """
        with contextlib.suppress(Exception):
            await self.flush()
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            rows = await repository.mark_offline(session, liveness.offline_cutoff(now, self.offline_after_s), now)
            for r in rows:
                event = liveness.went_offline(r, now)
                await outbox.emit(session, tables.outbox, c.NODE_OFFLINE, event.model_dump(mode="json"), source=SOURCE)
        for r in rows:
            self.forget(r.id)
            log.info("node %s (%s) is offline, last seen %s", r.hostname, r.id, r.last_seen_at)
        WENT_OFFLINE.inc(len(rows))
        return [r.id for r in rows]
