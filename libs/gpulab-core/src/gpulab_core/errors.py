"""Domain errors with stable codes, mapped once at each edge (NATS reply, HTTP problem+json, gRPC).

A code is a stable snake_case word that clients may branch on; the message is for people.
"""

from __future__ import annotations

from typing import Any

# Codes that the shared layers themselves produce. Services add their own (e.g. `no_capacity`).
INVALID_REQUEST = "invalid_request"  # malformed body or wrong schema
NOT_FOUND = "not_found"
CONFLICT = "conflict"
UNAVAILABLE = "service_unavailable"  # nobody answered, or the answer did not come in time
INTERNAL = "internal_error"  # a bug: details are logged, never sent to the caller
UNKNOWN_OPERATION = "unknown_operation"
EVENT_TOO_LARGE = "event_too_large"  # the change would emit an event larger than the bus carries (outbox.emit)


class GpulabError(Exception):
    """An expected failure that a caller can act on."""

    code: str = INTERNAL

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidRequest(GpulabError):
    code = INVALID_REQUEST


class NotFound(GpulabError):
    code = NOT_FOUND


class Conflict(GpulabError):
    code = CONFLICT


class Unavailable(GpulabError):
    code = UNAVAILABLE


class RemoteError(GpulabError):
    """An error reply received from another service; keeps that service's code."""
