"""The pki service's RPC contract (subjects `gpulab.rpc.pki.<operation>`) and its events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from gpulab_core.contracts.common import Contract
from gpulab_core.contracts.events import EventPayload

SERVICE = "pki"


class Empty(Contract):
    pass


class CaInfo(Contract):
    certificate_pem: str
    sha256_fingerprint: str  # 64 lowercase hex digits over the DER certificate


class IssueTokenRequest(Contract):
    """Mint a one-time enrollment token for a node; any earlier unused token of that node stops working."""

    node_id: uuid.UUID
    actor_id: uuid.UUID | None = None


class EnrollmentToken(Contract):
    token: str  # shown to the admin once; pki keeps only its hash
    expires_at: datetime


class NodeRequest(Contract):
    node_id: uuid.UUID
    actor_id: uuid.UUID | None = None


class RevokedReply(Contract):
    revoked_serials: list[str]  # 40 lowercase hex digits each


class SignServerRequest(Contract):
    """A certificate for a gRPC listener (inventory's heartbeat port), signed by the internal CA."""

    csr_pem: str = Field(max_length=16 * 1024)
    dns_names: list[str] = Field(default_factory=list, max_length=20)
    ip_addresses: list[str] = Field(default_factory=list, max_length=20)


class SignedCertificate(Contract):
    certificate_pem: str
    ca_certificate_pem: str
    not_after: datetime


class RevokedSerials(Contract):
    serials: list[str]


# Events (type → payload), on GPULAB_EVENTS.
NODE_ENROLLED = "pki.node_enrolled"
CERTIFICATE_RENEWED = "pki.certificate_renewed"
CERTIFICATES_REVOKED = "pki.certificates_revoked"
ENROLLMENT_TOKEN_ISSUED = "pki.enrollment_token_issued"


# Why a node's certificates were revoked: the node was deleted, the admin made a new enrollment token
# for it, or it enrolled again (with a token made before new tokens revoked).
RevocationReason = Literal["node_deleted", "new_token", "reenrolled"]


class NodeEnrolled(EventPayload):
    node_id: uuid.UUID
    serial: str
    not_after: datetime
    # The address the node enrolled from, as the enrollment port saw it ("" when unknown: a call that
    # did not come through the TLS front). None in events from before it was recorded.
    address: str | None = None


class CertificateRenewed(EventPayload):
    node_id: uuid.UUID
    serial: str
    previous_serial: str
    not_after: datetime
    address: str | None = None  # as in NodeEnrolled


class CertificatesRevoked(EventPayload):
    node_id: uuid.UUID
    serials: list[str]
    actor_id: uuid.UUID | None = None
    # None in events from before it was recorded, and from a newer producer with a reason this one
    # does not know (EventPayload ignores, rather than refuses, what it does not know).
    reason: str | None = None


class EnrollmentTokenIssued(EventPayload):
    node_id: uuid.UUID
    expires_at: datetime
    actor_id: uuid.UUID | None = None


# Error codes.
INVALID_CSR = "invalid_csr"
CA_UNAVAILABLE = "ca_unavailable"
