"""GPU-hour accounting (API.md "Self-service and fair use", docs/adr/0020): the scheduler's
`usage.report`, which the gateway's `GET /usage` and `GET /me/usage` ask."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, model_validator

from gpulab_core.contracts.common import Contract

UsageGroupBy = Literal["user", "group", "environment", "node"]
# The longest range one report covers: a year and a bit (a report per item is one GROUP BY, but a
# range without end is a mistake rather than a question).
MAX_RANGE = timedelta(days=400)
NO_GROUP = "(no group)"  # the name of the row of the assignments charged to no group


class UsageReportRequest(Contract):
    """GPU-hours in [since, until) per `group_by`; `user_id`: only that user's assignments."""

    since: AwareDatetime
    until: AwareDatetime
    group_by: UsageGroupBy = "user"
    user_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _a_range(self) -> UsageReportRequest:
        if self.since >= self.until:
            raise ValueError("`from` must be before `until`")
        if self.until - self.since > MAX_RANGE:
            raise ValueError(f"the range may be at most {MAX_RANGE.days} days long")
        return self


class UsageRow(Contract):
    """One item: its key (None for the assignments of no group), the key's name as the scheduler knows
    it (None for groups: identity names them), GPU-seconds in the range and how many assignments."""

    key_id: uuid.UUID | None
    key_name: str | None
    gpu_seconds: float
    assignments: int


class UsageReport(Contract):
    since: AwareDatetime
    until: AwareDatetime  # the `until` asked for, or now if that was later: nothing is counted ahead
    items: list[UsageRow]
