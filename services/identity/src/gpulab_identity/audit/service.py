"""What other services' events put in the audit log, and the check of its hash chain. Never commits.

The consumer (gpulab_core.events.DurableConsumer) records the event id in the same transaction as
the row written here, so a redelivered event adds no second row. A row's `at` is the event's time,
when the change happened, not when it reached identity: a consumer that was down catches up without
shifting the history (the chain follows append order, so an earlier `at` does not break it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import pagination
from gpulab_core.contracts import identity as c
from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import pki
from gpulab_core.contracts import scheduler as sch
from gpulab_core.errors import InvalidRequest
from gpulab_core.events import Event, EventHandler
from gpulab_identity.audit import repository as audit
from gpulab_identity.audit import selfservice
from gpulab_identity.audit.entries import Build, Entry
from gpulab_identity.users import service as users

log = logging.getLogger(__name__)


# Details name each field they keep: whatever else a payload carries (an enrollment token, should a
# producer ever add one; the SSH keys an assignment carries) never reaches the log, which nobody can
# edit afterwards.
# ---- inventory's and pki's node actions ----
def _node_created(data: dict[str, Any]) -> Entry:
    p = inv.NodeCreatedEvent.model_validate(data)
    details = {"hostname": p.hostname, "type": p.type, "management_ip": p.management_ip}
    return Entry("node.created", "node", p.node_id, p.actor_id, details)


def _node_deleted(data: dict[str, Any]) -> Entry:
    p = inv.NodeDeletedEvent.model_validate(data)
    return Entry("node.deleted", "node", p.node_id, p.actor_id, {"hostname": p.hostname})


def _token_issued(data: dict[str, Any]) -> Entry:
    p = pki.EnrollmentTokenIssued.model_validate(data)
    details = {"expires_at": p.expires_at.isoformat()}
    return Entry("node.enrollment_token_issued", "node", p.node_id, p.actor_id, details)


_NODE_ENTRIES: dict[str, Build] = {
    inv.NODE_CREATED: _node_created,
    inv.NODE_DELETED: _node_deleted,
    pki.ENROLLMENT_TOKEN_ISSUED: _token_issued,
}
NODE_EVENTS = tuple(_NODE_ENTRIES)


# ---- pki's certificates of a node: who got one, from where, and which stopped working (issue 12) ----
def _enrolled(data: dict[str, Any]) -> Entry:
    p = pki.NodeEnrolled.model_validate(data)
    details = {"serial": p.serial, "not_after": p.not_after.isoformat(), "address": p.address}
    return Entry("node.enrolled", "node", p.node_id, None, details)


def _renewed(data: dict[str, Any]) -> Entry:
    p = pki.CertificateRenewed.model_validate(data)
    details = {
        "serial": p.serial,
        "previous_serial": p.previous_serial,
        "not_after": p.not_after.isoformat(),
        "address": p.address,
    }
    return Entry("node.certificate_renewed", "node", p.node_id, None, details)


def _revoked(data: dict[str, Any]) -> Entry:
    p = pki.CertificatesRevoked.model_validate(data)
    return Entry("node.certificates_revoked", "node", p.node_id, p.actor_id, {"serials": p.serials, "reason": p.reason})


_CERTIFICATE_ENTRIES: dict[str, Build] = {
    pki.NODE_ENROLLED: _enrolled,
    pki.CERTIFICATE_RENEWED: _renewed,
    pki.CERTIFICATES_REVOKED: _revoked,
}
CERTIFICATE_EVENTS = tuple(_CERTIFICATE_ENTRIES)


# ---- the scheduler's environments and assignments ----
_ENVIRONMENT_FIELDS = frozenset(sch.EnvironmentFields.model_fields)


def _environment(action: str) -> Build:
    def build(data: dict[str, Any]) -> Entry:
        p = sch.EnvironmentEvent.model_validate(data)
        # Only the environment's own settings: `changes` is free-form in the contract.
        changes = {k: v for k, v in p.changes.items() if k in _ENVIRONMENT_FIELDS}
        return Entry(action, "environment", p.environment_id, p.actor_id, {"name": p.name, "changes": changes})

    return build


def _environment_node(action: str) -> Build:
    def build(data: dict[str, Any]) -> Entry:
        p = sch.EnvironmentNodeEvent.model_validate(data)
        details = {"node_id": str(p.node_id), "environment_name": p.environment_name}
        return Entry(action, "environment", p.environment_id, p.actor_id, details)

    return build


def _assignment_created(data: dict[str, Any]) -> Entry:
    p = sch.AssignmentCreated.model_validate(data)
    details = {
        "user_id": str(p.user_id),
        "user_email": p.user_email,
        "node_id": str(p.node_id),
        "node_hostname": p.node_hostname,
        "gpus": [g.model_dump(mode="json") for g in p.gpus],
        "cpus": p.cpus,
        "ram_mb": p.ram_mb,
        "expires_at": p.expires_at.isoformat() if p.expires_at else None,
        "placement": p.placement,
        **selfservice.assignment_origin(p),
    }
    return Entry("assignment.created", "assignment", p.assignment_id, p.actor_id, details)


# An admin's revoke and the expiry each have their own action; the other reasons (node deleted,
# user disabled) are consequences of an action audited where it happened.
_ENDED_ACTIONS = {"revoked": "assignment.revoked", "expired": "assignment.expired"}


def _assignment_ended(data: dict[str, Any]) -> Entry:
    p = sch.AssignmentEnded.model_validate(data)
    action = _ENDED_ACTIONS.get(p.reason, "assignment.ended")
    details = {"reason": p.reason, "node_hostname": p.node_hostname}
    return Entry(action, "assignment", p.assignment_id, p.actor_id, details)


def _netbird_key_issued(data: dict[str, Any]) -> Entry:
    """A NetBird setup key made for the assignment's user (by their view of the access page): its
    NetBird id and name, never the key."""
    p = sch.NetbirdKeyIssued.model_validate(data)
    details = {
        "setup_key_id": p.setup_key_id,
        "setup_key_name": p.setup_key_name,
        "netbird_group_id": p.netbird_group_id,
        "expires_at": p.expires_at.isoformat() if p.expires_at else None,
        "replaced_setup_key_id": p.replaced_setup_key_id,
        "user_email": p.user_email,
        "node_hostname": p.node_hostname,
    }
    return Entry("assignment.netbird_key_issued", "assignment", p.assignment_id, p.actor_id, details)


def _netbird_access_removed(data: dict[str, Any]) -> Entry:
    p = sch.NetbirdAccessRemoved.model_validate(data)
    details = {
        "netbird_group_id": p.netbird_group_id,
        "setup_keys_removed": p.setup_keys_removed,
        "peers_removed": len(p.peers_removed),
        "peer_names": p.peers_removed,
        "user_email": p.user_email,
    }
    return Entry("assignment.netbird_access_removed", "assignment", p.assignment_id, None, details)


# `scheduler.assignment_expiring` is a reminder, not a change: not audited.
_SCHEDULER_ENTRIES: dict[str, Build] = {
    sch.ENVIRONMENT_CREATED: _environment("environment.created"),
    sch.ENVIRONMENT_UPDATED: _environment("environment.updated"),
    sch.ENVIRONMENT_DELETED: _environment("environment.deleted"),
    sch.NODE_ATTACHED: _environment_node("environment.node_attached"),
    sch.NODE_DETACHED: _environment_node("environment.node_detached"),
    sch.ASSIGNMENT_CREATED: _assignment_created,
    sch.ASSIGNMENT_ENDED: _assignment_ended,
    sch.NETBIRD_KEY_ISSUED: _netbird_key_issued,
    sch.NETBIRD_ACCESS_REMOVED: _netbird_access_removed,
    **selfservice.ENTRIES,
}
SCHEDULER_EVENTS = tuple(_SCHEDULER_ENTRIES)


def _recorder(entries: Mapping[str, Build], kind: str) -> EventHandler:
    async def record(session: AsyncSession, event: Event) -> None:
        """One audit row per event; an event that cannot be read is logged and dropped."""
        build = entries.get(event.type)
        if build is None:
            log.error("audit: event %s has type %r, not a %s event; nothing recorded", event.id, event.type, kind)
            return
        try:
            entry = build(event.data)
        except ValidationError as exc:
            # Dropped, not raised: a retry cannot repair a payload, and raising would have the consumer
            # redeliver it for its whole back-off (about 25 min) before terminating it. Only where and why
            # it failed is logged, never the values, which may hold what must not be written down.
            problems = [(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors()]
            log.error(
                "audit: %s event %s has a malformed payload, nothing recorded: %s", event.type, event.id, problems
            )
            return
        await audit.append(
            session,
            action=entry.action,
            actor_id=entry.actor_id,
            actor_email=await users.actor_email(session, entry.actor_id),
            target_type=entry.target_type,
            target_id=str(entry.target_id),
            details=entry.details,
            at=event.occurred_at,
        )

    return record


record_node_event = _recorder(_NODE_ENTRIES, "node")
record_certificate_event = _recorder(_CERTIFICATE_ENTRIES, "certificate")
record_scheduler_event = _recorder(_SCHEDULER_ENTRIES, "scheduler")


# ---- the chain check (`audit.verify`) ----
def _resume_point(cursor: str) -> tuple[int, bytes, int]:
    """(the last intact row's seq, its hash, rows checked so far) from a `next_cursor`."""
    seq, hash_hex, checked = pagination.decode(cursor, 3)
    try:
        last_hash = bytes.fromhex(hash_hex) if isinstance(hash_hex, str) else b""
    except ValueError:
        last_hash = b""
    if not (isinstance(seq, int) and isinstance(checked, int) and seq >= 0 and checked >= 0 and len(last_hash) == 32):
        raise InvalidRequest("the cursor is not valid", details={"field": "cursor"})
    return seq, last_hash, checked


async def verify_chain(
    session: AsyncSession, req: c.VerifyAuditRequest, budget_s: float, batch: int = 1000
) -> c.AuditVerification:
    """Recompute the chain for about `budget_s` (at least one batch); a longer log needs more calls.

    The cursor carries the last intact row's hash, not just its place: going on from it checks the
    next row's link against the hash already verified, never against whatever the table holds now.
    """
    after_seq, prev_hash, before = _resume_point(req.cursor) if req.cursor else (0, audit.GENESIS, 0)
    result = await audit.verify(
        await session.connection(),
        audit.session_key(session),
        batch,
        after_seq=after_seq,
        prev_hash=prev_hash,
        deadline=time.monotonic() + budget_s,
    )
    finished = result.finished or not result.intact
    checked = before + result.rows
    return c.AuditVerification(
        valid=result.intact if finished else None,
        checked=checked,
        first_bad_id=result.broken_id,
        problem=result.problem,
        next_cursor=None if finished else pagination.encode(result.last_seq, result.last_hash.hex(), checked),
        checked_at=datetime.now(UTC),
    )


# ---- requests the gateway refused (`audit.record_refusal`) ----
REFUSAL_WINDOW = timedelta(minutes=1)
REFUSALS_DROPPED = Counter(
    "gpulab_identity_audit_refusals_dropped_total",
    "Refused requests not written to the audit log: over GPULAB_AUDIT_REFUSALS_*_PER_MINUTE",
    ["bound"],
)


@dataclass(frozen=True)
class RefusalBounds:
    per_address: int  # rows a minute from one client address
    total: int  # rows a minute from all addresses together


async def record_refusal(
    session: AsyncSession, req: c.RecordRefusalRequest, bounds: RefusalBounds
) -> c.RecordRefusalReply:
    """One `request.refused` row, unless the last minute already holds `bounds` of them.

    Counted under the chain's lock, so replicas of identity (and of the gateway) share one bound.
    """
    await audit.lock_chain(session)
    recent = await audit.recent_refusals(session, c.REFUSAL_ACTION, datetime.now(UTC) - REFUSAL_WINDOW)
    if len(recent) >= bounds.total:
        REFUSALS_DROPPED.labels("total").inc()
        return c.RecordRefusalReply(recorded=False)
    if req.client_ip is not None and recent.count(req.client_ip) >= bounds.per_address:
        REFUSALS_DROPPED.labels("address").inc()
        return c.RecordRefusalReply(recorded=False)
    await audit.append(
        session,
        action=c.REFUSAL_ACTION,
        actor_id=req.actor_id,
        actor_email=await users.actor_email(session, req.actor_id),
        target_type="route",
        target_id=f"{req.method} {req.route}",
        details={"code": req.code, "method": req.method, "route": req.route, "client_ip": req.client_ip},
    )
    return c.RecordRefusalReply(recorded=True)
