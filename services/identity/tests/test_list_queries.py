"""Each list is one statement per page, however many items it holds: no query per item."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.identity import ListAuditRequest, ListUsersRequest
from gpulab_identity.audit import repository as audit_repo
from gpulab_identity.models import invites, ssh_keys
from gpulab_identity.ssh_keys import repository as keys_repo
from gpulab_identity.users import repository as users_repo

from .conftest import Identity, unique_email


@contextmanager
def counted(conn: Connection) -> Iterator[list[str]]:
    """The statements run on `conn` inside the block."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(conn, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(conn, "before_cursor_execute", record)


async def _user_with_invites_and_keys(session: AsyncSession, keys: int) -> uuid.UUID:
    user_id = await users_repo.insert(session, email=unique_email("listed"), role="user", status="invited")
    now = datetime.now(UTC)
    for age, state in ((2, "failed"), (1, "sent")):  # the newer one is what the listing shows
        await session.execute(
            invites.insert().values(
                id=uuid.uuid4(),
                user_id=user_id,
                token_hash=uuid.uuid4().bytes,
                expires_at=now + timedelta(days=1),
                created_at=now - timedelta(hours=age),
                delivery_state=state,
                delivery_updated_at=now - timedelta(hours=age),
            )
        )
    for n in range(keys):
        await session.execute(
            ssh_keys.insert().values(
                id=uuid.uuid4(),
                user_id=user_id,
                type="ssh-ed25519",
                fingerprint=f"SHA256:{uuid.uuid4().hex}{n}",
                comment="",
                public_key=f"ssh-ed25519 AAAA{n}",
            )
        )
    return user_id


async def test_user_pages_audit_pages_and_key_lists_are_one_statement_each(identity: Identity) -> None:
    assert identity.runtime.sessions is not None
    # Made and listed in one transaction that is rolled back: nothing stays for other tests.
    async with identity.runtime.sessions() as session:
        made = {await _user_with_invites_and_keys(session, keys=n % 3): n % 3 for n in range(6)}
        conn = (await session.connection()).sync_connection
        assert conn is not None

        seen: dict[uuid.UUID, Any] = {}
        cursor: str | None = None
        pages = 0
        with counted(conn) as statements:
            while True:
                items, cursor = await users_repo.list_page(session, ListUsersRequest(limit=4, cursor=cursor))
                pages += 1
                seen.update({u.id: u for u in items})
                if cursor is None:
                    break
        assert len(statements) == pages
        for user_id, key_count in made.items():
            assert seen[user_id].has_ssh_key is (key_count > 0)
            assert seen[user_id].invite_delivery is not None
            assert seen[user_id].invite_delivery.state == "sent"

        with counted(conn) as statements:
            entries, _ = await audit_repo.list_entries(session, ListAuditRequest(limit=20))
        assert len(statements) == 1
        assert entries

        some = next(u for u, n in made.items() if n == 2)
        with counted(conn) as statements:
            listed = await keys_repo.list_for(session, some)
        assert (len(statements), len(listed)) == (1, 2)
