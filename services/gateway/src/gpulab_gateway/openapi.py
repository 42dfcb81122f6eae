"""How routes document their errors, and the touches FastAPI's generated OpenAPI document needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gpulab_core.contracts import operations
from gpulab_gateway.problems import PROBLEM_JSON, STATUS_BY_CODE, Problem

# What each status means in this API (API.md, Conventions); a route may say more about its own.
_MEANING = {
    401: "`unauthenticated`: no valid session (log in first)",
    403: "`csrf_failed`: the `X-CSRF-Token` header is missing or wrong",
    404: "`not_found`: no such resource, or not yours",
    409: "`conflict`: conflicts with the current state",
    410: "gone: expired or already used",
    422: "`invalid_request` (with `errors`) or `malformed_json`: the request is not valid",
    429: "`too_many_attempts`: wait `Retry-After` seconds",
    503: "`service_unavailable`: a service did not answer; try again",
}

_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}
}


def problems(*statuses: int, meaning: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status as problem+json; `meaning` says what a status means there.

    503 is always included: every route that reaches a service can meet one that is down.
    """
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 503}):
        description = (meaning or {}).get(status) or _MEANING.get(status, "an error")
        entry: dict[str, Any] = {"model": Problem, "description": description}
        if status == 429:
            entry["headers"] = _RETRY_AFTER
        documented[status] = entry
    return documented


def problems_for(
    op: operations.Operation[Any, Any], *statuses: int, meaning: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that asks `op`: the statuses of the error codes the table of
    operations lists for it, each saying which codes and what they mean, plus the route's own
    `statuses` (a session's 401 and 403); `meaning` says what a route's own status means there."""
    by_status: dict[int, list[str]] = {}
    for code in op.errors:
        by_status.setdefault(STATUS_BY_CODE.get(code, 422), []).append(f"`{code}`: {operations.ERROR_MEANING[code]}")
    said = dict(meaning or {})
    for status, lines in by_status.items():
        if status == 422:  # any request may also be malformed
            lines.append(_MEANING[422])
        said[status] = "; ".join([*lines, *([said[status]] if status in said else [])])
    return problems(*statuses, *by_status, meaning=said)


def install(app: FastAPI) -> None:
    """Serve FastAPI's document with errors as problem+json and one security requirement per route."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            for path_item in doc.get("paths", {}).values():
                for operation in path_item.values():
                    _errors_as_problem_json(operation)
                    _one_security_requirement(operation)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _errors_as_problem_json(operation: dict[str, Any]) -> None:
    # FastAPI puts a `responses` model under the route's media type; errors are problem+json.
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {})
        if status[0] in "45" and "application/json" in content:
            content[PROBLEM_JSON] = content.pop("application/json")


def _one_security_requirement(operation: dict[str, Any]) -> None:
    # FastAPI lists each scheme as its own requirement, which OpenAPI reads as "any one of them";
    # a route that wants the session cookie and the CSRF header wants both.
    security = operation.get("security")
    if security and len(security) > 1:
        merged: dict[str, list[str]] = {}
        for requirement in security:
            merged.update(requirement)
        operation["security"] = [merged]
