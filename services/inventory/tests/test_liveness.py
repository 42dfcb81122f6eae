"""The liveness rules of a node (nodes/liveness.py), without a database: what a heartbeat changes in
the node's record, which events it emits, and when a silent node is offline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gpulab_inventory.nodes import liveness

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HW: dict[str, Any] = {"cpu_model": "x", "cpu_cores": 8, "ram_mb": 1024, "gpus": []}


@dataclass(frozen=True)
class Record:
    id: uuid.UUID
    hostname: str
    status: str
    status_changed_at: datetime
    agent_version: str | None
    hardware: dict[str, Any] | None
    last_seen_at: datetime = NOW


ONLINE = Record(uuid.uuid4(), "gpu-1", liveness.ONLINE, NOW - timedelta(hours=1), "1.0.0", HW)


def test_a_deleted_node_may_not_connect_and_every_other_may() -> None:
    assert not liveness.may_connect(liveness.REVOKED)
    for status in (liveness.PENDING, liveness.ONLINE, liveness.OFFLINE):
        assert liveness.may_connect(status)


def test_only_an_online_node_with_the_same_agent_version_needs_no_write() -> None:
    assert not liveness.record_changes(liveness.ONLINE, "1.0.0", "1.0.0")
    assert liveness.record_changes(liveness.ONLINE, "1.0.0", "1.0.1")
    assert liveness.record_changes(liveness.ONLINE, None, "1.0.0")
    assert liveness.record_changes(liveness.OFFLINE, "1.0.0", "1.0.0")
    assert liveness.record_changes(liveness.PENDING, None, "1.0.0")


def test_a_heartbeat_that_changes_nothing_writes_only_its_time() -> None:
    found = liveness.contact(ONLINE, NOW, "1.0.0", HW)
    assert found.values == {"last_seen_at": NOW}
    assert (found.online, found.hardware, found.changes) == (None, None, [])
    assert liveness.contact(ONLINE, NOW, "1.0.0", None).values == {"last_seen_at": NOW}  # no report: kept


def test_first_contact_brings_a_pending_node_online_without_an_offline_since() -> None:
    pending = replace(ONLINE, status=liveness.PENDING, agent_version=None, hardware=None)
    found = liveness.contact(pending, NOW, "1.0.0", HW)
    assert found.values == {
        "last_seen_at": NOW,
        "status": liveness.ONLINE,
        "status_changed_at": NOW,
        "agent_version": "1.0.0",
        "hardware": HW,
        "hardware_changed_at": NOW,
    }
    assert found.changes == ["online", "agent_version", "hardware"]
    assert found.online is not None
    assert found.online.previous_status == liveness.PENDING
    assert found.online.offline_since is None
    assert found.hardware is not None
    assert found.hardware.previous is None


def test_back_from_offline_says_since_when_it_was_offline() -> None:
    went = NOW - timedelta(minutes=5)
    found = liveness.contact(replace(ONLINE, status=liveness.OFFLINE, status_changed_at=went), NOW, "1.0.0", None)
    assert found.online is not None
    assert (found.online.previous_status, found.online.offline_since, found.online.at) == (liveness.OFFLINE, went, NOW)
    assert found.changes == ["online"]


def test_new_hardware_is_recorded_with_the_previous_one_in_its_event() -> None:
    new = HW | {"ram_mb": 2048}
    found = liveness.contact(ONLINE, NOW, "1.0.0", new)
    assert found.values == {"last_seen_at": NOW, "hardware": new, "hardware_changed_at": NOW}
    assert found.hardware is not None
    assert (found.hardware.previous, found.online) == (HW, None)


def test_a_node_is_offline_once_silent_for_exactly_the_threshold() -> None:
    cutoff = liveness.offline_cutoff(NOW, 30)
    assert cutoff == NOW - timedelta(seconds=30)
    # The sweeper's rule is last_seen_at < cutoff: seen exactly 30 s ago is still online, a moment more is not.
    assert not (NOW - timedelta(seconds=30) < cutoff)
    assert NOW - timedelta(seconds=30, microseconds=1) < cutoff
    event = liveness.went_offline(replace(ONLINE, last_seen_at=cutoff), NOW)
    assert (event.node_id, event.last_seen_at, event.at) == (ONLINE.id, cutoff, NOW)


def test_last_seen_is_written_at_least_four_times_per_offline_threshold() -> None:
    assert liveness.flush_every(5, 60) == 5
    assert liveness.flush_every(5, 20) == 5  # exactly a quarter
    assert liveness.flush_every(5, 12) == 3
