"""Every SQL statement on quotas and on what counts against them: the limits of users and groups,
the GPUs their active assignments hold, their GPU-hours of a month, and what their open requests
ask for. One statement each, whatever the number of subjects. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_scheduler.models import assignment_gpus, assignments, quotas, requests

Subject = tuple[str, uuid.UUID]  # ("user" | "group", id)
OPEN = ("pending_approval", "queued")


@dataclass(frozen=True, slots=True)
class Limits:
    max_gpus: int | None
    max_hours: int | None
    gpu_hours_per_month: int | None


NO_LIMITS = Limits(None, None, None)


@dataclass(frozen=True, slots=True)
class Use:
    """What counts against a subject's quota now."""

    gpus_now: int  # held by active assignments
    gpu_hours_month: float  # this month so far, plus booked until expiry within the month
    open_gpus: int = 0  # asked for by open `new` requests (pending approval or queued)
    open_gpu_hours: float = 0.0  # GPU-hours those and open extensions would use this month


NO_USE = Use(0, 0.0)


async def limits(session: AsyncSession, subjects: Sequence[Subject]) -> dict[Subject, Limits]:
    """The quotas set on the subjects; a subject without a row is not in the answer."""
    if not subjects:
        return {}
    query = select(quotas).where(
        or_(*(and_(quotas.c.subject_type == kind, quotas.c.subject_id == sid) for kind, sid in set(subjects)))
    )
    return {
        (r.subject_type, r.subject_id): Limits(r.max_gpus, r.max_hours, r.gpu_hours_per_month)
        for r in await session.execute(query)
    }


async def all_limits(session: AsyncSession) -> dict[Subject, Limits]:
    query = select(quotas).order_by(quotas.c.subject_type, quotas.c.subject_id)
    return {
        (r.subject_type, r.subject_id): Limits(r.max_gpus, r.max_hours, r.gpu_hours_per_month)
        for r in await session.execute(query)
    }


async def put(session: AsyncSession, subject: Subject, value: Limits, actor_id: uuid.UUID) -> None:
    row = {
        "subject_type": subject[0],
        "subject_id": subject[1],
        "max_gpus": value.max_gpus,
        "max_hours": value.max_hours,
        "gpu_hours_per_month": value.gpu_hours_per_month,
        "updated_by": actor_id,
        "updated_at": func.now(),
    }
    upsert = insert(quotas).values(**row)
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=[quotas.c.subject_type, quotas.c.subject_id],
            set_={k: upsert.excluded[k] for k in row if k not in ("subject_type", "subject_id")},
        )
    )


async def lock(session: AsyncSession, subjects: Sequence[Subject]) -> None:
    """Serialises, until the transaction ends, every check-and-take on these subjects' quotas (a
    transaction-scoped advisory lock per subject, taken in one order so that two never deadlock)."""
    for kind, sid in sorted(set(subjects), key=lambda s: (s[0], str(s[1]))):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 7))"), {"key": f"{kind}:{sid}"})


def _subject_column(kind: str) -> ColumnElement[uuid.UUID]:
    return assignments.c.user_id if kind == "user" else assignments.c.group_id


async def use(
    session: AsyncSession, subjects: Sequence[Subject], month_start: datetime, month_end: datetime, now: datetime
) -> dict[Subject, Use]:
    """What counts against each subject's quota: two statements for the assignments (one per kind of
    subject) and two for the open requests, whatever the number of subjects."""
    found: dict[Subject, Use] = {}
    for kind in ("user", "group"):
        ids = [sid for k, sid in subjects if k == kind]
        if not ids:
            continue
        held = await _assignment_use(session, kind, ids, month_start, month_end, now)
        asked = await _open_use(session, kind, ids, month_end, now)
        for sid in ids:
            gpus_now, hours = held.get(sid, (0, 0.0))
            open_gpus, open_hours = asked.get(sid, (0, 0.0))
            found[(kind, sid)] = Use(gpus_now, hours, open_gpus, open_hours)
    return found


async def _assignment_use(
    session: AsyncSession, kind: str, ids: list[uuid.UUID], month_start: datetime, month_end: datetime, now: datetime
) -> dict[uuid.UUID, tuple[int, float]]:
    """(GPUs held now, GPU-hours this month) per subject. An assignment counts from its start (or the
    month's) to its end: the time it ended, else its expiry (booked), else now; never past the month."""
    key = _subject_column(kind)
    gpus = (
        select(func.count())
        .select_from(assignment_gpus)
        .where(assignment_gpus.c.assignment_id == assignments.c.id)
        .scalar_subquery()
    )
    end = func.least(func.coalesce(assignments.c.ended_at, assignments.c.expires_at, literal(now)), literal(month_end))
    start = func.greatest(assignments.c.created_at, literal(month_start))
    seconds = cast(func.greatest(func.extract("epoch", end - start), 0), Float)
    active_gpus = func.sum(case((assignments.c.status == "active", gpus), else_=0))
    query = (
        select(key.label("key"), active_gpus.label("gpus_now"), func.sum(seconds * gpus).label("gpu_seconds"))
        .where(
            key.in_(ids),
            or_(assignments.c.status == "active", assignments.c.ended_at > literal(month_start)),
        )
        .group_by(key)
    )
    return {r.key: (int(r.gpus_now or 0), float(r.gpu_seconds or 0.0) / 3600) for r in await session.execute(query)}


async def _open_use(
    session: AsyncSession, kind: str, ids: list[uuid.UUID], month_end: datetime, now: datetime
) -> dict[uuid.UUID, tuple[int, float]]:
    """(GPUs, GPU-hours within the month) that open requests ask for, per subject: a request is counted
    as if it started now."""
    key = requests.c.user_id if kind == "user" else requests.c.group_id
    until_month_end = func.extract("epoch", literal(month_end) - literal(now)) / 3600
    hours = func.least(cast(requests.c.hours, Float), until_month_end)
    new_gpus = func.sum(case((requests.c.kind == "new", requests.c.gpus), else_=0))
    query = (
        select(key.label("key"), new_gpus.label("gpus"), func.sum(hours * requests.c.gpus).label("gpu_hours"))
        .where(key.in_(ids), requests.c.status.in_(OPEN))
        .group_by(key)
    )
    return {r.key: (int(r.gpus or 0), float(r.gpu_hours or 0.0)) for r in await session.execute(query)}
