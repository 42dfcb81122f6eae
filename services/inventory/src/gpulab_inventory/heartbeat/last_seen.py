"""Each node's last contact, kept in memory and written for all nodes together every few seconds
(never one write per heartbeat)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_inventory.heartbeat.metrics import LAST_SEEN_FLUSHES, PENDING_LAST_SEEN
from gpulab_inventory.nodes import repository


class PendingLastSeen:
    def __init__(self) -> None:
        self._seen: dict[uuid.UUID, datetime] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def note(self, node_id: uuid.UUID, at: datetime) -> None:
        self._seen[node_id] = at

    def drop(self, node_id: uuid.UUID) -> None:
        """Written already with the node's record."""
        self._seen.pop(node_id, None)

    async def flush(self, sessions: async_sessionmaker[AsyncSession]) -> tuple[int, list[uuid.UUID]]:
        """Write every pending `last_seen_at` in one statement (its own transaction); returns how many
        were written, and the ids not written: the node is no longer online (the sweeper or a delete
        got it) or another replica wrote a later time, so its cached copy is stale. On failure the
        batch is kept for the next try, where a newer heartbeat wins."""
        if not self._seen:
            return 0, []
        batch, self._seen = self._seen, {}
        PENDING_LAST_SEEN.set(0)
        try:
            async with sessions() as session, session.begin():
                done = await repository.write_last_seen(session, batch)
        except Exception:
            for node_id, at in batch.items():
                if node_id not in self._seen or self._seen[node_id] < at:
                    self._seen[node_id] = at
            raise
        LAST_SEEN_FLUSHES.inc(len(done))
        return len(done), [node_id for node_id in batch if node_id not in done]
