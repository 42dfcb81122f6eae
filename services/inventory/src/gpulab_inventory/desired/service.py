"""The desired state each node enforces: a projection of the scheduler's assignments and identity's
SSH keys, kept by one durable consumer and read by the heartbeat path (heartbeat/directory.py).

- `scheduler.assignment_created` puts the assignment's row: `spec` is the agent's
  `gpulab.agent.v1.Assignment` as JSON, with the user's keys as identity last said when a change of
  them has been seen (they are newer than, or the same as, the snapshot in the event), else the event's.
- `scheduler.assignment_ended` drops the row and keeps a tombstone: with several replicas an ended
  event can be applied before its created event, which must then not bring the assignment back.
- `identity.ssh_keys_changed` keeps the user's full key list if its version is higher than the one
  kept, and rewrites the keys of every assignment of that user.
- After each, every node whose desired state changed is fitted to one heartbeat reply
  (desired/fitting.py): what does not fit is withheld, recorded as `failed`, and sent again once it fits.

The consumer records processed event ids (gpulab_core.events), so a redelivery changes nothing; what
races between replicas is serialised by transaction-scoped advisory locks (repository.py).

Every replica caches each node's desired state (Directory, for `node_cache_s`). A change is announced
only once it is committed, on the core NATS subject `DESIRED_STATE_CHANGED` naming the nodes; every
replica then drops those nodes' cached copies. Dropping them on the scheduler's or identity's event
itself would be too early: that event is published before any consumer has applied it, and a
heartbeat in between would cache the old state again for `node_cache_s`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from gpulab.agent.v1 import assignment_pb2
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from gpulab_core.contracts import events as identity_events
from gpulab_core.contracts import scheduler as s
from gpulab_core.contracts import selfservice as ss
from gpulab_core.events import Event
from gpulab_inventory.desired import fitting
from gpulab_inventory.desired import repository as repo
from gpulab_inventory.heartbeat import reports

log = logging.getLogger(__name__)

CONSUMES = (s.ASSIGNMENT_CREATED, s.ASSIGNMENT_ENDED, ss.ASSIGNMENT_EXTENDED, identity_events.SSH_KEYS_CHANGED)
# Core NATS (not the event stream): a hint to every inventory replica, lost harmlessly when nobody
# listens, since each cached copy expires after `node_cache_s` anyway. Body: {"node_ids": [...]}.
DESIRED_STATE_CHANGED = "gpulab.inventory.desired_state_changed"

_MODES = {
    "soft": assignment_pb2.ENFORCEMENT_MODE_SOFT,
    "cgroup": assignment_pb2.ENFORCEMENT_MODE_CGROUP,
    "mig": assignment_pb2.ENFORCEMENT_MODE_MIG,
    "container": assignment_pb2.ENFORCEMENT_MODE_CONTAINER,
}


def assignment_spec(created: s.AssignmentCreated, ssh_public_keys: list[str]) -> dict[str, Any]:
    """The agent's Assignment as JSON with proto field names: what `Directory` parses back."""
    message = assignment_pb2.Assignment(
        assignment_id=str(created.assignment_id),
        linux_username=created.linux_username,
        ssh_public_keys=ssh_public_keys,
        enforcement_mode=_MODES[created.enforcement_mode],
        gpus=[assignment_pb2.AssignedGpu(index=g.index, uuid=g.uuid) for g in created.gpus],
        cpus=created.cpus,
        ram_mb=created.ram_mb,
    )
    if created.expires_at is not None:
        expires = created.expires_at
        message.expires_at.FromDatetime(expires if expires.tzinfo else expires.replace(tzinfo=UTC))
    spec: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return spec


