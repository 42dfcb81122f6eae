"""The first admin: from settings at start, or from the command line (`gpulab admin create`)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core.errors import Conflict
from gpulab_identity.audit import repository as audit
from gpulab_identity.passwords import Passwords, check_rules
from gpulab_identity.users import repository as users_repo

log = logging.getLogger(__name__)


async def ensure_admin(
    sessions: async_sessionmaker[AsyncSession],
    passwords: Passwords,
    email: str,
    password: str,
    *,
    only_if_none: bool = True,
    name: str = "Administrator",
) -> bool:
    """Create an active admin. With `only_if_none`, do nothing when an admin exists; returns whether one was made."""
    normalised = check_rules(password)
    email = email.strip()
    if "@" not in email:
        raise Conflict(f"not an email address: {email!r}")
    password_hash = await passwords.hash(normalised)
    async with sessions() as session, session.begin():
        # Two replicas starting at once must not both create "the first" admin.
        await users_repo.lock_bootstrap(session)
        if only_if_none and await users_repo.admin_exists(session):
            return False
        if await users_repo.get_by_email_for_update(session, email) is not None:
            raise Conflict(f"{email} already has an account")
        user_id = await users_repo.insert(
            session, email=email, role="admin", status="active", name=name, password_hash=password_hash
        )
        await audit.append(
            session,
            action="user.admin_bootstrapped",
            target_type="user",
            target_id=str(user_id),
            details={"email": email},
        )
    log.info("created the admin %s", email)
    return True
