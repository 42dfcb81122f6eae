"""Shared pieces of the outbox tests: a scratch schema and a reader of what reached JetStream."""

from __future__ import annotations

import json
import uuid

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.events import STREAM
from gpulab_core.runtime import ServiceTables


async def scratch_schema(engine: AsyncEngine) -> ServiceTables:
    tables = ServiceTables.for_schema("ob_" + uuid.uuid4().hex[:8])
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{tables.schema}"'))
        await conn.run_sync(tables.metadata.create_all)
    return tables


async def stream_events(js: JetStreamContext, subject_filter: str) -> list[dict[str, object]]:
    """Every message on the stream matching the filter, read by a throwaway consumer."""
    sub = await js.pull_subscribe(
        subject_filter,
        stream=STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0),
    )
    found: list[dict[str, object]] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=1.0)
            except TimeoutError:  # nats.py's own, or asyncio's when its deadline passed between two requests
                break
            found.extend(json.loads(m.data) for m in batch)
    finally:
        await sub.unsubscribe()
    return found
