"""What other services' events put in the audit log. Never commits; the consumer owns the transaction.

The consumer (gpulab_core.events.DurableConsumer) records the event id in the same transaction as
the row written here, so a redelivered event adds no second row. A row's `at` is the event's time,
when the change happened, not when it reached identity: a consumer that was down catches up without
shifting the history (the chain follows append order, so an earlier `at` does not break it).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import pki
from gpulab_core.events import Event
from gpulab_identity.audit import repository as audit
from gpulab_identity.users import service as users

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _NodeEntry:
    action: str
    node_id: uuid.UUID
    actor_id: uuid.UUID | None  # None: the system acted, as in the rows identity writes itself
    details: dict[str, Any]


# Details name each field they keep: whatever else a payload carries (an enrollment token, should a
# producer ever add one) never reaches the log, which nobody can edit afterwards.
def _node_created(data: dict[str, Any]) -> _NodeEntry:
    p = inv.NodeCreatedEvent.model_validate(data)
    details = {"hostname": p.hostname, "type": p.type, "management_ip": p.management_ip}
    return _NodeEntry("node.created", p.node_id, p.actor_id, details)


def _node_deleted(data: dict[str, Any]) -> _NodeEntry:
    p = inv.NodeDeletedEvent.model_validate(data)
    return _NodeEntry("node.deleted", p.node_id, p.actor_id, {"hostname": p.hostname})


def _token_issued(data: dict[str, Any]) -> _NodeEntry:
    p = pki.EnrollmentTokenIssued.model_validate(data)
    return _NodeEntry("node.enrollment_token_issued", p.node_id, p.actor_id, {"expires_at": p.expires_at.isoformat()})


_NODE_ENTRIES: dict[str, Callable[[dict[str, Any]], _NodeEntry]] = {
    inv.NODE_CREATED: _node_created,
    inv.NODE_DELETED: _node_deleted,
    pki.ENROLLMENT_TOKEN_ISSUED: _token_issued,
}
NODE_EVENTS = tuple(_NODE_ENTRIES)


async def record_node_event(session: AsyncSession, event: Event) -> None:
    """One audit row per node event; an event that cannot be read is logged and dropped."""
    build = _NODE_ENTRIES.get(event.type)
    if build is None:
        log.error("audit: event %s has type %r, not a node event; nothing recorded", event.id, event.type)
        return
    try:
        entry = build(event.data)
    except ValidationError as exc:
        # Dropped, not raised: a retry cannot repair a payload, and raising would have the consumer
        # redeliver it for its whole back-off (about 25 min) before terminating it. Only where and why
        # it failed is logged, never the values, which may hold what must not be written down.
        problems = [(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors()]
        log.error("audit: %s event %s has a malformed payload, nothing recorded: %s", event.type, event.id, problems)
        return
    await audit.append(
        session,
        action=entry.action,
        actor_id=entry.actor_id,
        actor_email=await users.actor_email(session, entry.actor_id),
        target_type="node",
        target_id=str(entry.node_id),
        details=entry.details,
        at=event.occurred_at,
    )
