"""Self-service and fair use (API.md "Self-service and fair use"): the scheduler's requests, quotas and
queue. This module holds the events other services consume (notify's mails, identity's audit log);
the scheduler's RPC models for requests and quotas live here too."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from gpulab_core.contracts.events import EventPayload

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
