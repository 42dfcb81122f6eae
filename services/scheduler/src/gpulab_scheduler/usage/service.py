"""`usage.report`: GPU-hours over a time range (docs/adr/0020)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts import usage as contract
from gpulab_scheduler.usage import repository


async def report(session: AsyncSession, req: contract.UsageReportRequest) -> contract.UsageReport:
    """Nothing is counted ahead of now: an `until` later than now is now (the reply says which), and
    running assignments count up to it."""
    now = datetime.now(UTC)
    until = max(req.since, min(req.until, now))
    rows = (
        [] if until <= req.since else await repository.report(session, req.since, until, now, req.group_by, req.user_id)
    )
    items = [
        contract.UsageRow(key_id=r.key_id, key_name=r.key_name, gpu_seconds=r.gpu_seconds, assignments=r.assignments)
        for r in rows
    ]
    return contract.UsageReport(since=req.since, until=until, items=items)
