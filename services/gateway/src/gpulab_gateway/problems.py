"""RFC 9457 problem+json for every error the gateway returns, mapped once here."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException

from gpulab_core import errors
from gpulab_core.contracts import groups, identity, inventory, scheduler, selfservice

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Codes the gateway itself produces for sessions (the others come from the services).
UNAUTHENTICATED = identity.UNAUTHENTICATED
CSRF_FAILED = "csrf_failed"
FORBIDDEN = "forbidden"
MALFORMED_JSON = "malformed_json"

# Stable error code → HTTP status. Codes not listed are client errors of the request's content.
STATUS_BY_CODE: dict[str, int] = {
    errors.INVALID_REQUEST: 422,
    errors.NOT_FOUND: 404,
    errors.CONFLICT: 409,
    errors.UNAVAILABLE: 503,
    errors.INTERNAL: 500,
    errors.UNKNOWN_OPERATION: 500,
    errors.EVENT_TOO_LARGE: 422,
    # identity
    identity.INVALID_CREDENTIALS: 401,
    identity.TOO_MANY_ATTEMPTS: 429,
    identity.UNAUTHENTICATED: 401,
    identity.INVITE_EXPIRED: 410,
    identity.INVITE_USED: 410,
    identity.INVALID_PASSWORD: 422,
    identity.INVALID_SSH_KEY: 422,
    identity.DUPLICATE_SSH_KEY: 409,
    identity.TOO_MANY_SSH_KEYS: 409,
    identity.ALREADY_ACTIVE: 409,
    identity.LAST_ADMIN: 409,
    groups.GROUP_EXISTS: 409,
    groups.GROUP_IN_USE: 409,
    # inventory
    inventory.NODE_EXISTS: 409,
    inventory.NODE_REVOKED: 409,
    # scheduler
    scheduler.NO_CAPACITY: 409,
    scheduler.USER_HAS_NO_SSH_KEY: 422,
    scheduler.NODE_NOT_MIG_CAPABLE: 409,
    scheduler.ENVIRONMENT_EXISTS: 409,
    scheduler.ENVIRONMENT_IN_USE: 409,
    scheduler.ASSIGNMENT_ENDED_ALREADY: 409,
    scheduler.ACCESS_PROVIDER_FAILED: 502,
    scheduler.ACCESS_NOT_READY: 409,
    selfservice.SELF_SERVICE_OFF: 403,
    selfservice.QUOTA_EXCEEDED: 409,
    selfservice.TOO_LONG: 422,
    selfservice.NOT_A_MEMBER: 422,
    selfservice.REQUEST_NOT_OPEN: 409,
    selfservice.OTHERS_WAITING: 409,
    # the gateway's own
    CSRF_FAILED: 403,
    FORBIDDEN: 403,
}

# The only `details` of a service's error that reach the caller: each is meant for them. Anything
# else a service puts there (ids, internal field names, validation dumps) stays in the logs.
SAFE_DETAILS: dict[str, type] = {"reason": str, "retry_after_s": int}

_CODE_BY_STATUS = {
    400: "bad_request",
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details; `code` is the stable word a client branches on."""

    type: str = Field(examples=["urn:gpulab:problem:invalid_credentials"])
    title: str
    status: int
    detail: str
    code: str = Field(examples=["invalid_credentials"])
    errors: list[FieldError] | None = Field(default=None, description="with `invalid_request`: what is wrong where")
    reason: str | None = Field(default=None, description="with `invalid_ssh_key`: why the key was refused")
    retry_after_s: int | None = Field(default=None, description="with `too_many_attempts`, as in `Retry-After`")


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"urn:gpulab:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def safe_details(details: Mapping[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, kind in SAFE_DETAILS.items():
        value = details.get(key)
        if kind is int and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            shown[key] = max(1, math.ceil(value))
        elif kind is str and isinstance(value, str):
            shown[key] = value[:500]
    return shown


def from_error(exc: errors.GpulabError) -> JSONResponse:
    status = STATUS_BY_CODE.get(exc.code, 422)
    if status >= 500:
        log.warning("upstream error %s: %s", exc.code, exc.message)
    # A service's own 5xx message may describe its internals; `service_unavailable` names only who.
    # `service_unavailable` names only who; an access provider's message says what the outside
    # service (NetBird) answered, with its token scrubbed: both are meant for the caller.
    told = exc.code in (errors.UNAVAILABLE, scheduler.ACCESS_PROVIDER_FAILED)
    detail = exc.message if status < 500 or told else "internal error"
    extra = safe_details(exc.details)
    response = problem(status, exc.code, detail, **extra)
    if "retry_after_s" in extra:
        response.headers["Retry-After"] = str(extra["retry_after_s"])
    return response


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.GpulabError)
    async def _domain(req: Request, exc: errors.GpulabError) -> JSONResponse:
        if exc.code in (CSRF_FAILED, FORBIDDEN):
            # An attempt at something the caller may not do: audited (within bounds, refusals.py).
            session = getattr(req.state, "session", None)
            actor = session.user.id if session is not None else None
            req.app.state.refusals.report(req, "csrf_failed" if exc.code == CSRF_FAILED else "forbidden", actor)
        return from_error(exc)

    @app.exception_handler(ValidationError)
    async def _invalid_contract(_req: Request, exc: ValidationError) -> JSONResponse:
        # A route built a contract model from what the caller sent (query filters, say) and it did
        # not validate: the caller's input, so 422. Upstream replies are checked in upstream.py.
        errs = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return problem(422, errors.INVALID_REQUEST, "the request is not valid", errors=errs)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in errs)
        detail = "the request body is not valid JSON" if malformed else "the request is not valid"
        return problem(422, MALFORMED_JSON if malformed else errors.INVALID_REQUEST, detail, errors=errs)

    @app.exception_handler(HTTPException)
    async def _http(_req: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's only 400: a JSON body it could not even decode (e.g. not UTF-8). For the
            # caller that is the same mistake as any other body that is not JSON.
            return problem(422, MALFORMED_JSON, "the request body is not valid JSON")
        code = _CODE_BY_STATUS.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        response = problem(exc.status_code, code, detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _bug(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, errors.INTERNAL, "internal error")
