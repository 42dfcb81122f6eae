"""What one replica remembers between heartbeats: each node's record and desired state (for
`node_cache_s`, dropped at once when another replica announces a change), and the revoked serials."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from gpulab_inventory.heartbeat.reports import Outcome


class Assignment(Protocol):
    @property
    def assignment_id(self) -> str: ...


A = TypeVar("A", bound=Assignment)  # an assignment as the heartbeat reply carries it (wire.py makes them)


@dataclass
class CachedNode(Generic[A]):
    id: uuid.UUID
    hostname: str
    type: str
    status: str
    agent_version: str | None
    hardware: dict[str, Any] | None
    hardware_wire: bytes | None  # the last Hardware message as received, to compare without parsing
    assignments: list[A]
    # Per assignment of `assignments` (by id, as the node got it): the outcome last recorded for it,
    # None before its first report. An id that is not a key here is not the node's to report on.
    reported: dict[str, Outcome | None]
    loaded_at: float
    applied_wire: bytes | None = None  # the last AppliedState handled in full against `reported`
    # The last request (its bytes) that changed nothing, and the reply sent to it: the same bytes
    # again, to this copy, get the same reply without being parsed (Directory.replay).
    request_wire: bytes | None = None
    reply_wire: bytes | None = None


def cached(row: Any, assignments: list[A], reported: dict[str, Outcome | None]) -> CachedNode[A]:
    """A fresh copy of the node's row (inventory.nodes) with its desired state."""
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


class NodeCache(Generic[A]):
    """Node id → its cached copy, each kept for `max_age_s`.

    A copy read from the database while a forget() of *that node* came in may predate the change
    that forget() announced: it serves the heartbeat that read it but is not kept. Read `generation`
    before reading the database, pass it to keep(). Forgets are counted per node, so that the stream
    of other nodes' notices (every node coming online sends one) never keeps a fresh copy out."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._nodes: dict[uuid.UUID, CachedNode[A]] = {}
        self._ticks = 0
        self._forgotten: dict[uuid.UUID, int] = {}  # node → the tick of its last forget (one int per node)
        self._all_forgotten = 0  # the tick of the last forget_all()

    @property
    def generation(self) -> int:
        return self._ticks

    def __len__(self) -> int:
        return len(self._nodes)

    def fresh(self, node_id: uuid.UUID, now_mono: float) -> CachedNode[A] | None:
        node = self._nodes.get(node_id)
        if node is None or now_mono - node.loaded_at > self.max_age_s:
            return None
        return node

    def keep(self, node: CachedNode[A], generation: int) -> None:
        if max(self._forgotten.get(node.id, 0), self._all_forgotten) <= generation:
            self._nodes[node.id] = node
        else:
            self._nodes.pop(node.id, None)

    def drop(self, node_id: uuid.UUID) -> None:
        """The node is gone from the database: nothing to keep (no change announced)."""
        self._nodes.pop(node_id, None)

    def forget(self, node_id: uuid.UUID) -> None:
        """Another replica (or this one's batch) changed the node: read it again at its next heartbeat."""
        self._ticks += 1
        self._forgotten[node_id] = self._ticks
        self._nodes.pop(node_id, None)

    def forget_all(self) -> None:
        """Notices may have been missed (this replica's NATS connection dropped): read every node again."""
        self._ticks += 1
        self._all_forgotten = self._ticks
        self._forgotten.clear()
        self._nodes.clear()


class RevokedSerials:
    """The serials pki revoked, as this replica knows them (heartbeat/revocations.py reads them)."""

    def __init__(self) -> None:
        self._serials: frozenset[str] = frozenset()

    def __contains__(self, serial: object) -> bool:
        return serial in self._serials

    def add(self, serials: Iterable[str]) -> None:
        self._serials = self._serials | frozenset(serials)

    def replace(self, serials: frozenset[str]) -> None:
        self._serials = serials
