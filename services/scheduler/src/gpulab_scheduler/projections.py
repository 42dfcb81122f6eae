"""The scheduler's own copy of what it needs from other services, kept from their events.

Nodes (inventory): host name, management IP, status and hardware; each fact keeps the time of the
event that set it and only a newer event replaces it, so events of one node handled out of order by
two replicas converge. A deleted node ends its assignments and leaves its environments.

Users (identity): status, email and SSH keys (users/directory.py reads them); a disabled user's
assignments end.

What each node's agent last reported for an assignment (inventory.assignment_state_reported): the
assignment's `node_state` and `node_message`, set only by a report from the assignment's own node and
only when newer than the report that set them (see on_assignment_state), and with `applied` in
container mode the port of the assignment's container (`node_access_port`); a report that turns it to
`failed` emits `scheduler.assignment_failed` (once per failure), which notify mails to the admins.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import events as identity_events
from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import scheduler as sch
from gpulab_core.events import Event
from gpulab_scheduler.assignments import repository as assignment_rows
from gpulab_scheduler.assignments.ends import SOURCE, end_active
from gpulab_scheduler.environments import repository as environment_rows
from gpulab_scheduler.models import tables
from gpulab_scheduler.nodes import repository as node_rows
from gpulab_scheduler.users import repository as user_rows

log = logging.getLogger(__name__)

NODE_EVENTS = (inv.NODE_CREATED, inv.NODE_ONLINE, inv.NODE_OFFLINE, inv.NODE_HARDWARE_CHANGED, inv.NODE_DELETED)
USER_EVENTS = (identity_events.USER_STATUS_CHANGED,)
KEY_EVENTS = (identity_events.SSH_KEYS_CHANGED,)
REPORT_EVENTS = (inv.ASSIGNMENT_STATE_REPORTED,)


async def _upsert(
    session: AsyncSession,
    node_id: uuid.UUID,
    hostname: str,
    at: datetime,
    *,
    status: str | None = None,
    hardware: dict[str, object] | None = None,
    address: tuple[str, int] | None = None,
) -> None:
    """Create the node's row if this is the first event seen of it, then apply the facts where newer."""
    await node_rows.ensure(session, node_id, hostname, at)
    if status is not None:
        await node_rows.set_status(session, node_id, hostname, status, at)
    if hardware is not None:
        await node_rows.set_hardware(session, node_id, hardware, at)
    if address is not None:
        await node_rows.set_address(session, node_id, *address)


async def on_node_event(session: AsyncSession, event: Event) -> None:
    at = event.occurred_at
    if event.type == inv.NODE_CREATED:
        created = inv.NodeCreatedEvent.model_validate(event.data)
        await _upsert(
            session,
            created.node_id,
            created.hostname,
            at,
            address=(created.management_ip, created.ssh_port),
        )
    elif event.type == inv.NODE_ONLINE:
        online = inv.NodeOnlineEvent.model_validate(event.data)
        await _upsert(session, online.node_id, online.hostname, at, status="online")
    elif event.type == inv.NODE_OFFLINE:
        offline = inv.NodeOfflineEvent.model_validate(event.data)
        await _upsert(session, offline.node_id, offline.hostname, at, status="offline")
    elif event.type == inv.NODE_HARDWARE_CHANGED:
        changed = inv.NodeHardwareChangedEvent.model_validate(event.data)
        await _upsert(session, changed.node_id, changed.hostname, at, hardware=changed.hardware)
    elif event.type == inv.NODE_DELETED:
        deleted = inv.NodeDeletedEvent.model_validate(event.data)
        await _upsert(session, deleted.node_id, deleted.hostname, at)
        await node_rows.mark_deleted(session, deleted.node_id, at)
        await environment_rows.detach_everywhere(session, deleted.node_id)
        await end_active(session, "node_deleted", deleted.actor_id, node_id=deleted.node_id)


async def on_user_event(session: AsyncSession, event: Event) -> None:
    """Keep the user's status (newest wins); a disabled user's assignments end in the same transaction,
    after the row's update, so an assignment being made for them (holding the row FOR SHARE,
    users/directory.py) is either waited for and ended here or refused."""
    changed = identity_events.UserStatusChanged.model_validate(event.data)
    recorded = await user_rows.set_status(session, changed.user_id, changed.email, changed.status, event.occurred_at)
    # A stale `disabled` (retried or redelivered after the user was enabled again) ends nothing: the
    # assignments made since belong to the newer, active user.
    if recorded and changed.status == "disabled":
        await end_active(session, "user_disabled", changed.actor_id, user_id=changed.user_id)


async def on_keys_event(session: AsyncSession, event: Event) -> None:
    """Keep the user's SSH keys (the highest version wins: redeliveries and reorders converge)."""
    changed = identity_events.SshKeysChanged.model_validate(event.data)
    await user_rows.set_keys(session, changed.user_id, changed.public_keys, changed.version)


async def on_assignment_state(session: AsyncSession, event: Event) -> None:
    """Keep the node's newest report on the assignment.

    - Only the assignment's own node counts: inventory sends only reports of assignments it gave
      that node, and this checks it again, so a report naming another node changes nothing.
    - Newest wins by `reported_at`: the UPDATE's WHERE is re-checked on the row under its lock, so
      two consumer replicas applying two reports of one assignment at once keep the newer, in
      whatever order they commit; a redelivery is skipped by the consumer (processed_events) and
      would change nothing anyway.
    - The access port (container mode) is kept with `applied` only, and only a TCP port
      (inv.TCP_PORT_MIN..TCP_PORT_MAX; inventory already drops any other): anything else is logged
      and kept as none, so the SSH config is withheld rather than wrong.
    - `removed` changes nothing: the node says the access is gone because the assignment ended (or,
      by the node's clock, expired). Its `status` says so already; `node_state` keeps what the node
      last reported while the assignment was in force (the API has no state for "removed").
    """
    report = inv.AssignmentStateReported.model_validate(event.data)
    if report.state == "removed":
        return
    # The row under its lock: the state it had is what decides whether this report is a new failure.
    before = await assignment_rows.lock_for_report(session, report.assignment_id, report.node_id, report.reported_at)
    if before is None:
        return
    await assignment_rows.record_report(
        session,
        report.assignment_id,
        state=report.state,
        message=report.message if report.state == "failed" else None,
        access_port=_access_port(report) if report.state == "applied" else None,
        reported_at=report.reported_at,
    )
    # Admins hear of a failure once: when the state turns to `failed`, not for every later report of
    # the same failure (a new message, a redelivery), and not for an assignment that has ended.
    if report.state == "failed" and before.node_state != "failed" and before.status == "active":
        failed = sch.AssignmentFailed(
            assignment_id=before.id,
            user_id=before.user_id,
            user_email=before.user_email,
            node_id=before.node_id,
            node_hostname=before.node_hostname or str(before.node_id),
            linux_username=before.linux_username,
            message=report.message,
            reported_at=report.reported_at,
        )
        await outbox.emit(session, tables.outbox, sch.ASSIGNMENT_FAILED, failed.model_dump(mode="json"), source=SOURCE)


def _access_port(report: inv.AssignmentStateReported) -> int | None:
    port = report.access_port
    if port is None or inv.TCP_PORT_MIN <= port <= inv.TCP_PORT_MAX:
        return port
    log.warning(
        "assignment %s: node %s reported access port %d, not %d to %d: ignored",
        report.assignment_id,
        report.node_id,
        port,
        inv.TCP_PORT_MIN,
        inv.TCP_PORT_MAX,
    )
    return None
