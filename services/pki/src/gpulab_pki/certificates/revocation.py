"""Ending every certificate of a node at once. Never commits; the caller holds the node's lock
(tokens.lock_node), so that no certificate can be issued to the node while this runs.

A node's certificates end when the node is deleted, when the admin makes a new enrollment token for
it (a new token means the node needs a new identity: the one it has may be lost or stolen), and when
it enrolls again (issue 12, finding 4). inventory follows the event and refuses the serials on the
heartbeat port; the agent that is refused there takes away the access it manages and stops.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import pki as c
from gpulab_pki.certificates import repository as repo
from gpulab_pki.models import tables

SOURCE = "pki"


async def revoke_all(
    session: AsyncSession, node_id: uuid.UUID, actor_id: uuid.UUID | None, reason: c.RevocationReason
) -> list[str]:
    """Revokes the node's certificates that are not revoked yet and announces them; their serials."""
    serials = await repo.revoke_node(session, node_id)
    if serials:
        event = c.CertificatesRevoked(node_id=node_id, serials=serials, actor_id=actor_id, reason=reason)
        await outbox.emit(session, tables.outbox, c.CERTIFICATES_REVOKED, event.model_dump(mode="json"), source=SOURCE)
    return serials
