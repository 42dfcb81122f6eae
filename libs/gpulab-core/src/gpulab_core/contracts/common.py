from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# API.md: list `limit` defaults to 50, at most 500.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Contract(BaseModel):
    """Strict about unknown fields: a typo in a request is an error, not a silently ignored field."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL, and no name, email or key legitimately has one: refuse it
        # here, at every edge, instead of failing deep in the database.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class Page(Contract):
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=200)
