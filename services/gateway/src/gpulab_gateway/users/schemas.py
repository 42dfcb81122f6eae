"""Bodies and pages of the `/users` routes (requests refuse unknown fields)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpulab_core.contracts import identity as contract
from gpulab_core.contracts.common import Contract, EmailAddress


class NewInvite(Contract):
    email: EmailAddress
    role: contract.Role = "user"


class UserChange(BaseModel):
    """At least one of the two; `status` enables or disables, `role` promotes or demotes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    status: Literal["active", "disabled"] | None = None
    role: contract.Role | None = None

    @model_validator(mode="after")
    def _something(self) -> UserChange:
        if self.status is None and self.role is None:
            raise ValueError("give `status`, `role` or both")
        return self


class UserList(BaseModel):
    items: list[contract.User]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")
