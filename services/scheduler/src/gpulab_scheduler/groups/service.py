"""Groups as the scheduler sees them: may a group be deleted? (The gateway asks before it lets
identity delete one; API.md: `DELETE /groups/{id}` answers 409 `group_in_use` while it is charged.)"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts.groups import GroupCharged, GroupChargedRequest
from gpulab_scheduler.groups import repository as repo


async def charged(session: AsyncSession, req: GroupChargedRequest) -> GroupCharged:
    return GroupCharged(charged=await repo.is_charged(session, req.group_id))
