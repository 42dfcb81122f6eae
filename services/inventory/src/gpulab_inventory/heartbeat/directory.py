"""What the heartbeat path knows about nodes, and how little it writes.

A heartbeat that changes nothing costs no database round trip: the node's status, hardware, agent
version, revoked serials and desired state are cached per replica (for `node_cache_s`, and dropped at
once when another replica's event says the node went offline or was deleted, or that its desired
state changed: desired/service.py), and its `last_seen_at`
is kept in memory and written for all nodes together every few seconds. A heartbeat that does change
something (first contact, back from offline, new hardware, new agent version, a new outcome for one of
its assignments: reports.py) takes the node's row lock, decides on the rows as they are in the
database, writes, and emits its events in that transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gpulab.agent.v1 import assignment_pb2
from prometheus_client import Counter, Gauge
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import outbox
from gpulab_core.contracts import inventory as c
from gpulab_core.errors import InvalidRequest
from gpulab_inventory.heartbeat import jump, reports, revocations, wire
from gpulab_inventory.heartbeat.reports import Outcome
from gpulab_inventory.models import desired_assignments, nodes, tables

log = logging.getLogger(__name__)
SOURCE = "inventory"
AGENT_VERSION_MAX = 64

HEARTBEATS = Counter("gpulab_inventory_heartbeats_total", "Heartbeats answered", ["outcome"])
NODE_WRITES = Counter("gpulab_inventory_node_writes_total", "Heartbeats that changed a node's record", ["change"])
LAST_SEEN_FLUSHES = Counter("gpulab_inventory_last_seen_flushed_total", "last_seen_at values written in batches")
PENDING_LAST_SEEN = Gauge("gpulab_inventory_last_seen_pending", "Nodes whose last_seen_at waits for the next batch")
WENT_OFFLINE = Counter("gpulab_inventory_nodes_went_offline_total", "Nodes the sweeper marked offline")


class NodeRefused(Exception):
    """The certificate names no node we know, or a node that was deleted, or a revoked serial."""


@dataclass
class CachedNode:
    id: uuid.UUID
    hostname: str
    type: str
    status: str
    agent_version: str | None
    hardware: dict[str, Any] | None
    hardware_wire: bytes | None  # the last Hardware message as received, to compare without parsing
    assignments: list[assignment_pb2.Assignment]
    # Per assignment of `assignments` (by id, as the node got it): the outcome last recorded for it,
    # None before its first report. An id that is not a key here is not the node's to report on.
    reported: dict[str, Outcome | None]
    loaded_at: float
    applied_wire: bytes | None = None  # the last AppliedState handled in full against `reported`


@dataclass
class Directory:
    sessions: async_sessionmaker[AsyncSession]
    cache_s: float
    offline_after_s: float
    _nodes: dict[uuid.UUID, CachedNode] = field(default_factory=dict)
    _seen: dict[uuid.UUID, datetime] = field(default_factory=dict)
    _revoked: frozenset[str] = frozenset()
    # Counts forget() calls: a copy read from the database while a forget() came in may predate the
    # change that forget() announced, so it serves the heartbeat that read it but is not kept.
    _forgets: int = 0

    # ---- the heartbeat ----
    async def heartbeat(
        self,
        node_id: uuid.UUID,
        serial: str,
        agent_version: str,
        hardware_wire: bytes | None,
        hardware: Any,
        applied_wire: bytes | None = None,
        applied: Any = None,
    ) -> list[assignment_pb2.Assignment]:
        """Record one heartbeat; returns the node's desired state. `hardware` is the parsed message,
        read only when `hardware_wire` differs from the last one; None for both: no report this time
        (the recorded hardware stays). The same for `applied` (the AppliedState) and `applied_wire`."""
        if len(agent_version) > AGENT_VERSION_MAX:
            raise InvalidRequest(f"agent_version is longer than {AGENT_VERSION_MAX} characters")
        now_mono = time.monotonic()
        forgets = self._forgets
        if serial in self._revoked:
            raise NodeRefused("the client certificate has been revoked")
        node = self._nodes.get(node_id)
        # The jump host's state is every node's (heartbeat/jump.py): read at each of its heartbeats.
        if node is None or node.type == jump.JUMP_TYPE or now_mono - node.loaded_at > self.cache_s:
            node = await self._load(node_id, forgets)
        if node is None or node.status == "revoked":
            raise NodeRefused("the client certificate names no node that may connect")
        now = datetime.now(UTC)
        # The outcomes that differ from the recorded ones; none when the report is the last one handled.
        news: dict[str, Outcome] = {}
        if applied_wire is not None and applied_wire != node.applied_wire:
            news = reports.changed(reports.outcomes(applied, node.reported), node.reported)
        unchanged = hardware_wire is None or node.hardware_wire == hardware_wire
        parsed: dict[str, Any] | None = None
        node_changes = True
        if node.status == "online" and node.agent_version == agent_version:
            if unchanged:  # the common case: nothing new
                node_changes = False
            else:
                parsed = wire.hardware_dict(hardware)
                if parsed == node.hardware:  # the same hardware, first seen by this replica's cache
                    node.hardware_wire = hardware_wire
                    node_changes = False
        else:
            parsed = node.hardware if unchanged else wire.hardware_dict(hardware)
        if not node_changes and not news:
            if applied_wire is not None:
                node.applied_wire = applied_wire
            self._seen[node_id] = now
            return node.assignments
        seen_wire = node.hardware_wire if hardware_wire is None else hardware_wire
        node = await self._write(node, now, agent_version, seen_wire, parsed, forgets, node_changes, news, applied_wire)
        if node.status == "revoked":
            raise NodeRefused("the client certificate names no node that may connect")
        return node.assignments

    def forget(self, node_id: uuid.UUID) -> None:
        """Drop a node's cached copy (another replica changed it); the next heartbeat reads it again."""
        self._forgets += 1
        self._nodes.pop(node_id, None)

    def revoke_serials(self, serials: Sequence[str]) -> None:
        self._revoked = self._revoked | frozenset(serials)

    async def reload_revoked(self) -> None:
        async with self.sessions() as session:
            self._revoked = await revocations.revoked_serials(session)

    async def run_revoked_refresh(self, every_s: float) -> None:
        """The revoked serials, read again every `every_s` off the heartbeat path (pki's events add
        to them at once; this catches what another replica's consumer recorded)."""
        while True:
            try:
                await self.reload_revoked()
            except Exception as exc:
                log.warning("reading the revoked serials failed, retrying: %s", exc)
            await asyncio.sleep(every_s)

    def _keep(self, node: CachedNode, forgets: int) -> None:
        if self._forgets == forgets:
            self._nodes[node.id] = node
        else:
            self._nodes.pop(node.id, None)

    async def _load(self, node_id: uuid.UUID, forgets: int) -> CachedNode | None:
        async with self.sessions() as session:
            row = (await session.execute(select(nodes).where(nodes.c.id == node_id))).first()
            if row is None:
                self._nodes.pop(node_id, None)
                return None
            if row.type == jump.JUMP_TYPE:
                # Its entries stand for users, not for assignments of its own: nothing it reports is
                # recorded (no key in `reported`).
                node = _cached(row, await jump.accounts(session), {})
                self._keep(node, forgets)
                return node
            desired = (
                await session.execute(
                    select(
                        desired_assignments.c.spec,
                        desired_assignments.c.reported_state,
                        desired_assignments.c.reported_message,
                    )
                    # Withheld: left out of the reply because the node's state would not fit one
                    # (desired/fitting.py); recorded as failed, never sent, its reports ignored.
                    .where(desired_assignments.c.node_id == node_id, desired_assignments.c.withheld.is_(False))
                    .order_by(desired_assignments.c.assignment_id)
                )
            ).all()
        assignments = [wire.assignment_from_spec(d.spec) for d in desired]
        reported: dict[str, Outcome | None] = {
            a.assignment_id: (d.reported_state, d.reported_message) if d.reported_state is not None else None
            for a, d in zip(assignments, desired, strict=True)
        }
        node = _cached(row, assignments, reported)
        self._keep(node, forgets)
        return node

    async def _write(
        self,
        cached: CachedNode,
        now: datetime,
        agent_version: str,
        hardware_wire: bytes | None,
        hardware: dict[str, Any] | None,
        forgets: int,
        node_changes: bool = True,
        news: dict[str, Outcome] | None = None,
        applied_wire: bytes | None = None,
    ) -> CachedNode:
        """Under the node's row lock: its record when `node_changes`, and the outcomes in `news`."""
        async with self.sessions() as session, session.begin():
            # Decide on the row as it is now, under its lock: another replica may have moved it.
            row = (await session.execute(select(nodes).where(nodes.c.id == cached.id).with_for_update())).one()
            if row.status == "revoked":
                node = _cached(row, cached.assignments, cached.reported)
                self._keep(node, forgets)
                return node
            if news:
                NODE_WRITES.labels("applied_state").inc(await reports.record(session, cached.id, news))
            # Only outcomes to write, but the row moved since it was cached (the sweeper, another replica).
            node_changes = node_changes or row.status != "online" or row.agent_version != agent_version
            if node_changes:
                row = await self._write_node(session, row, now, agent_version, hardware)
                self._seen.pop(cached.id, None)
            else:
                self._seen[cached.id] = now
                if row.hardware != cached.hardware:  # recorded meanwhile: compare field by field next time
                    hardware_wire = None
        reported = cached.reported | {i: o for i, o in (news or {}).items() if i in cached.reported}
        node = _cached(row, cached.assignments, reported)
        node.hardware_wire = hardware_wire
        node.applied_wire = applied_wire if applied_wire is not None else cached.applied_wire
        self._keep(node, forgets)
        return node

    async def _write_node(
        self, session: AsyncSession, row: Any, now: datetime, agent_version: str, hardware: dict[str, Any] | None
    ) -> Any:
        """The node's own record: online, agent version, hardware; events through the outbox."""
        values: dict[str, Any] = {"last_seen_at": now}
        if row.status != "online":
            values |= {"status": "online", "status_changed_at": now}
            previous = row.status
            event_online = c.NodeOnlineEvent(
                node_id=row.id,
                hostname=row.hostname,
                previous_status=previous,
                at=now,
                offline_since=row.status_changed_at if previous == "offline" else None,
            )
            await outbox.emit(
                session, tables.outbox, c.NODE_ONLINE, event_online.model_dump(mode="json"), source=SOURCE
            )
            NODE_WRITES.labels("online").inc()
        if row.agent_version != agent_version:
            values["agent_version"] = agent_version
            NODE_WRITES.labels("agent_version").inc()
        if hardware is not None and row.hardware != hardware:
            values |= {"hardware": hardware, "hardware_changed_at": now}
            changed = c.NodeHardwareChangedEvent(
                node_id=row.id, hostname=row.hostname, hardware=hardware, previous=row.hardware
            )
            await outbox.emit(
                session, tables.outbox, c.NODE_HARDWARE_CHANGED, changed.model_dump(mode="json"), source=SOURCE
            )
            NODE_WRITES.labels("hardware").inc()
        return (
            await session.execute(update(nodes).where(nodes.c.id == row.id).values(**values).returning(*nodes.c))
        ).one()

    # ---- batched liveness ----
    async def flush_last_seen(self) -> int:
        """Write every pending `last_seen_at` in one statement; returns how many were written."""
        if not self._seen:
            return 0
        batch, self._seen = self._seen, {}
        PENDING_LAST_SEEN.set(0)
        ids = list(batch)
        try:
            async with self.sessions() as session, session.begin():
                written = (
                    await session.execute(
                        text(
                            "UPDATE inventory.nodes AS n SET last_seen_at = v.ts "
                            "FROM unnest(CAST(:ids AS uuid[]), CAST(:ts AS timestamptz[])) AS v(id, ts) "
                            "WHERE n.id = v.id AND n.status = 'online' "
                            "AND (n.last_seen_at IS NULL OR n.last_seen_at < v.ts) RETURNING n.id"
                        ).bindparams(bindparam("ids"), bindparam("ts")),
                        {"ids": ids, "ts": [batch[i] for i in ids]},
                    )
                ).scalars()
                done = set(written)
        except Exception:
            for node_id, at in batch.items():  # kept for the next try; a newer heartbeat wins
                if node_id not in self._seen or self._seen[node_id] < at:
                    self._seen[node_id] = at
            raise
        # Not written: the node is no longer online here (the sweeper or a delete got it) or another
        # replica wrote a later time. Either way, read it again at its next heartbeat.
        for node_id in ids:
            if node_id not in done:
                self.forget(node_id)
        LAST_SEEN_FLUSHES.inc(len(done))
        return len(done)

    async def run_flusher(self, every_s: float) -> None:
        """Write liveness every `every_s`; the last batch is written by `final_flush` at shutdown."""
        while True:
            await asyncio.sleep(every_s)
            PENDING_LAST_SEEN.set(len(self._seen))
            try:
                await self.flush_last_seen()
            except Exception as exc:
                log.warning("writing last_seen_at failed, retrying: %s", exc)

    async def final_flush(self) -> None:
        """At shutdown, once the heartbeat port has stopped: what this replica saw is not lost."""
        try:
            await self.flush_last_seen()
        except Exception as exc:
            log.warning("the last last_seen_at batch was not written: %s", exc)

    # ---- the offline sweeper ----
    async def sweep(self) -> list[uuid.UUID]:
        """Mark offline every online node silent for `offline_after_s`, one event each.

        Safe with several replicas at once: the UPDATE's WHERE is re-checked on each row under its lock,
        so a node turns offline, and its event is emitted, exactly once. This replica's own pending
        liveness is written first, so a node that talks to it is never judged on stale data.
        """
        with contextlib.suppress(Exception):
            await self.flush_last_seen()
        now = datetime.now(UTC)
        cutoff = now - timedelta(seconds=self.offline_after_s)
        async with self.sessions() as session, session.begin():
            rows = (
                await session.execute(
                    update(nodes)
                    .where(nodes.c.status == "online", nodes.c.last_seen_at < cutoff)
                    .values(status="offline", status_changed_at=now)
                    .returning(nodes.c.id, nodes.c.hostname, nodes.c.last_seen_at)
                )
            ).all()
            for r in rows:
                event = c.NodeOfflineEvent(node_id=r.id, hostname=r.hostname, last_seen_at=r.last_seen_at, at=now)
                await outbox.emit(session, tables.outbox, c.NODE_OFFLINE, event.model_dump(mode="json"), source=SOURCE)
        for r in rows:
            self.forget(r.id)
            log.info("node %s (%s) is offline, last seen %s", r.hostname, r.id, r.last_seen_at)
        WENT_OFFLINE.inc(len(rows))
        return [r.id for r in rows]

    async def run_sweeper(self, every_s: float) -> None:
        # First a whole offline threshold of listening: after a restart of every replica, the last
        # contacts in the database are as old as the outage, and a live node is only judged once it
        # has had the time to heartbeat again (agents retry), never for the control plane's absence.
        await asyncio.sleep(self.offline_after_s)
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("offline sweep failed, retrying: %s", exc)


def _cached(row: Any, assignments: list[assignment_pb2.Assignment], reported: dict[str, Outcome | None]) -> CachedNode:
    return CachedNode(
        id=row.id,
        hostname=row.hostname,
        type=row.type,
        status=row.status,
        agent_version=row.agent_version,
        hardware=row.hardware,
        hardware_wire=None,  # unknown until a heartbeat brings it: the first one is compared field by field
        assignments=assignments,
        reported=reported,
        loaded_at=time.monotonic(),
    )
