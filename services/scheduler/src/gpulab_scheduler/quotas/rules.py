"""What a quota allows: pure rules over the limits and what counts against them (no I/O).

A request counts against its user's quota and, when it names one, its group's; both must allow it.
- `max_gpus`: GPUs held at once. At submission, what the subject holds plus what its open requests
  ask for plus this one; at grant, what it holds plus this one (the others are checked at theirs).
- `gpu_hours_per_month`: the calendar month's (UTC) GPU-hours so far, plus what active assignments
  have booked until their expiry within the month, plus (at submission) the open requests, plus this
  request's GPUs × its hours up to the month's end.
- `max_hours`: the longest request (for an extension, the assignment's whole length after it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gpulab_scheduler.quotas.repository import Limits, Use


@dataclass(frozen=True, slots=True)
class Ask:
    gpus: int  # GPUs it would add to those held (0 for an extension)
    gpu_hours: float  # GPU-hours it books within this month
    hours: int  # its length (an extension: the assignment's whole length after it)


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: str  # max_gpus | gpu_hours_per_month | max_hours
    sentence: str
    left: float  # what the limit leaves (GPUs, GPU-hours or hours)


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) around `now`: its first instant and the next month's."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def booked_hours(hours: float, now: datetime, month_end: datetime) -> float:
    """Of `hours` from now, those within this month."""
    return max(0.0, min(hours, (month_end - now).total_seconds() / 3600))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def refusal(whose: str, limits: Limits, use: Use, ask: Ask, *, count_open: bool) -> Refusal | None:
    """Why `whose` quota ("your", "group lab-a's") does not allow the ask, or None when it does."""
    if limits.max_hours is not None and ask.hours > limits.max_hours:
        return Refusal(
            "max_hours",
            f"{whose} quota allows requests of at most {limits.max_hours} hour(s); {ask.hours} asked for",
            limits.max_hours,
        )
    if limits.max_gpus is not None and ask.gpus:
        taken = use.gpus_now + (use.open_gpus if count_open else 0)
        if taken + ask.gpus > limits.max_gpus:
            left = max(0, limits.max_gpus - taken)
            pending = f" (plus {use.open_gpus} in open requests)" if count_open and use.open_gpus else ""
            return Refusal(
                "max_gpus",
                f"{whose} quota allows {limits.max_gpus} GPU(s) at once: {use.gpus_now} held{pending}, so"
                f" {left} left; {ask.gpus} asked for",
                left,
            )
    if limits.gpu_hours_per_month is not None and ask.gpu_hours:
        taken_hours = use.gpu_hours_month + (use.open_gpu_hours if count_open else 0.0)
        # A hair of tolerance: booked time is read from clocks a few milliseconds apart.
        if taken_hours + ask.gpu_hours > limits.gpu_hours_per_month + 1e-6:
            left_hours = max(0.0, limits.gpu_hours_per_month - taken_hours)
            return Refusal(
                "gpu_hours_per_month",
                f"{whose} quota allows {limits.gpu_hours_per_month} GPU-hours this month: {_number(taken_hours)}"
                f" used or booked, so {_number(math.floor(left_hours * 100) / 100)} left; this asks for"
                f" {_number(ask.gpu_hours)}",
                left_hours,
            )
    return None
