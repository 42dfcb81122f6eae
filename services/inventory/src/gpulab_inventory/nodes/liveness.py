"""The liveness rules of a node: when it is online, when it goes offline, what a heartbeat changes in
its record, and which events say so. Plain functions over the node's recorded values; no I/O (the
heartbeat path and the sweeper in heartbeat/ apply them, nodes/repository.py writes the result).

- A node is `pending` until its first heartbeat, `online` while it heartbeats, `offline` once silent
  for `offline_after_s`, and `revoked` (deleted) for good: a revoked node may never connect again.
- A heartbeat brings a node back online (from pending or offline), records a new agent version, and
  records new hardware; each of these is a write, and going online and new hardware are events.
- Anything else a heartbeat carries is only its time (`last_seen_at`), written in batches.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from gpulab_core.contracts import inventory as c

PENDING = "pending"
ONLINE = "online"
OFFLINE = "offline"
REVOKED = "revoked"
# last_seen_at is written at least this often per offline threshold, so that a live node's last
# contact in the database is never older than a quarter of it, whatever the flush setting says.
FLUSHES_PER_OFFLINE_THRESHOLD = 4


class NodeRecord(Protocol):
    """The recorded values the rules read (a row of inventory.nodes)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def hostname(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def status_changed_at(self) -> datetime: ...
    @property
    def agent_version(self) -> str | None: ...
    @property
    def hardware(self) -> dict[str, Any] | None: ...


class SilentNode(Protocol):
    """A node the sweeper turned offline."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def hostname(self) -> str: ...
    @property
    def last_seen_at(self) -> datetime: ...


def may_connect(status: str) -> bool:
    """A deleted (revoked) node is refused; every other one may heartbeat."""
    return status != REVOKED


def record_changes(status: str, recorded_version: str | None, agent_version: str) -> bool:
    """Whether a heartbeat changes the node's record whatever its hardware: it brings the node back
    online, or it comes from another agent version."""
    return status != ONLINE or recorded_version != agent_version


@dataclass
class Contact:
    """What one heartbeat changes in the node's record: the values to write and the events to emit."""

    values: dict[str, Any]
    online: c.NodeOnlineEvent | None = None
    hardware: c.NodeHardwareChangedEvent | None = None
    changes: list[str] = field(default_factory=list)  # which of online, agent_version, hardware


def contact(node: NodeRecord, now: datetime, agent_version: str, hardware: dict[str, Any] | None) -> Contact:
    """A heartbeat at `now` from the node's agent `agent_version`, with `hardware` (None: no report,
    the recorded hardware stays). The node's time is written with it."""
    found = Contact(values={"last_seen_at": now})
    if node.status != ONLINE:
        found.values |= {"status": ONLINE, "status_changed_at": now}
        found.online = c.NodeOnlineEvent(
            node_id=node.id,
            hostname=node.hostname,
            previous_status=node.status,
            at=now,
            offline_since=node.status_changed_at if node.status == OFFLINE else None,
        )
        found.changes.append("online")
    if node.agent_version != agent_version:
        found.values["agent_version"] = agent_version
        found.changes.append("agent_version")
    if hardware is not None and node.hardware != hardware:
        found.values |= {"hardware": hardware, "hardware_changed_at": now}
        found.hardware = c.NodeHardwareChangedEvent(
            node_id=node.id, hostname=node.hostname, hardware=hardware, previous=node.hardware
        )
        found.changes.append("hardware")
    return found


def offline_cutoff(now: datetime, offline_after_s: float) -> datetime:
    """An online node last seen before this is offline."""
    return now - timedelta(seconds=offline_after_s)


def went_offline(node: SilentNode, now: datetime) -> c.NodeOfflineEvent:
    return c.NodeOfflineEvent(node_id=node.id, hostname=node.hostname, last_seen_at=node.last_seen_at, at=now)


def flush_every(flush_s: float, offline_after_s: float) -> float:
    """How often the batched last_seen_at is written: the setting, but never so rarely that a live
    node's last contact could look older than a quarter of the offline threshold."""
    return min(flush_s, offline_after_s / FLUSHES_PER_OFFLINE_THRESHOLD)
