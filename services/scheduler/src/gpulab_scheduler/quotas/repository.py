"""Every SQL statement on quotas and on what counts against them: the limits of users and groups,
the GPUs their active assignments hold, their GPU-hours of a month, and what their open requests
ask for. One statement each, whatever the number of subjects. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    DateTime,
    Float,
    Select,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    text,
)
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


# Built once: a statement built per call costs more CPU than the database spends on it (profiled on
# the self-service path, bench/requests.py). Subject ids are UUIDs: a user's never equals a group's.
_LIMITS = select(quotas).where(quotas.c.subject_id.in_(bindparam("ids", expanding=True)))


async def limits(session: AsyncSession, subjects: Sequence[Subject]) -> dict[Subject, Limits]:
    """The quotas set on the subjects; a subject without a row is not in the answer."""
    if not subjects:
        return {}
    wanted = set(subjects)
    rows = await session.execute(_LIMITS, {"ids": [sid for _kind, sid in wanted]})
    return {
        (r.subject_type, r.subject_id): Limits(r.max_gpus, r.max_hours, r.gpu_hours_per_month)
        for r in rows
        if (r.subject_type, r.subject_id) in wanted
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


def _assignment_use_query(key: ColumnElement[uuid.UUID]) -> Select[uuid.UUID, Any, Any]:
    """(GPUs held now, GPU-seconds this month) per subject. An assignment counts from its start (or
    the month's) to its end: the time it ended, else its expiry (booked), else now; never past the
    month's end."""
    month_start: BindParameter[datetime] = bindparam("month_start", type_=DateTime(timezone=True))
    month_end: BindParameter[datetime] = bindparam("month_end", type_=DateTime(timezone=True))
    now: BindParameter[datetime] = bindparam("now", type_=DateTime(timezone=True))
    gpus = (
        select(func.count())
        .select_from(assignment_gpus)
        .where(assignment_gpus.c.assignment_id == assignments.c.id)
        .scalar_subquery()
    )
    end = func.least(func.coalesce(assignments.c.ended_at, assignments.c.expires_at, now), month_end)
    start = func.greatest(assignments.c.created_at, month_start)
    seconds = cast(func.greatest(func.extract("epoch", end - start), 0), Float)
    active_gpus = func.sum(case((assignments.c.status == "active", gpus), else_=0))
    return (
        select(key.label("key"), active_gpus.label("gpus_now"), func.sum(seconds * gpus).label("gpu_seconds"))
        .where(
            key.in_(bindparam("ids", expanding=True)),
            or_(assignments.c.status == "active", assignments.c.ended_at > month_start),
        )
        .group_by(key)
    )


def _open_use_query(key: ColumnElement[uuid.UUID]) -> Select[uuid.UUID, Any, Any]:
    """(GPUs, GPU-hours within the month) that open requests ask for, per subject: a request is
    counted as if it started now."""
    month_end: BindParameter[datetime] = bindparam("month_end", type_=DateTime(timezone=True))
    now: BindParameter[datetime] = bindparam("now", type_=DateTime(timezone=True))
    until_month_end = func.extract("epoch", month_end - now) / 3600
    hours = func.least(cast(requests.c.hours, Float), until_month_end)
    new_gpus = func.sum(case((requests.c.kind == "new", requests.c.gpus), else_=0))
    return (
        select(key.label("key"), new_gpus.label("gpus"), func.sum(hours * requests.c.gpus).label("gpu_hours"))
        .where(key.in_(bindparam("ids", expanding=True)), requests.c.status.in_(OPEN))
        .group_by(key)
    )


_ASSIGNMENT_USE = {
    "user": _assignment_use_query(assignments.c.user_id),
    "group": _assignment_use_query(assignments.c.group_id),
}
_OPEN_USE = {"user": _open_use_query(requests.c.user_id), "group": _open_use_query(requests.c.group_id)}


async def use(
    session: AsyncSession, subjects: Sequence[Subject], month_start: datetime, month_end: datetime, now: datetime
) -> dict[Subject, Use]:
    """What counts against each subject's quota: two statements per kind of subject (its assignments,
    its open requests), whatever the number of subjects."""
    found: dict[Subject, Use] = {}
    times = {"month_start": month_start, "month_end": month_end, "now": now}
    for kind in ("user", "group"):
        ids = [sid for k, sid in subjects if k == kind]
        if not ids:
            continue
        held = {
            r.key: (int(r.gpus_now or 0), float(r.gpu_seconds or 0.0) / 3600)
            for r in await session.execute(_ASSIGNMENT_USE[kind], {"ids": ids, **times})
        }
        asked = {
            r.key: (int(r.gpus or 0), float(r.gpu_hours or 0.0))
            for r in await session.execute(_OPEN_USE[kind], {"ids": ids, "month_end": month_end, "now": now})
        }
        for sid in ids:
            gpus_now, hours = held.get(sid, (0, 0.0))
            open_gpus, open_hours = asked.get(sid, (0, 0.0))
            found[(kind, sid)] = Use(gpus_now, hours, open_gpus, open_hours)
    return found