async def assignment_created(
    session: AsyncSession, created: s.AssignmentCreated, created_at: datetime
) -> set[uuid.UUID]:
    """Returns the nodes whose desired state changed. `created_at` is the event's `occurred_at`."""
    await repo.lock_assignment(session, created.assignment_id)
    if await repo.has_ended(session, created.assignment_id):
        return set()
    await repo.lock_node_gpus(session, created.node_id)  # after the assignment's lock, before the user's
    if await supersede(session, created, created_at):
        return set()
    await repo.lock_user(session, created.user_id)  # always after the assignment's lock: no cycle
    kept = await repo.user_keys(session, created.user_id)
    spec = assignment_spec(created, created.ssh_public_keys if kept is None else kept)
    previous = await repo.node_of(session, created.assignment_id)
    await repo.put_assignment(session, created.assignment_id, created.node_id, created.user_id, spec, created_at)
    return {created.node_id} | ({previous} if previous is not None else set())


async def supersede(session: AsyncSession, created: s.AssignmentCreated, created_at: datetime) -> bool:
    """The scheduler gives a GPU to one active assignment at a time, so of two assignments of a node
    that hold one GPU, the older has ended, whichever of the events is late (another consumer replica
    may still be applying its ended event, or a redelivery may bring it a minute later): without this
    the node would enforce both, two users on one GPU (found by the chaos test). The older is recorded
    as ended here; True when that is the new one (it is then not put)."""
    mine = {g.uuid for g in created.gpus}
    for other, other_created_at, spec in await repo.on_node(session, created.node_id):
        if other == created.assignment_id or not mine & {g.get("uuid") for g in spec.get("gpus", [])}:
            continue
        if other_created_at is not None and other_created_at > created_at:
            await repo.end_assignment(session, created.assignment_id, created.node_id, created_at)
            return True
        await repo.lock_assignment(session, other)
        await repo.end_assignment(session, other, created.node_id, created_at)
    return False


async def assignment_ended(session: AsyncSession, ended: s.AssignmentEnded) -> set[uuid.UUID]:
    await repo.lock_assignment(session, ended.assignment_id)
    dropped = await repo.end_assignment(session, ended.assignment_id, ended.node_id, ended.ended_at)
    return set(dropped)


async def assignment_extended(session: AsyncSession, extended: ss.AssignmentExtended) -> set[uuid.UUID]:
    """The new expiry goes into the agent's copy. An older extension applied after a newer one (two
    replicas) changes nothing: the later expiry stays."""
    await repo.lock_assignment(session, extended.assignment_id)
    found = await repo.spec_of(session, extended.assignment_id)
    if found is None:
        return set()  # ended already (or its created event, which carries the new expiry, is to come)
    node_id, spec = found
    current = spec.get("expires_at")
    if current is not None and datetime.fromisoformat(current.replace("Z", "+00:00")) >= extended.expires_at:
        return set()
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(extended.expires_at.astimezone(UTC))
    await repo.set_spec(session, extended.assignment_id, {**spec, "expires_at": stamp.ToJsonString()})
    return {node_id}


async def ssh_keys_changed(session: AsyncSession, changed: identity_events.SshKeysChanged) -> set[uuid.UUID]:
    await repo.lock_user(session, changed.user_id)
    if not await repo.store_keys(session, changed.user_id, changed.public_keys, changed.version):
        return set()  # an older (or the same) version than the one kept
    return set(await repo.rewrite_keys(session, changed.user_id, changed.public_keys))


async def fit_nodes(session: AsyncSession, nodes: Iterable[uuid.UUID], max_message_bytes: int) -> set[uuid.UUID]:
    """Fit each node's assignments to one heartbeat reply (desired/fitting.py): withhold what does not
    fit, recorded as `failed` with an event each, and release what fits again. Returns the nodes whose
    reply changed."""
    changed: set[uuid.UUID] = set()
    for node_id in sorted(nodes):
        await repo.lock_node(session, node_id)
        rows = await repo.node_assignments(session, node_id)
        sizes = {r.assignment_id: fitting.reply_size(fitting.parse(r.spec)) for r in rows}
        plan = fitting.fit(sizes, max_message_bytes)
        before = {r.assignment_id for r in rows if r.withheld}
        newly = {a: fitting.reason(sizes[a], plan) for a in sorted(plan.withheld - before, key=str)}
        if newly:
            log.error(
                "node %s: %d assignment(s) left out of its heartbeat reply (%d bytes of assignments, %d fit): %s",
                node_id,
                len(newly),
                plan.total,
                plan.budget,
                ", ".join(str(a) for a in newly),
            )
            await reports.announce(session, node_id, await repo.withhold(session, node_id, newly))
        if released := before - plan.withheld:
            await repo.release(session, node_id, released)
        if newly or released:
            changed.add(node_id)
    return changed


