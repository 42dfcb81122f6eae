"""Opaque keyset cursors: base64url of a small JSON list, checked on the way back in."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from gpulab_core.errors import InvalidRequest


def encode(*values: Any) -> str:
    raw = json.dumps([str(v) if not isinstance(v, int) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("the cursor is not valid", details={"field": "cursor"}) from None
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidRequest("the cursor is not valid", details={"field": "cursor"})
    return values
