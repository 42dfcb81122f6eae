"""Self-service and fair use (API.md "Self-service and fair use"): the scheduler's requests, quotas and
queue. This module holds the events other services consume (notify's mails, identity's audit log);
the scheduler's RPC models for requests and quotas live here too."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from gpulab_core.contracts.common import MAX_LIMIT, Contract, Page
from gpulab_core.contracts.events import EventPayload
from gpulab_core.contracts.scheduler import Assignment

RequestKind = Literal["new", "extension"]
RequestStatus = Literal["pending_approval", "queued", "granted", "denied", "cancelled"]
SelfService = Literal["off", "approval", "auto"]

# ---- events (gpulab.events.<type>) ----
REQUEST_SUBMITTED = "scheduler.request_submitted"  # any new request or extension, whatever its fate
REQUEST_GRANTED = "scheduler.request_granted"
REQUEST_DENIED = "scheduler.request_denied"  # by an admin, with a reason
REQUEST_CANCELLED = "scheduler.request_cancelled"  # by its user
QUOTA_SET = "scheduler.quota_set"
ASSIGNMENT_EXTENDED = "scheduler.assignment_extended"


class RequestEvent(EventPayload):
    """What every request event carries: enough for a mail and an audit row without asking back."""

    request_id: uuid.UUID
    kind: RequestKind
    user_id: uuid.UUID
    user_email: str
    environment_id: uuid.UUID
    environment_name: str
    group_id: uuid.UUID | None
    assignment_id: uuid.UUID | None  # once granted; for an extension, the assignment it extends
    gpus: int
    hours: int
    note: str | None
    status: RequestStatus  # the status after the change this event reports
    actor_id: uuid.UUID | None = None  # who made the change (the user, an admin, or None: the queue)


class RequestSubmitted(RequestEvent):
    """`status` says what happened at once: `pending_approval` (admins are mailed), `queued`
    (`position` set) or `granted` (`auto` and it fitted)."""

    position: int | None = None


class RequestGranted(RequestEvent):
    """A request turned into an assignment (or an extension applied). `waited`: it was queued or
    waited for approval first, so its user is mailed (an immediate `auto` grant is not)."""

    waited: bool
    expires_at: datetime | None


class RequestDenied(RequestEvent):
    reason: str


class RequestCancelled(RequestEvent):
    pass


class QuotaSet(EventPayload):
    subject_type: Literal["user", "group"]
    subject_id: uuid.UUID
    max_gpus: int | None
    max_hours: int | None
    gpu_hours_per_month: int | None
    actor_id: uuid.UUID | None = None


class AssignmentExtended(EventPayload):
    assignment_id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    request_id: uuid.UUID | None
    hours: int
    expires_at: datetime
    actor_id: uuid.UUID | None = None


# ---- error codes ----
SELF_SERVICE_OFF = "self_service_off"  # 403
QUOTA_EXCEEDED = "quota_exceeded"  # 409; the detail names the limit and what is left
TOO_LONG = "too_long"  # 422: over the Environment's or the quota's longest request
NOT_A_MEMBER = "not_a_member"  # 422: the request names a group its user is not in
REQUEST_NOT_OPEN = "request_not_open"  # 409: cancel/approve/deny of a request already decided
OTHERS_WAITING = "others_waiting"  # 409: an extension while requests wait in the Environment's queue


# ---- limits ----
MAX_REQUEST_GPUS = 256
MAX_REQUEST_HOURS = 24 * 366
MAX_NOTE = 1000
MAX_REASON = 1000
MAX_QUOTA = 10_000_000  # the largest number any quota limit takes


# ---- quotas (RPC) ----
class QuotaLimits(Contract):
    """A null limit is no limit."""

    max_gpus: int | None = Field(default=None, ge=0, le=MAX_QUOTA, description="GPUs held at once")
    max_hours: int | None = Field(default=None, ge=1, le=MAX_REQUEST_HOURS, description="longest request")
    gpu_hours_per_month: int | None = Field(
        default=None, ge=0, le=MAX_QUOTA, description="GPU-hours per calendar month (UTC)"
    )


class QuotaUse(Contract):
    gpus_now: int = Field(description="GPUs held now by the subject's active assignments")
    gpu_hours_this_month: float = Field(
        description="GPU-hours of this calendar month (UTC) so far, plus what active assignments have booked"
        " until their expiry within the month"
    )


class Quota(Contract):
    """A subject's limits (null: no limit) and what counts against them now."""

    subject_type: Literal["user", "group"]
    subject_id: uuid.UUID
    max_gpus: int | None
    max_hours: int | None
    gpu_hours_per_month: int | None
    used: QuotaUse


