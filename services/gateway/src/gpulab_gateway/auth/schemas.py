"""Bodies of the `/auth` routes (requests refuse unknown fields)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gpulab_core.contracts import identity as contract
from gpulab_core.contracts.common import Contract


class Credentials(Contract):
    # Any string: an address that is not an email is simply not an account (the same 401).
    email: str = Field(max_length=320)
    password: str = Field(max_length=4 * contract.PASSWORD_MAX)


class LoginResult(BaseModel):
    user: contract.User
    csrf_token: str = Field(description="send it as `X-CSRF-Token` on every POST, PATCH, PUT and DELETE")


class InviteInfo(BaseModel):
    email: str
    expires_at: datetime


class AcceptInvite(Contract):
    name: str = Field(min_length=1, max_length=200)
    # identity checks the length rules (12 to 128 characters) and answers `invalid_password`.
    password: str = Field(max_length=4 * contract.PASSWORD_MAX)