@dataclass
class Projection:
    """The consumer's handler, and the announcements of what it committed. `max_message_bytes` is the
    heartbeat reply's limit (GPULAB_HEARTBEAT_MAX_MESSAGE_BYTES)."""

    max_message_bytes: int
    _changed: asyncio.Queue[set[uuid.UUID]] = field(default_factory=asyncio.Queue)
    _refitting: set[uuid.UUID] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def apply(self, session: AsyncSession, event: Event) -> None:
        if event.type == s.ASSIGNMENT_CREATED:
            created = s.AssignmentCreated.model_validate(event.data)
            nodes = await assignment_created(session, created, event.occurred_at)
        elif event.type == s.ASSIGNMENT_ENDED:
            nodes = await assignment_ended(session, s.AssignmentEnded.model_validate(event.data))
        elif event.type == ss.ASSIGNMENT_EXTENDED:
            nodes = await assignment_extended(session, ss.AssignmentExtended.model_validate(event.data))
        elif event.type == identity_events.SSH_KEYS_CHANGED:
            nodes = await ssh_keys_changed(session, identity_events.SshKeysChanged.model_validate(event.data))
        else:
            return
        if nodes:
            await fit_nodes(session, nodes, self.max_message_bytes)
            self._announce_after_commit(session, nodes)

    async def refit(self, sessions: async_sessionmaker[AsyncSession], node_id: uuid.UUID) -> None:
        """Fit one node now, in a transaction of its own: for a reply the heartbeat path found too large
        (rows from before fitting existed, or a smaller limit since)."""
        async with sessions() as session, session.begin():
            if await fit_nodes(session, {node_id}, self.max_message_bytes):
                self._announce_after_commit(session, {node_id})

    def refit_soon(self, sessions: async_sessionmaker[AsyncSession], node_id: uuid.UUID) -> None:
        """`refit` off the heartbeat path, once at a time per node."""
        if node_id in self._refitting:
            return
        self._refitting.add(node_id)

        async def run() -> None:
            try:
                await self.refit(sessions, node_id)
            except Exception as exc:  # the next heartbeat that meets the too-large reply tries again
                log.warning("fitting node %s's heartbeat reply failed: %r", node_id, exc)
            finally:
                self._refitting.discard(node_id)

        task = asyncio.create_task(run(), name=f"refit-{node_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _announce_after_commit(self, session: AsyncSession, nodes: set[uuid.UUID]) -> None:
        # The consumer commits after this handler returns; a rollback announces nothing.
        def committed(_session: Session) -> None:
            self._changed.put_nowait(nodes)

        sa_event.listen(session.sync_session, "after_commit", committed, once=True)

    async def run_announcer(
        self, forget: Callable[[uuid.UUID], None], publish: Callable[[bytes], Awaitable[None]]
    ) -> None:
        """Drops the changed nodes' cached copies here at once, then tells the other replicas."""
        while True:
            nodes = await self._changed.get()
            while not self._changed.empty():
                nodes |= self._changed.get_nowait()
            for node_id in nodes:
                forget(node_id)
            try:
                await publish(changed_notice(nodes))
            except Exception as exc:  # NATS away: the other replicas' copies expire on their own
                log.warning("announcing a desired-state change failed: %r", exc)


def changed_notice(nodes: Iterable[uuid.UUID]) -> bytes:
    return json.dumps({"node_ids": sorted(str(n) for n in nodes)}).encode()


def nodes_in_notice(data: bytes) -> list[uuid.UUID]:
    """The node ids of a DESIRED_STATE_CHANGED notice; nothing for a malformed one."""
    try:
        return [uuid.UUID(str(n)) for n in json.loads(data)["node_ids"]]
    except (ValueError, KeyError, TypeError):
        return []
