"""Which NetBird setup key an assignment has, when it is replaced, and the removal of its peers when it
ends (issue 12, finding 7). Never commits: the caller owns the transaction.

- One key per assignment, minted on the first view of the access page and stored (`netbird_access`):
  every later view shows the same key while NetBird says it is `valid`. A new one replaces it (and the
  old one is deleted in NetBird) only once it is spent (`overused`: a machine joined with it), expired,
  revoked or gone. So viewing the page never mints a key, at most one unused key of an assignment exists
  at a time, and each new one follows a deliberate enrollment or an expiry. Why not refuse a second
  key once one was used: a user whose laptop was reinstalled would have to ask an admin to end and
  remake the assignment; every peer is removed at the end anyway, and every issuance is audited.
- Each key is one-off (`usage_limit` 1) and short-lived (GPULAB_NETBIRD_SETUP_KEY_TTL_S, an hour by
  default, never past the assignment's end). Its peers are not ephemeral (a sleeping laptop would lose
  them); they join the assignment's own NetBird group (`gpulab-assignment-<id>`), by which they are
  found and deleted.
- When the assignment ends (revoke, expiry, node deleted, user disabled), the expiry sweep (and, right
  after a revoke, the revoke itself) deletes in NetBird every setup key naming that group, every peer
  in it, then the group, records it (`removed_at`) and emits `netbird_access_removed`. NetBird down:
  the next sweep tries again.
- Every issuance emits `netbird_key_issued` (identity audits it) in the transaction that stores the key.
- Views, replacements and the removal of one assignment are serialised by a transaction-scoped advisory
  lock, so two views at once mint one key, and a removal never runs beside a mint.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import outbox
from gpulab_core.contracts import scheduler as c
from gpulab_core.errors import Conflict
from gpulab_scheduler.access import repository
from gpulab_scheduler.access.base import AccessTarget, AccessUnavailable
from gpulab_scheduler.access.netbird import NetBird, group_name
from gpulab_scheduler.models import tables

log = logging.getLogger(__name__)
SOURCE = "scheduler"
# Ended assignments whose NetBird access one sweep removes; the rest wait for the next sweep.
REMOVALS_PER_SWEEP = 100


async def view(session: AsyncSession, netbird: NetBird, target: AccessTarget, user_id: uuid.UUID) -> c.Access:
    """The assignment's NetBird access: its stored key while NetBird says it is valid, else a new one."""
    await repository.lock(session, target.assignment_id)
    status = await repository.assignment_status(session, target.assignment_id)
    if status != "active":  # ended while this view waited for the lock
        raise Conflict(f"the assignment has {status}; there is nothing to reach", code=c.ASSIGNMENT_ENDED_ALREADY)
    row = await repository.get(session, target.assignment_id)
    replaced: str | None = None
    if row is not None and row.setup_key_id is not None:
        still_valid = row.setup_key_expires_at is None or row.setup_key_expires_at > datetime.now(UTC)
        if still_valid and await netbird.key_state(row.setup_key_id) == "valid":
            return c.Access(
                provider="netbird",
                setup_key=row.setup_key,
                management_url=netbird.management_url(),
                expires_at=row.setup_key_expires_at,
            )
        # Spent, expired, revoked or deleted: inert, but deleted so that NetBird holds one key per assignment.
        await netbird.delete_key(row.setup_key_id)
        replaced = row.setup_key_id
    group_id = row.group_id if row is not None else await netbird.create_group(group_name(target.assignment_id))
    issued = await netbird.create_key(target, group_id)
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "group_id": group_id,
        "setup_key_id": issued.id,
        "setup_key": issued.access.setup_key,
        "setup_key_expires_at": issued.access.expires_at,
        "issued_at": now,
    }
    await repository.put(session, target.assignment_id, values)
    event = c.NetbirdKeyIssued(
        assignment_id=target.assignment_id,
        user_id=user_id,
        user_email=target.user_email,
        node_hostname=target.node_hostname,
        setup_key_id=issued.id,
        setup_key_name=issued.name,
        netbird_group_id=group_id,
        expires_at=issued.access.expires_at,
        replaced_setup_key_id=replaced,
        actor_id=user_id,
    )
    await outbox.emit(session, tables.outbox, c.NETBIRD_KEY_ISSUED, event.model_dump(mode="json"), source=SOURCE)
    return issued.access


async def remove_ended(sessions: async_sessionmaker[AsyncSession], netbird: NetBird) -> int:
    """Remove the NetBird access of ended assignments; how many were removed. One transaction each: a
    NetBird failure leaves that one for the next sweep and goes on with the others."""
    async with sessions() as session:
        due = await repository.ended_not_removed(session, REMOVALS_PER_SWEEP)
    removed = 0
    for assignment_id in due:
        try:
            async with sessions() as session, session.begin():
                removed += await _remove(session, netbird, assignment_id)
        except AccessUnavailable as exc:
            log.warning("could not remove the NetBird access of ended assignment %s, retrying: %s", assignment_id, exc)
    return removed


async def _remove(session: AsyncSession, netbird: NetBird, assignment_id: uuid.UUID) -> int:
    await repository.lock(session, assignment_id)
    row = await repository.removal(session, assignment_id)
    if row is None:  # another replica did it meanwhile
        return 0
    gone = await netbird.remove_group(row.access.group_id)
    await repository.mark_removed(session, assignment_id, datetime.now(UTC))
    event = c.NetbirdAccessRemoved(
        assignment_id=assignment_id,
        user_id=row.user_id,
        user_email=row.user_email,
        netbird_group_id=row.access.group_id,
        setup_keys_removed=gone.setup_keys,
        peers_removed=gone.peers,
    )
    await outbox.emit(session, tables.outbox, c.NETBIRD_ACCESS_REMOVED, event.model_dump(mode="json"), source=SOURCE)
    return 1
