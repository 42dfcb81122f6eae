"""Quotas: set and read them, and the one check every request, grant and extension goes through
(`enforce`, under the subjects' advisory locks so that two concurrent requests cannot both take the
last GPU a quota allows). Never commits: the NATS edge owns the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import selfservice as c
from gpulab_core.errors import Conflict, InvalidRequest
from gpulab_scheduler.models import tables
from gpulab_scheduler.quotas import repository
from gpulab_scheduler.quotas.repository import NO_LIMITS, NO_USE, Limits, Subject, Use
from gpulab_scheduler.quotas.rules import Ask, booked_hours, month_bounds, refusal

SOURCE = "scheduler"


def _contract(subject: Subject, limits: Limits, use: Use) -> c.Quota:
    return c.Quota(
        subject_type=subject[0],
        subject_id=subject[1],
        max_gpus=limits.max_gpus,
        max_hours=limits.max_hours,
        gpu_hours_per_month=limits.gpu_hours_per_month,
        used=c.QuotaUse(gpus_now=use.gpus_now, gpu_hours_this_month=round(use.gpu_hours_month, 4)),
    )


async def _quotas(session: AsyncSession, subjects: list[Subject], limits: dict[Subject, Limits]) -> list[c.Quota]:
    now = datetime.now(UTC)
    start, end = month_bounds(now)
    used = await repository.use(session, subjects, start, end, now)
    return [_contract(s, limits.get(s, NO_LIMITS), used.get(s, NO_USE)) for s in subjects]


async def set_quota(session: AsyncSession, req: c.SetQuotaRequest) -> c.Quota:
    subject: Subject = (req.subject_type, req.subject_id)
    limits = Limits(req.max_gpus, req.max_hours, req.gpu_hours_per_month)
    await repository.put(session, subject, limits, req.actor_id)
    event = c.QuotaSet(
        subject_type=req.subject_type,
        subject_id=req.subject_id,
        max_gpus=req.max_gpus,
        max_hours=req.max_hours,
        gpu_hours_per_month=req.gpu_hours_per_month,
        actor_id=req.actor_id,
    )
    await outbox.emit(session, tables.outbox, c.QUOTA_SET, event.model_dump(mode="json"), source=SOURCE)
    (quota,) = await _quotas(session, [subject], {subject: limits})
    return quota


async def list_quotas(session: AsyncSession, _req: c.ListQuotasRequest) -> c.QuotaList:
    limits = await repository.all_limits(session)
    return c.QuotaList(items=await _quotas(session, list(limits), limits))


async def mine(session: AsyncSession, req: c.MyQuotaRequest) -> c.MyQuota:
    subjects: list[Subject] = [("user", req.user_id), *(("group", g) for g in dict.fromkeys(req.group_ids))]
    user, *groups = await _quotas(session, subjects, await repository.limits(session, subjects))
    return c.MyQuota(user=user, groups=groups)


async def enforce(
    session: AsyncSession,
    user_id: uuid.UUID,
    group_id: uuid.UUID | None,
    *,
    gpus: int,
    hours: int,
    booked_gpu_hours: float,
    count_open: bool,
    group_name: str | None = None,
) -> None:
    """Refuses (409 quota_exceeded, 422 too_long) unless the user's quota and the group's allow it.
    Takes the subjects' advisory locks first: the caller takes what it checked in this transaction."""
    subjects: list[Subject] = [("user", user_id)] + ([("group", group_id)] if group_id else [])
    await repository.lock(session, subjects)
    limits = await repository.limits(session, subjects)
    if not limits:
        return  # no quota: no limit
    now = datetime.now(UTC)
    start, end = month_bounds(now)
    used = await repository.use(session, list(limits), start, end, now)
    ask = Ask(gpus=gpus, gpu_hours=booked_gpu_hours, hours=hours)
    for subject, limit in limits.items():
        whose = "your" if subject[0] == "user" else f"group {group_name or subject[1]}'s"
        why = refusal(whose, limit, used.get(subject, NO_USE), ask, count_open=count_open)
        if why is None:
            continue
        details = {"limit": why.limit, "left": why.left, "subject_type": subject[0], "subject_id": str(subject[1])}
        if why.limit == "max_hours":
            raise InvalidRequest(why.sentence, code=c.TOO_LONG, details={"field": "hours", **details})
        raise Conflict(why.sentence, code=c.QUOTA_EXCEEDED, details=details)


async def enforce_request(
    session: AsyncSession,
    user_id: uuid.UUID,
    group_id: uuid.UUID | None,
    *,
    gpus: int,
    hours: int,
    count_open: bool,
    group_name: str | None = None,
) -> None:
    """`enforce` for a request of `gpus` for `hours` starting now (its GPU-hours within the month)."""
    now = datetime.now(UTC)
    _start, month_end = month_bounds(now)
    await enforce(
        session,
        user_id,
        group_id,
        gpus=gpus,
        hours=hours,
        booked_gpu_hours=gpus * booked_hours(hours, now, month_end),
        count_open=count_open,
        group_name=group_name,
    )


async def over_quota(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """For an admin's assignment, made (and counted) already: the sentence the audit log keeps when the
    user's quota is now exceeded, else None. Admins may exceed quotas; they are not refused."""
    subject: Subject = ("user", user_id)
    limit = (await repository.limits(session, [subject])).get(subject)
    if limit is None:
        return None
    now = datetime.now(UTC)
    start, end = month_bounds(now)
    use = (await repository.use(session, [subject], start, end, now)).get(subject, NO_USE)
    over = []
    if limit.max_gpus is not None and use.gpus_now > limit.max_gpus:
        over.append(f"{use.gpus_now} GPUs held, quota {limit.max_gpus}")
    if limit.gpu_hours_per_month is not None and use.gpu_hours_month > limit.gpu_hours_per_month:
        over.append(f"{use.gpu_hours_month:.1f} GPU-hours this month, quota {limit.gpu_hours_per_month}")
    return "over the user's quota: " + "; ".join(over) if over else None
