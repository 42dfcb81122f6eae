"""The user facts an assignment needs (email, status, SSH keys), read from the scheduler's own copy and
asked of identity only when that copy cannot answer.

The copy is kept from identity's events (projections.py: identity.user_status_changed,
identity.ssh_keys_changed) and from identity's answers. It answers on its own only when it knows an
active user with keys: anything else (a user never seen, one without keys, invited or disabled) is
asked of identity, so a key added a moment ago or a user just enabled is never refused on a stale
copy. What a stale "active" copy could let through, an assignment made while its user is being
disabled, is closed inside the placement's transaction (`confirm_active`): the assignment holds the
user's row FOR SHARE, and the status change that disables the user updates that row and then ends
the user's assignments, so it either waits for the assignment and ends it, or commits first and the
assignment is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core.errors import Conflict
from gpulab_scheduler.identity_client import AuthorizedKeys, IdentityClient, UserFacts
from gpulab_scheduler.users import repository


@dataclass(frozen=True)
class Assignee:
    user: UserFacts
    keys: AuthorizedKeys


@dataclass
class UserDirectory:
    sessions: async_sessionmaker[AsyncSession]
    identity: IdentityClient

    @staticmethod
    async def known(session: AsyncSession, user_id: uuid.UUID) -> Assignee | None:
        """From the copy alone, in the caller's transaction (the queue's grants, which hold a lock and
        must not wait for another connection): the user if the copy knows them active with keys."""
        known = await repository.get(session, user_id)
        if known is None or known.status != "active" or not known.email or not known.public_keys:
            return None
        return Assignee(
            UserFacts(id=user_id, email=known.email, status="active", has_ssh_key=True),
            AuthorizedKeys(public_keys=list(known.public_keys), version=known.keys_version),
        )

    async def assignee(self, user_id: uuid.UUID) -> Assignee | None:
        """The user and their keys; None when identity knows no such user."""
        async with self.sessions() as session:
            found = await self.known(session, user_id)
        if found is not None:
            return found
        asked_at = datetime.now(UTC)
        user = await self.identity.user(user_id)
        if user is None:
            return None
        keys = await self.identity.authorized_keys(user_id)
        async with self.sessions() as session, session.begin():
            # identity's answer is at least as new as any event sent before it was asked
            await repository.set_status(session, user_id, user.email, user.status, asked_at)
            await repository.set_keys(session, user_id, keys.public_keys, keys.version)
        return Assignee(user, keys)


async def confirm_active(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Inside the assignment's transaction: the user is not known to be anything but active, under the
    row's share lock (see the module's docstring)."""
    facts = await repository.get(session, user_id, share_lock=True)
    if facts is not None and facts.status not in (None, "active"):
        raise Conflict(f"the user is {facts.status}, not active")
