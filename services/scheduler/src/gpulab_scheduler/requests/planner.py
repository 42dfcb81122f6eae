"""The fair queue's plan for one Environment (pure; no I/O): conservative backfill.

Requests are taken in submission order. Each gets the earliest time at which some node of the
Environment has its GPUs free for its whole length, given what runs now (until its expiry; for ever
when it has none) and the places already promised to the requests before it. A request whose
earliest time is now starts now; any other keeps its promise (a reservation), which no later request
may touch. So a later request starts early only in a gap that ends before every earlier request's
start: backfill never delays the head of the queue, nor anyone ahead of it (docs/adr/0018).

Among the nodes that give the same earliest time, the one with the fewest free GPUs now is taken
(best fit, as placement does), then the host name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Busy:
    """GPUs taken on a node from `start` until `end` (None: no known end)."""

    gpus: int
    start: datetime
    end: datetime | None


@dataclass(slots=True)
class NodeLine:
    """A node's GPUs over time: how many it has for this Environment, and what holds some of them."""

    id: uuid.UUID
    hostname: str
    capacity: int
    busy: list[Busy] = field(default_factory=list)

    def free_at(self, t: datetime) -> int:
        return self.capacity - sum(b.gpus for b in self.busy if b.start <= t and (b.end is None or t < b.end))

    def earliest(self, gpus: int, length: timedelta, now: datetime) -> datetime | None:
        """The first time from `now` at which `gpus` are free on this node for `length`, or None.

        One sweep over the times where the free count changes (a span starting takes, one ending
        gives back): O(k log k) for k spans."""
        if gpus > self.capacity:
            return None
        changes: dict[datetime, int] = {}
        free = self.capacity
        for b in self.busy:
            if b.end is not None and b.end <= now:
                continue
            if b.start <= now:
                free -= b.gpus
            else:
                changes[b.start] = changes.get(b.start, 0) - b.gpus
            if b.end is not None:
                changes[b.end] = changes.get(b.end, 0) + b.gpus
        start: datetime | None = now if free >= gpus else None
        for t in sorted(changes):
            if start is not None and t >= start + length:
                return start  # free enough from `start` until past its end
            free += changes[t]
            if free < gpus:
                start = None
            elif start is None:
                start = t
        return start  # free enough from `start` on for ever (or None: never)


@dataclass(frozen=True, slots=True)
class Spot:
    node: NodeLine
    start: datetime


class Planner:
    """Hands out spots in queue order; `take` records each one (a grant now, or a reservation)."""

    def __init__(self, now: datetime, nodes: list[NodeLine]) -> None:
        self.now = now
        self.nodes = sorted(nodes, key=lambda n: (n.hostname, str(n.id)))

    def free_now(self) -> int:
        return sum(max(0, n.free_at(self.now)) for n in self.nodes)

    def earliest(self, gpus: int, hours: int) -> Spot | None:
        """Where and when a request of `gpus` for `hours` can start; None: never with what is known
        (more GPUs than any node has, or blocked by assignments without an expiry)."""
        length = timedelta(hours=hours)
        best: tuple[datetime, int, NodeLine] | None = None
        for node in self.nodes:
            t = node.earliest(gpus, length, self.now)
            if t is None or (best is not None and t > best[0]):
                continue
            fit = node.free_at(self.now)
            if best is None or (t, fit) < (best[0], best[1]):
                best = (t, fit, node)
        return Spot(best[2], best[0]) if best else None

    def starts_now(self, spot: Spot | None) -> bool:
        return spot is not None and spot.start <= self.now

    def take(self, spot: Spot, gpus: int, hours: int) -> None:
        spot.node.busy.append(Busy(gpus, spot.start, spot.start + timedelta(hours=hours)))

    def take_node(self, node_id: uuid.UUID, start: datetime, gpus: int, hours: int) -> None:
        """A grant placed on `node_id` (which may differ from the spot's when placement chose)."""
        for node in self.nodes:
            if node.id == node_id:
                node.busy.append(Busy(gpus, start, start + timedelta(hours=hours)))
                return
