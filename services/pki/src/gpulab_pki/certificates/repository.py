"""Every SQL statement about issued certificates (nodes' and listeners')."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from cryptography import x509
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_pki.ca import serial_hex
from gpulab_pki.models import certificates as certs
from gpulab_pki.models import server_certificates

Kind = Literal["enrollment", "renewal"]


async def insert(
    session: AsyncSession, cert: x509.Certificate, node_id: uuid.UUID, kind: Kind, previous_serial: str | None = None
) -> str:
    serial = serial_hex(cert)
    await session.execute(
        certs.insert().values(
            serial=serial,
            node_id=node_id,
            kind=kind,
            previous_serial=previous_serial,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )
    )
    return serial


async def get_for_update(session: AsyncSession, serial: str) -> Row[Any, Any] | None:
    return (
        await session.execute(
            select(certs.c.node_id, certs.c.revoked_at).where(certs.c.serial == serial).with_for_update()
        )
    ).first()


async def revoke_node(session: AsyncSession, node_id: uuid.UUID) -> list[str]:
    result = await session.execute(
        update(certs)
        .where(certs.c.node_id == node_id, certs.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(certs.c.serial)
    )
    return sorted(result.scalars().all())


async def revoked_unexpired(session: AsyncSession) -> list[str]:
    """Expired certificates need no list: TLS refuses them on its own."""
    rows = await session.execute(
        select(certs.c.serial)
        .where(certs.c.revoked_at.is_not(None), certs.c.not_after > func.now())
        .order_by(certs.c.serial)
    )
    return list(rows.scalars().all())


async def record_server(
    session: AsyncSession,
    cert: x509.Certificate,
    purpose: Literal["enrollment", "signed"],
    dns_names: list[str],
    ip_addresses: list[str],
) -> None:
    await session.execute(
        server_certificates.insert().values(
            serial=serial_hex(cert),
            purpose=purpose,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            not_after=cert.not_valid_after_utc,
        )
    )
