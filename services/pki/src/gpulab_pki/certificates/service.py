"""Node certificates: enroll, renew, revoke; and listener certificates. Never commits.

Every check on a CSR runs before the token is touched, so a bad CSR never uses up a token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import pki as c
from gpulab_core.errors import InvalidRequest
from gpulab_pki.ca import (
    Authority,
    certificate_pem,
    issue_client_cert,
    issue_server_cert_for_key,
    renewal_window_open,
    serial_hex,
    validate_node_csr,
)
from gpulab_pki.ca.issue import RENEWAL_SHARE
from gpulab_pki.certificates import repository as repo
from gpulab_pki.certificates import revocation
from gpulab_pki.errors import CertificateRefused, KeyReused, RenewalTooEarly
from gpulab_pki.models import tables
from gpulab_pki.tokens import service as tokens

SOURCE = revocation.SOURCE


@dataclass(frozen=True)
class Issued:
    node_id: uuid.UUID
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return certificate_pem(self.cert).decode()


async def enroll(
    session: AsyncSession, ca: Authority, token: str, csr_pem: str, lifetime: timedelta, address: str
) -> Issued:
    """A certificate for the token's node. Its earlier certificates end in the same transaction: an
    enrollment is a new identity, and the old one may be in someone else's hands."""
    csr = validate_node_csr(csr_pem)  # first: a bad CSR must not use up the token
    node_id = await tokens.consume(session, token)  # takes the node's lock
    await revocation.revoke_all(session, node_id, None, "reenrolled")
    cert = issue_client_cert(ca.key, ca.cert, csr, node_id, lifetime)
    serial = await repo.insert(session, cert, node_id, "enrollment")
    event = c.NodeEnrolled(node_id=node_id, serial=serial, not_after=cert.not_valid_after_utc, address=address)
    await outbox.emit(session, tables.outbox, c.NODE_ENROLLED, event.model_dump(mode="json"), source=SOURCE)
    return Issued(node_id, cert)


def presented_node(ca: Authority, der: bytes | None, now: datetime) -> tuple[uuid.UUID, x509.Certificate]:
    """The node a presented client certificate speaks for, after the checks that need no database.
    TLS has already verified the chain; these checks do not rely on that."""
    if not der:
        raise CertificateRefused("no client certificate was presented")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise CertificateRefused("the client certificate cannot be parsed") from None
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateRefused("the client certificate was not issued by this CA") from None
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise CertificateRefused("the client certificate is not valid now")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        node_id = uuid.UUID(str(names[0].value))
    except (IndexError, ValueError):
        raise CertificateRefused("the client certificate does not name a node") from None
    return node_id, cert


async def renew(
    session: AsyncSession,
    ca: Authority,
    presented_der: bytes | None,
    csr_pem: str,
    lifetime: timedelta,
    address: str,
) -> Issued:
    now = datetime.now(UTC)
    node_id, current = presented_node(ca, presented_der, now)
    previous = serial_hex(current)
    await tokens.lock_node(session, node_id)  # a revocation running now waits for this renewal, then sees it
    row = await repo.get_for_update(session, previous)
    if row is None or row.node_id != node_id:
        raise CertificateRefused("the client certificate is not one this CA issued to a node")
    if row.revoked_at is not None:
        raise CertificateRefused("the client certificate has been revoked")
    if not renewal_window_open(current, now):
        raise RenewalTooEarly(_window_opens(current))
    csr = validate_node_csr(csr_pem)
    if csr.public_key == current.public_key():
        raise KeyReused()
    cert = issue_client_cert(ca.key, ca.cert, csr, node_id, lifetime)
    serial = await repo.insert(session, cert, node_id, "renewal", previous_serial=previous)
    event = c.CertificateRenewed(
        node_id=node_id, serial=serial, previous_serial=previous, not_after=cert.not_valid_after_utc, address=address
    )
    await outbox.emit(session, tables.outbox, c.CERTIFICATE_RENEWED, event.model_dump(mode="json"), source=SOURCE)
    return Issued(node_id, cert)


def _window_opens(cert: x509.Certificate) -> datetime:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    numerator, denominator = RENEWAL_SHARE
    return start + (end - start) * numerator / denominator


async def revoke_node(session: AsyncSession, req: c.NodeRequest) -> c.RevokedReply:
    await tokens.lock_node(session, req.node_id)
    await tokens.revoke(session, req.node_id)
    serials = await revocation.revoke_all(session, req.node_id, req.actor_id, "node_deleted")
    return c.RevokedReply(revoked_serials=serials)


async def revoked(session: AsyncSession) -> c.RevokedSerials:
    return c.RevokedSerials(serials=await repo.revoked_unexpired(session))


async def sign_server(session: AsyncSession, ca: Authority, req: c.SignServerRequest) -> c.SignedCertificate:
    """A listener's certificate for its own key (inventory's heartbeat port): serverAuth, these SANs only."""
    csr = validate_node_csr(req.csr_pem)
    try:
        cert = issue_server_cert_for_key(ca.key, ca.cert, csr.public_key, req.dns_names, req.ip_addresses)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    await repo.record_server(session, cert, "signed", req.dns_names, req.ip_addresses)
    return c.SignedCertificate(
        certificate_pem=certificate_pem(cert).decode(),
        ca_certificate_pem=ca.cert_pem.decode(),
        not_after=cert.not_valid_after_utc,
    )
