"""`GET /usage` (admin) and `GET /me/usage` (the caller's own assignments): GPU-hours over a time
range, as JSON or, with `Accept: text/csv`, as CSV (docs/adr/0020)."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gpulab_core.contracts import groups as groups_contract
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import usage as contract
from gpulab_core.contracts.common import MAX_LIMIT
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for

router = APIRouter(tags=["usage"])

CSV = "text/csv"
CSV_HEADER = ("key_id", "key_name", "gpu_hours", "assignments")
# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
INVALID = (
    "`invalid_request`: `from` is not before `until`, the range is longer than "
    f"{contract.MAX_RANGE.days} days, a time has no UTC offset or is not RFC 3339, or `group_by` is unknown"
)


class UsageKey(BaseModel):
    id: uuid.UUID | None = Field(description="the user, group, Environment or node; null: no group")
    name: str = Field(description="email, group name, Environment name or host name; `(no group)`")


class UsageItem(BaseModel):
    key: UsageKey
    gpu_hours: float = Field(description="GPU-hours in the range, rounded to 4 decimals")
    assignments: int = Field(description="assignments that ran during the range or started in it")


class Usage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    until: datetime = Field(description="as asked, or now if that was later: nothing is counted ahead")
    items: list[UsageItem] = Field(description="by `gpu_hours`, largest first, then by name")


From = Annotated[
    AwareDatetime | None,
    Query(alias="from", description="start, included (RFC 3339); default: the start of `until`'s month (UTC)"),
]
Until = Annotated[AwareDatetime | None, Query(description="end, excluded (RFC 3339); default: now")]
GroupBy = Annotated[contract.UsageGroupBy, Query(description="what a row is")]


@dataclass(frozen=True)
class RangeQuery:
    since: datetime | None
    until: datetime | None
    group_by: contract.UsageGroupBy


def range_query(since: From = None, until: Until = None, group_by: GroupBy = "user") -> RangeQuery:
    return RangeQuery(since, until, group_by)


Range = Annotated[RangeQuery, Depends(range_query)]
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": f"the rows as JSON, or with `Accept: {CSV}` as CSV (header `{','.join(CSV_HEADER)}`)",
        "content": {CSV: {"schema": {"type": "string"}}},
    }
}


def month_start(until: datetime) -> datetime:
    """The first instant of the UTC calendar month of the last instant before `until`."""
    last = (until - timedelta(microseconds=1)).astimezone(UTC)
    return last.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def _report(request: Request, asked: RangeQuery, user_id: uuid.UUID | None) -> Response | Usage:
    end = asked.until or datetime.now(UTC)
    query = contract.UsageReportRequest(
        since=asked.since or month_start(end), until=end, group_by=asked.group_by, user_id=user_id
    )  # invalid: 422 (problems.py)
    report = await upstream.ask(request, ops.USAGE_REPORT, query)
    names = await _group_names(request, report) if asked.group_by == "group" else {}
    items = [
        UsageItem(
            key=UsageKey(id=row.key_id, name=_name(row, names)),
            gpu_hours=round(row.gpu_seconds / 3600, 4),
            assignments=row.assignments,
        )
        for row in report.items
    ]
    items.sort(key=lambda item: (-item.gpu_hours, item.key.name))
    usage = Usage(from_=report.since, until=report.until, items=items)
    if _wants_csv(request):
        return _csv(usage)
    return usage


async def _group_names(request: Request, report: contract.UsageReport) -> dict[uuid.UUID, str]:
    ids = [row.key_id for row in report.items if row.key_id is not None]
    names: dict[uuid.UUID, str] = {}
    for at in range(0, len(ids), MAX_LIMIT):
        batch = groups_contract.GroupNamesRequest(ids=ids[at : at + MAX_LIMIT])
        names.update((await upstream.ask(request, ops.GROUPS_NAMES, batch)).names)
    return names


def _name(row: contract.UsageRow, groups: dict[uuid.UUID, str]) -> str:
    if row.key_id is None:
        return contract.NO_GROUP
    return groups.get(row.key_id) or row.key_name or str(row.key_id)


def _wants_csv(request: Request) -> bool:
    accepted = [part.split(";")[0].strip().lower() for part in request.headers.get("accept", "").split(",")]
    return CSV in accepted


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _csv(usage: Usage) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for item in usage.items:
        key_id = str(item.key.id) if item.key.id is not None else ""
        writer.writerow((key_id, _cell(item.key.name), repr(item.gpu_hours), item.assignments))
    filename = f"gpulab-usage-{_stamp(usage.from_)}-{_stamp(usage.until)}.csv"
    return Response(
        out.getvalue(),
        media_type=f"{CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/usage",
    summary="GPU-hours per user, group, Environment or node over a time range",
    response_model=Usage,
    responses={
        **RESPONSES,
        **problems_for(ops.USAGE_REPORT, 401, 403, 422, meaning={403: "`forbidden`: not an admin", 422: INVALID}),
    },
)
async def usage(_session: sessions.AdminRead, request: Request, query: Range) -> Response | Usage:
    return await _report(request, query, None)


@router.get(
    "/me/usage",
    summary="My GPU-hours over a time range (my assignments only)",
    response_model=Usage,
    responses={**RESPONSES, **problems_for(ops.USAGE_REPORT, 401, 422, meaning={422: INVALID})},
)
async def my_usage(session: sessions.UserRead, request: Request, query: Range) -> Response | Usage:
    return await _report(request, query, session.user.id)
