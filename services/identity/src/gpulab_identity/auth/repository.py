"""Every SQL statement about failed logins: recorded, counted per address and per (account, address), pruned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_identity.models import login_failures


def _from(client_net: str | None) -> ColumnElement[bool]:
    # An unknown address (a caller that sent none) is one address of its own, not "any address".
    column = login_failures.c.client_net
    return column.is_(None) if client_net is None else column == client_net


async def record_failure(session: AsyncSession, account: str, client_ip: str | None, client_net: str | None) -> None:
    await session.execute(login_failures.insert().values(account=account, client_ip=client_ip, client_net=client_net))


async def recent_failures(
    session: AsyncSession, *, client_net: str | None, account: str | None, since: datetime, limit: int
) -> Sequence[datetime]:
    """When the newest `limit` failures since `since` happened, from this address (and at this account,
    when one is given), newest first."""
    where = [_from(client_net), login_failures.c.at > since]
    if account is not None:
        where.append(login_failures.c.account == account)
    rows = await session.execute(
        select(login_failures.c.at).where(and_(*where)).order_by(login_failures.c.at.desc()).limit(limit)
    )
    return rows.scalars().all()


async def prune(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(login_failures).where(login_failures.c.at < before))
