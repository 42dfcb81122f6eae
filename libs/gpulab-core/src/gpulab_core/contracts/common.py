from __future__ import annotations

from typing import Any, Literal

import email_validator
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

# API.md: list `limit` defaults to 50, at most 500.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500

# The IANA special-use domain names a lab's own network uses for mail: mDNS's `.local` and `.test`.
# email-validator refuses every special-use name; a self-hosted lab often has only such addresses.
# `.internal` (ICANN's private-use TLD) and `.lan` are no special-use names and pass as they are;
# `localhost`, `.invalid`, `.onion`, `.arpa` and names without a dot stay refused: no mailbox is there.
LAB_DOMAIN_NAMES = ("local", "test")
# email-validator reads this list at every call; removing names from it is its documented way to
# admit them (its README, "Special Use Domain Names"). Every process that validates an email
# imports this module (every contract does).
for _name in LAB_DOMAIN_NAMES:
    if _name in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        email_validator.SPECIAL_USE_DOMAIN_NAMES.remove(_name)

# An email address as gpulab accepts one: syntax only (no DNS lookup), lab-internal names included.
EmailAddress = EmailStr


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


class HealthReply(BaseModel):
    """What every back-end service's `health` operation answers (gpulab_core.runtime)."""

    status: Literal["ok", "degraded"]  # degraded: it serves, but `problems` says what is not whole
    service: str
    version: str
    instance: str
    problems: list[str] = []
