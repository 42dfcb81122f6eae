"""The scheduler's SQL about groups: whether anything open is charged to one (its requests and
assignments carry `group_id`; identity keeps the groups themselves)."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import assignments, requests

OPEN_REQUEST_STATUSES = ("pending_approval", "queued")


async def is_charged(session: AsyncSession, group_id: uuid.UUID) -> bool:
    """True while an open request (pending approval or queued) or an active assignment names the group."""
    open_request = exists().where(requests.c.group_id == group_id, requests.c.status.in_(OPEN_REQUEST_STATUSES))
    active = exists().where(assignments.c.group_id == group_id, assignments.c.status == "active")
    return bool(await session.scalar(select(or_(open_request, active))))
