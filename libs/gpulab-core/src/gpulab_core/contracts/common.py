from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# API.md: list `limit` defaults to 50, at most 500.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Contract(BaseModel):
    """Strict about unknown fields: a typo in a request is an error, not a silently ignored field."""

    model_config = ConfigDict(extra="forbid")


class Page(Contract):
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=200)