class QuotaList(Contract):
    items: list[Quota]


class SetQuotaRequest(QuotaLimits):
    subject_type: Literal["user", "group"]
    subject_id: uuid.UUID
    actor_id: uuid.UUID


class ListQuotasRequest(Contract):
    pass


class MyQuotaRequest(Contract):
    """The gateway names the caller's groups (from identity's groups.of_user)."""

    user_id: uuid.UUID
    group_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_LIMIT)


class MyQuota(Contract):
    user: Quota
    groups: list[Quota]


# ---- requests (RPC) ----
class NewRequest(Contract):
    environment_id: uuid.UUID
    gpus: int = Field(ge=1, le=MAX_REQUEST_GPUS)
    cpus: int | None = Field(default=None, ge=0, le=4096, description="default: the Environment's")
    ram_mb: int | None = Field(default=None, ge=0, le=64 * 1024 * 1024, description="default: the Environment's")
    hours: int = Field(ge=1, le=MAX_REQUEST_HOURS)
    group_id: uuid.UUID | None = Field(default=None, description="the group it is charged to (a member's)")
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class SubmitRequest(NewRequest):
    user_id: uuid.UUID


class Request(Contract):
    id: uuid.UUID
    kind: RequestKind
    user_id: uuid.UUID
    user_email: str
    environment_id: uuid.UUID
    environment_name: str
    group_id: uuid.UUID | None
    assignment_id: uuid.UUID | None = Field(description="once granted; for an extension, the assignment it extends")
    gpus: int
    cpus: int
    ram_mb: int
    hours: int
    note: str | None
    status: RequestStatus
    position: int | None = Field(description="1 = next in its Environment's queue; set while queued")
    estimated_start_at: datetime | None = Field(
        description="while queued: when it should start, from the running assignments' expiries; null: unknown"
    )
    reason: str | None = Field(description="why it was denied")
    created_at: datetime
    decided_at: datetime | None


class RequestPage(Contract):
    items: list[Request]
    next_cursor: str | None


class ListRequestsRequest(Page):
    status: RequestStatus | None = None
    environment_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None


class RequestIdRequest(Contract):
    id: uuid.UUID
    actor_id: uuid.UUID


class MyRequestRequest(Contract):
    """A user acting on one of their own requests: another user's is `not_found`."""

    id: uuid.UUID
    user_id: uuid.UUID


class DenyRequest(RequestIdRequest):
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class ExtendRequest(Contract):
    id: uuid.UUID  # the assignment
    user_id: uuid.UUID
    hours: int = Field(ge=1, le=MAX_REQUEST_HOURS)


class ExtendReply(Contract):
    """`assignment` when applied at once (`auto`), `request` when an admin decides (`approval`)."""

    assignment: Assignment | None = None
    request: Request | None = None


class ReleaseRequest(Contract):
    id: uuid.UUID  # the assignment
    user_id: uuid.UUID


# ---- what a user may request (the portal's "Request GPUs") ----
class EnvironmentOffer(Contract):
    id: uuid.UUID
    name: str
    self_service: SelfService
    max_hours: int | None
    default_cpus: int
    default_ram_mb: int
    gpus_total: int = Field(description="GPUs of the Environment's online nodes")
    gpus_free: int = Field(description="of those, not held now")
    queued_requests: int
    queued_gpus: int


class EnvironmentOffers(Contract):
    items: list[EnvironmentOffer]


class ListOffersRequest(Contract):
    pass


class EstimateRequest(Contract):
    environment_id: uuid.UUID
    gpus: int = Field(ge=1, le=MAX_REQUEST_GPUS)
    hours: int = Field(ge=1, le=MAX_REQUEST_HOURS)


class Estimate(Contract):
    fits_now: bool = Field(description="it would start at once (if the quotas allow)")
    position: int = Field(description="its place in the queue if it were submitted now (1 = next)")
    estimated_start_at: datetime | None = Field(description="when it should start; null: now, or unknown")
