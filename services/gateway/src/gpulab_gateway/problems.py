"""RFC 9457 problem+json for every error the gateway returns, mapped once here."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gpulab_core import errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Stable error code → HTTP status. Codes not listed are client errors of the request's content.
STATUS_BY_CODE: dict[str, int] = {
    errors.INVALID_REQUEST: 422,
    errors.NOT_FOUND: 404,
    errors.CONFLICT: 409,
    errors.UNAVAILABLE: 503,
    errors.INTERNAL: 500,
    errors.UNKNOWN_OPERATION: 500,
}

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
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


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.GpulabError)
    async def _domain(_req: Request, exc: errors.GpulabError) -> JSONResponse:
        status = STATUS_BY_CODE.get(exc.code, 422)
        if status >= 500:
            log.warning("upstream error %s: %s", exc.code, exc.message)
        return problem(status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in errs)
        detail = "the request body is not valid JSON" if malformed else "the request is not valid"
        return problem(422, "malformed_json" if malformed else errors.INVALID_REQUEST, detail, errors=errs)

    @app.exception_handler(HTTPException)
    async def _http(_req: Request, exc: HTTPException) -> JSONResponse:
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
