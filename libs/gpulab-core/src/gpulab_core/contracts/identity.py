"""The identity service's RPC contract (subjects `gpulab.rpc.identity.<operation>`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from gpulab_core.contracts.common import Contract, EmailAddress, Page

SERVICE = "identity"

Role = Literal["admin", "user"]
UserStatus = Literal["invited", "active", "disabled"]
DeliveryState = Literal["pending", "sent", "retrying", "failed"]

# Passwords: 12 to 128 characters (code points, after NFC), any Unicode; never truncated.
PASSWORD_MIN = 12
PASSWORD_MAX = 128
# One pasted key, in bytes of UTF-8; anything longer is refused before parsing. It is the agent's own
# limit on a key line (maxKeyLine in agent/internal/reconcile/validate.go, checked by a test), so every
# key the control plane stores is one every node accepts. The longest real line is far below it: a
# 16384-bit RSA key (OpenSSH's largest) is 2772 characters, plus at most SSH_KEY_COMMENT_MAX of comment.
SSH_KEY_MAX_BYTES = 8 * 1024
# A key's comment, in characters: enough for `user@host` or a sentence, not for a payload.
SSH_KEY_COMMENT_MAX = 256
# The default of GPULAB_SSH_KEYS_PER_USER_MAX: keys one person may have at once.
SSH_KEYS_PER_USER_DEFAULT = 10


class InviteDelivery(Contract):
    """Where the invite email stands (kept by identity from notify's events)."""

    state: DeliveryState
    detail: str | None = None
    updated_at: datetime


class User(Contract):
    id: uuid.UUID
    email: str
    name: str | None
    role: Role
    status: UserStatus
    has_ssh_key: bool
    created_at: datetime
    invite_delivery: InviteDelivery | None = None


class UserPage(Contract):
    items: list[User]
    next_cursor: str | None


# ---- auth ----
class LoginRequest(Contract):
    email: str = Field(max_length=320)
    password: str = Field(max_length=4 * PASSWORD_MAX)  # checked for length by the rules, not here
    client_ip: str | None = Field(default=None, max_length=64)


class LoginReply(Contract):
    session_token: str  # goes into the cookie; identity keeps only its hash
    csrf_token: str
    user: User
    expires_at: datetime  # absolute end of the session


class SessionRequest(Contract):
    session_token: str = Field(max_length=200)


class SessionReply(Contract):
    user: User
    session_id: uuid.UUID
    csrf_token: str
    expires_at: datetime


# ---- invites ----
class InviteRequest(Contract):
    actor_id: uuid.UUID
    email: EmailAddress
    role: Role = "user"


class InviteTokenRequest(Contract):
    token: str = Field(max_length=200)


class InviteLookupReply(Contract):
    email: str
    expires_at: datetime


class AcceptInviteRequest(Contract):
    token: str = Field(max_length=200)
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(max_length=4 * PASSWORD_MAX)


# ---- users ----
class ListUsersRequest(Page):
    status: UserStatus | None = None
    role: Role | None = None


class UserIdRequest(Contract):
    id: uuid.UUID


class UpdateUserRequest(Contract):
    actor_id: uuid.UUID
    id: uuid.UUID
    status: Literal["active", "disabled"] | None = None
    role: Role | None = None


# ---- SSH keys ----
class SshKey(Contract):
    id: uuid.UUID
    type: str
    fingerprint: str  # `SHA256:...` as `ssh-keygen -l` prints it
    comment: str
    created_at: datetime


class SshKeyList(Contract):
    items: list[SshKey]


class ListSshKeysRequest(Contract):
    user_id: uuid.UUID


class AddSshKeyRequest(Contract):
    user_id: uuid.UUID
    public_key: str = Field(max_length=SSH_KEY_MAX_BYTES * 2)  # the precise limit is the parser's


class DeleteSshKeyRequest(Contract):
    user_id: uuid.UUID
    id: uuid.UUID


# ---- audit log ----
class AuditEntry(Contract):
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    actor_email: str | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, object]


class AuditPage(Contract):
    items: list[AuditEntry]
    next_cursor: str | None


class ListAuditRequest(Page):
    actor_id: uuid.UUID | None = None
    action: str | None = Field(default=None, max_length=100)
    target_type: str | None = Field(default=None, max_length=100)
    target_id: str | None = Field(default=None, max_length=200)
    since: datetime | None = None
    until: datetime | None = None


class VerifyAuditRequest(Contract):
    cursor: str | None = Field(default=None, max_length=200)  # `next_cursor` of a check that stopped early


# A request the gateway refused for lack of right (issue 12): recorded in the audit log, within bounds.
REFUSAL_ACTION = "request.refused"
RefusalCode = Literal["csrf_failed", "forbidden"]


class RecordRefusalRequest(Contract):
    """What the gateway saw of a request it refused with 403. Never the raw path (it may carry an
    invite token): the route's template."""

    code: RefusalCode
    method: str = Field(max_length=10)
    route: str = Field(max_length=200)
    actor_id: uuid.UUID | None = None
    client_ip: str | None = Field(default=None, max_length=64)


class RecordRefusalReply(Contract):
    recorded: bool = Field(description="false: over the rate bound, counted but not written")


AuditProblem = Literal["chain_broken", "row_altered"]


class AuditVerification(Contract):
    """The audit log's hash chain recomputed, oldest row first, up to the first row that fails.

    One call checks for a bounded time (half of `GPULAB_RPC_TIMEOUT_S`); a longer log takes more
    calls, each passing the previous one's `next_cursor`.
    """

    valid: bool | None = Field(
        description="true: every row links to the one before it and matches its hash; false: "
        "`first_bad_id` does not; null: not finished yet, call again with `next_cursor`"
    )
    checked: int = Field(ge=0, description="rows found intact so far, from the first row of the log")
    first_bad_id: uuid.UUID | None = Field(description="the first row that fails (the audit entry's id)")
    problem: AuditProblem | None = Field(
        description="`chain_broken`: the row does not link to the one before it (a row before it was "
        "removed, inserted or re-hashed); `row_altered`: its fields do not match its own hash"
    )
    next_cursor: str | None = Field(description="set while `valid` is null: pass it as `cursor` to go on")
    checked_at: datetime


# Error codes identity replies with (the gateway maps them to HTTP statuses).
INVALID_CREDENTIALS = "invalid_credentials"  # 401, the same for an unknown email and a wrong password
TOO_MANY_ATTEMPTS = "too_many_attempts"  # 429, details.retry_after_s
UNAUTHENTICATED = "unauthenticated"  # 401, no valid session
INVITE_EXPIRED = "invite_expired"  # 410
INVITE_USED = "invite_used"  # 410
INVALID_PASSWORD = "invalid_password"  # 422
INVALID_SSH_KEY = "invalid_ssh_key"  # 422
DUPLICATE_SSH_KEY = "duplicate_ssh_key"  # 409
TOO_MANY_SSH_KEYS = "too_many_ssh_keys"  # 409: the user has GPULAB_SSH_KEYS_PER_USER_MAX keys already
ALREADY_ACTIVE = "user_already_active"  # 409: inviting an email that has an active account
LAST_ADMIN = "last_admin"  # 409: the last active admin cannot be disabled or demoted
