"""What "a refusal changes nothing" means for the authorization matrix: every row of every service's
tables, read once nothing is in flight (tests/test_authorization_matrix.py)."""

from __future__ import annotations

import asyncio
import time

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.events import STREAM
from gpulab_devstack.testing import BACKEND

from .matrix_world import HEARTBEAT_INTERVAL_S

# How long the databases must stay unchanged to count as settled: an agent's report of an earlier
# change arrives within one heartbeat.
QUIET_S = 2.5 * HEARTBEAT_INTERVAL_S
SETTLE_TIMEOUT_S = 60

# Written by the services on their own, whatever anyone asks: the agent's heartbeats (every second
# here) and a session's last use. A refusal is not asked to leave these alone.
VOLATILE_COLUMNS = {
    ("inventory", "nodes", "last_seen_at"),
    ("identity", "sessions", "last_seen_at"),
}
# The audit log is the one place a refusal may leave a trace (refused CSRF and 403 attempts are
# audited, issue 12 finding 8).
IGNORED_TABLES = {("identity", "audit_log")}
SCHEMAS = ("identity", "pki", "inventory", "scheduler", "notify")

Snapshot = dict[str, list[str]]


async def snapshot(engine: AsyncEngine) -> Snapshot:
    """Every row of every table of every service, as text, less what changes on its own."""
    taken: Snapshot = {}
    async with engine.connect() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema = ANY(:schemas) AND table_type = 'BASE TABLE' ORDER BY 1, 2"
                ),
                {"schemas": list(SCHEMAS)},
            )
        ).all()
        for schema, table in tables:
            if (schema, table) in IGNORED_TABLES:
                continue
            result = await conn.execute(text(f'SELECT * FROM "{schema}"."{table}"'))
            keep = [i for i, c in enumerate(result.keys()) if (schema, table, c) not in VOLATILE_COLUMNS]
            taken[f"{schema}.{table}"] = sorted(repr([row[i] for i in keep]) for row in result.all())
    return taken


async def events_in_flight(js: JetStreamContext) -> int:
    """Events the services' consumers have not yet handled (waiting, or delivered and not acked)."""
    consumers = await js.consumers_info(STREAM)
    return sum((c.num_pending or 0) + (c.num_ack_pending or 0) for c in consumers if c.name.startswith(BACKEND))


async def settled(engine: AsyncEngine, js: JetStreamContext) -> Snapshot:
    """A snapshot once everything earlier requests set going has finished: no event waits in an
    outbox or for a consumer, and nothing changed for QUIET_S (the agent reported what it applied)."""
    previous = await snapshot(engine)
    quiet_since = time.monotonic()
    deadline = quiet_since + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(QUIET_S / 5)
        current = await snapshot(engine)
        outboxes = sum(len(rows) for table, rows in current.items() if table.endswith(".outbox"))
        if current != previous or outboxes or await events_in_flight(js):
            previous, quiet_since = current, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return current
    raise AssertionError(f"the databases never stayed unchanged for {QUIET_S}s")


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    return [
        f"{table}: -{sorted(set(before.get(table, [])) - set(after.get(table, [])))} "
        f"+{sorted(set(after.get(table, [])) - set(before.get(table, [])))}"
        for table in sorted(set(before) | set(after))
        if before.get(table) != after.get(table)
    ]
