"""NetBird's wire conventions that the fake NetBird (fake_netbird.py) answers with: Go's time format,
the setup key's id, the error body, and how Go's encoding/json decodes a setup key request's fields."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
JSON_TYPE = "application/json; charset=UTF-8"  # what NetBird's util.WriteJSONObject / WriteErrorResponse send


def go_time(epoch_ns: int) -> str:
    """Go's time.Time JSON (RFC 3339 with nanoseconds, trailing zeros dropped, UTC as `Z`)."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def fnv32a(text: str) -> int:
    """NetBird's setup key id is the FNV-1a hash of the key, in decimal."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def netbird_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "code": status}, status_code=status, media_type=JSON_TYPE)


# The request body's fields and the Go types NetBird decodes them into (encoding/json refuses a mismatch).
REQUEST_FIELDS: dict[str, str] = {
    "name": "string",
    "type": "string",
    "expires_in": "int",
    "auto_groups": "[]string",
    "usage_limit": "int",
    "ephemeral": "*bool",
    "allow_extra_dns_labels": "*bool",
}


def decodes(value: Any, go_type: str) -> bool:
    if value is None:  # JSON null leaves a Go field at its zero value
        return True
    if go_type == "string":
        return isinstance(value, str)
    if go_type == "int":  # 86400.0 or 1e5 are refused by encoding/json for an int field
        return isinstance(value, int) and not isinstance(value, bool)
    if go_type == "[]string":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, bool)
