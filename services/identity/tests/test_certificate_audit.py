"""pki's certificate events (a node enrolled, renewed, its certificates revoked) reach the audit log with
the node's address and the reason, once each, through identity's certificate-audit consumer."""

from __future__ import annotations

import uuid
from datetime import timedelta

from gpulab_core.contracts import pki

from .conftest import Identity
from .test_node_audit import OCCURRED, chain_intact, event, publish, recorded

SERIAL_1 = "1" * 40
SERIAL_2 = "2" * 40
NOT_AFTER = OCCURRED + timedelta(days=7)


async def test_enrollment_renewal_and_revocation_are_audited_with_the_nodes_address_and_the_reason(
    identity: Identity,
) -> None:
    node_id = uuid.uuid4()
    enrolled = pki.NodeEnrolled(node_id=node_id, serial=SERIAL_1, not_after=NOT_AFTER, address="203.0.113.7")
    renewed = pki.CertificateRenewed(
        node_id=node_id, serial=SERIAL_2, previous_serial=SERIAL_1, not_after=NOT_AFTER, address="2001:db8::7"
    )
    revoked = pki.CertificatesRevoked(
        node_id=node_id, serials=[SERIAL_1, SERIAL_2], actor_id=identity.admin_id, reason="new_token"
    )
    await publish(identity, event(pki.NODE_ENROLLED, enrolled.model_dump(mode="json")))
    await publish(
        identity, event(pki.CERTIFICATE_RENEWED, renewed.model_dump(mode="json"), occurred_at=OCCURRED + timedelta(1))
    )
    await publish(
        identity,
        event(pki.CERTIFICATES_REVOKED, revoked.model_dump(mode="json"), occurred_at=OCCURRED + timedelta(2)),
    )

    rows = await recorded(identity, node_id, 3)
    assert [r["action"] for r in rows] == ["node.certificates_revoked", "node.certificate_renewed", "node.enrolled"]
    gone, renewal, enrollment = rows
    assert enrollment["details"] == {"serial": SERIAL_1, "not_after": NOT_AFTER.isoformat(), "address": "203.0.113.7"}
    assert renewal["details"] == {
        "serial": SERIAL_2,
        "previous_serial": SERIAL_1,
        "not_after": NOT_AFTER.isoformat(),
        "address": "2001:db8::7",
    }
    assert gone["details"] == {"serials": [SERIAL_1, SERIAL_2], "reason": "new_token"}
    # The node acted for itself (its token, its certificate); the admin made the new token.
    assert (enrollment["actor_id"], renewal["actor_id"]) == (None, None)
    assert (gone["actor_id"], gone["actor_email"]) == (str(identity.admin_id), identity.admin_email)
    assert await chain_intact(identity)


async def test_an_enrollment_event_from_before_addresses_were_recorded_is_audited_without_one(
    identity: Identity,
) -> None:
    node_id = uuid.uuid4()
    old = {"node_id": str(node_id), "serial": SERIAL_1, "not_after": NOT_AFTER.isoformat()}
    await publish(identity, event(pki.NODE_ENROLLED, old))
    (row,) = await recorded(identity, node_id, 1)
    assert row["details"] == {"serial": SERIAL_1, "not_after": NOT_AFTER.isoformat(), "address": None}
