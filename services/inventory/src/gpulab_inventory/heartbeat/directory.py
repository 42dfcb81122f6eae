"""What the heartbeat path knows about nodes, and how little it writes.

A heartbeat that changes nothing costs no database round trip: the node's status, hardware, agent
version, revoked serials and desired state are cached per replica (cache.py: for `node_cache_s`, and
dropped at once when another replica's event says the node went offline or was deleted, or that its
desired state changed: desired/service.py), and its `last_seen_at` is kept in memory and written for
all nodes together every few seconds (last_seen.py). A heartbeat that does change something (first
contact, back from offline, new hardware, new agent version: the rules in nodes/liveness.py; a new
outcome for one of its assignments: reports.py) takes the node's row lock, decides on the rows as
they are in the database, writes, and emits its events in that transaction.

No protobuf here: the gRPC edge (server.py, wire.py) hands each heartbeat over as a `Beat` and gives
the Directory the function that turns a desired assignment's spec into what the reply carries.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import outbox
from gpulab_core.contracts import inventory as c
from gpulab_core.errors import InvalidRequest
from gpulab_inventory.desired import repository as desired_repo
from gpulab_inventory.heartbeat import jump, reports, revocations
from gpulab_inventory.heartbeat.cache import A, CachedNode, NodeCache, RevokedSerials, cached
from gpulab_inventory.heartbeat.last_seen import PendingLastSeen
from gpulab_inventory.heartbeat.metrics import NODE_WRITES
from gpulab_inventory.heartbeat.reports import Entry, Outcome
from gpulab_inventory.models import tables
from gpulab_inventory.nodes import liveness, repository

log = logging.getLogger(__name__)
SOURCE = "inventory"
AGENT_VERSION_MAX = 64


class NodeRefused(Exception):
    """The certificate names no node we know, or a node that was deleted, or a revoked serial."""


@dataclass(frozen=True)
class Beat:
    """One heartbeat as the Directory reads it. `hardware_wire`/`applied_wire`: the messages' bytes,
    None when the message is absent (no report this time: what was recorded stays); `hardware` and
    `applied` convert them, called only when the bytes differ from the last ones handled."""

    agent_version: str
    wire: bytes  # the whole request as received
    hardware_wire: bytes | None
    hardware: Callable[[], dict[str, Any]]
    applied_wire: bytes | None
    applied: Callable[[], Sequence[Entry]]


@dataclass
class Directory(Generic[A]):
    sessions: async_sessionmaker[AsyncSession]
    cache_s: float
    decode: Callable[[dict[str, Any]], A]  # a desired assignment's spec → what the reply carries
    nodes: NodeCache[A] = field(init=False)
    revoked: RevokedSerials = field(default_factory=RevokedSerials, init=False)
    pending: PendingLastSeen = field(default_factory=PendingLastSeen, init=False)

    def __post_init__(self) -> None:
        self.nodes = NodeCache(self.cache_s)

    # ---- the heartbeat ----
    async def heartbeat(self, node_id: uuid.UUID, serial: str, beat: Beat) -> list[A]:
        """Record one heartbeat; returns the node's desired state."""
        agent_version = beat.agent_version
        if len(agent_version) > AGENT_VERSION_MAX:
            raise InvalidRequest(f"agent_version is longer than {AGENT_VERSION_MAX} characters")
        generation = self.nodes.generation
        if serial in self.revoked:
            raise NodeRefused("the client certificate has been revoked")
        node = self.nodes.fresh(node_id, time.monotonic())
        # The jump host's state is every node's (jump.py): read at each of its heartbeats.
        if node is None or node.type == jump.JUMP_TYPE:
            node = await self._load(node_id, generation)
        if node is None or not liveness.may_connect(node.status):
            raise NodeRefused("the client certificate names no node that may connect")
        now = datetime.now(UTC)
        # The outcomes that differ from the recorded ones; none when the report is the last one handled.
        news: dict[str, Outcome] = {}
        # The jump host's report is about users, not assignments: never read (nor bounded by their limit).
        if node.type != jump.JUMP_TYPE and beat.applied_wire is not None and beat.applied_wire != node.applied_wire:
            news = reports.changed(reports.outcomes(beat.applied(), node.reported), node.reported)
        unchanged = beat.hardware_wire is None or node.hardware_wire == beat.hardware_wire
        parsed: dict[str, Any] | None = None
        node_changes = True
        if not liveness.record_changes(node.status, node.agent_version, agent_version):
            if unchanged:  # the common case: nothing new
                node_changes = False
            else:
                parsed = beat.hardware()
                if parsed == node.hardware:  # the same hardware, first seen by this replica's cache
                    node.hardware_wire = beat.hardware_wire
                    node_changes = False
        else:
            parsed = node.hardware if unchanged else beat.hardware()
        if not node_changes and not news:
            if beat.applied_wire is not None:
                node.applied_wire = beat.applied_wire
            if node.type != jump.JUMP_TYPE and node.request_wire != beat.wire:
                node.request_wire, node.reply_wire = beat.wire, None  # the reply: keep_reply
            self.pending.note(node_id, now)
            return node.assignments
        seen_wire = node.hardware_wire if beat.hardware_wire is None else beat.hardware_wire
        node = await self._write(
            node, now, agent_version, seen_wire, parsed, generation, node_changes, news, beat.applied_wire
        )
        if not liveness.may_connect(node.status):
            raise NodeRefused("the client certificate names no node that may connect")
        return node.assignments

    def replay(self, node_id: uuid.UUID, serial: str, wire: bytes) -> bytes | None:
        """The reply to a request that is, byte for byte, the last one this node's cached copy handled
        without a change (the steady heartbeat): what `heartbeat` would answer, without parsing the
        request or building the reply. None: handle it in full."""
        node = self.nodes.fresh(node_id, time.monotonic())
        if node is None or node.reply_wire is None or node.request_wire != wire or serial in self.revoked:
            return None
        self.pending.note(node_id, datetime.now(UTC))
        return node.reply_wire

    def keep_reply(self, node_id: uuid.UUID, wire: bytes, reply: bytes) -> None:
        """The reply just sent to `wire`, for `replay`; kept only if that request changed nothing."""
        node = self.nodes.fresh(node_id, time.monotonic())
        if node is not None and node.request_wire == wire:
            node.reply_wire = reply

    def forget(self, node_id: uuid.UUID) -> None:
        """Drop a node's cached copy (another replica changed it); the next heartbeat reads it again."""
        self.nodes.forget(node_id)

    def forget_all(self) -> None:
        """Every cached copy dropped: this replica may have missed notices (a NATS reconnect)."""
        log.info("dropping %d cached nodes: change notices may have been missed", len(self.nodes))
        self.nodes.forget_all()

    def revoke_serials(self, serials: Sequence[str]) -> None:
        self.revoked.add(serials)

    async def reload_revoked(self) -> None:
        """The revoked serials, read again (pki's events add to them at once; this catches what another
        replica's consumer recorded)."""
        async with self.sessions() as session:
            self.revoked.replace(await revocations.revoked_serials(session))

    async def _load(self, node_id: uuid.UUID, generation: int) -> CachedNode[A] | None:
        async with self.sessions() as session:
            row = await repository.get(session, node_id)
            if row is None:
                self.nodes.drop(node_id)
                return None
            if row.type == jump.JUMP_TYPE:
                # Its entries stand for users, not for assignments of its own: nothing it reports is
                # recorded (no key in `reported`).
                accounts = jump.accounts(await desired_repo.jump_rows(session))
                node = cached(row, [self.decode(spec) for spec in accounts], {})
                self.nodes.keep(node, generation)
                return node
            desired = await desired_repo.node_desired_state(session, node_id)
        assignments = [self.decode(d.spec) for d in desired]
        reported: dict[str, Outcome | None] = {
            a.assignment_id: (d.reported_state, d.reported_message, d.reported_access_port)
            if d.reported_state is not None
            else None
            for a, d in zip(assignments, desired, strict=True)
        }
        node = cached(row, assignments, reported)
        self.nodes.keep(node, generation)
        return node

    async def _write(
        self,
        cached_node: CachedNode[A],
        now: datetime,
        agent_version: str,
        hardware_wire: bytes | None,
        hardware: dict[str, Any] | None,
        generation: int,
        node_changes: bool = True,
        news: dict[str, Outcome] | None = None,
        applied_wire: bytes | None = None,
    ) -> CachedNode[A]:
        """Under the node's row lock: its record when `node_changes`, and the outcomes in `news`."""
        async with self.sessions() as session, session.begin():
            # Decide on the row as it is now, under its lock: another replica may have moved it.
            row = await repository.get(session, cached_node.id, lock=True)
            assert row is not None  # a node's row is never deleted (a deleted node is `revoked`)
            if not liveness.may_connect(row.status):
                node = cached(row, cached_node.assignments, cached_node.reported)
                self.nodes.keep(node, generation)
                return node
            if news:
                NODE_WRITES.labels("applied_state").inc(await reports.record(session, cached_node.id, news))
            # Only outcomes to write, but the row moved since it was cached (the sweeper, another replica).
            node_changes = node_changes or liveness.record_changes(row.status, row.agent_version, agent_version)
            if node_changes:
                row = await _write_record(session, row, now, agent_version, hardware)
                self.pending.drop(cached_node.id)
            else:
                self.pending.note(cached_node.id, now)
                if row.hardware != cached_node.hardware:  # recorded meanwhile: compare field by field next time
                    hardware_wire = None
        reported = cached_node.reported | {i: o for i, o in (news or {}).items() if i in cached_node.reported}
        node = cached(row, cached_node.assignments, reported)
        node.hardware_wire = hardware_wire
        node.applied_wire = applied_wire if applied_wire is not None else cached_node.applied_wire
        self.nodes.keep(node, generation)
        return node

    # ---- batched liveness ----
    async def flush_last_seen(self) -> int:
        """Write every pending `last_seen_at` in one statement; returns how many were written. A node
        not written is no longer online here or was seen later elsewhere: read it again next time."""
        written, missed = await self.pending.flush(self.sessions)
        for node_id in missed:
            self.forget(node_id)
        return written

    async def final_flush(self) -> None:
        """At shutdown, once the heartbeat port has stopped: what this replica saw is not lost."""
        try:
            await self.flush_last_seen()
        except Exception as exc:
            log.warning("the last last_seen_at batch was not written: %s", exc)


async def _write_record(
    session: AsyncSession, row: Any, now: datetime, agent_version: str, hardware: dict[str, Any] | None
) -> Any:
    """The node's own record as the heartbeat changes it (nodes/liveness.py); events through the outbox."""
    change = liveness.contact(row, now, agent_version, hardware)
    if change.online is not None:
        await outbox.emit(session, tables.outbox, c.NODE_ONLINE, change.online.model_dump(mode="json"), source=SOURCE)
    if change.hardware is not None:
        await outbox.emit(
            session, tables.outbox, c.NODE_HARDWARE_CHANGED, change.hardware.model_dump(mode="json"), source=SOURCE
        )
    for what in change.changes:
        NODE_WRITES.labels(what).inc()
    return await repository.update_record(session, row.id, change.values)
