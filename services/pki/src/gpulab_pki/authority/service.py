"""The CA's life: load it from the database, or create it on the very first start."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_pki.authority import repository as repo
from gpulab_pki.ca import Authority, create_root, encrypt_key, load_authority

log = logging.getLogger(__name__)


async def load_or_create(sessions: async_sessionmaker[AsyncSession], passphrase: bytes) -> Authority:
    """The stored CA, decrypted with `passphrase`; raises CaKeyError when it cannot be (wrong passphrase...)."""
    async with sessions() as session, session.begin():
        row = await repo.get(session)
        if row is None:
            await repo.lock_for_create(session)
            # Re-read under the lock: a replica that started at the same time may have created it.
            row = await repo.get(session)
        if row is None:
            key, cert = create_root()
            authority = Authority(key=key, cert=cert)
            await repo.insert(
                session,
                key_pem=encrypt_key(key, passphrase).decode(),
                certificate_pem=authority.cert_pem.decode(),
                fingerprint=authority.fingerprint,
            )
            log.info("created the CA", extra={"sha256_fingerprint": authority.fingerprint})
            return authority
    return load_authority(row.certificate_pem.encode(), row.key_pem.encode(), passphrase)
