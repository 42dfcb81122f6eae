"""The audit rows of the self-service events (requests, quotas, extensions; issue 13), and what an
assignment made from a request or over a quota adds to its `assignment.created` row."""

from __future__ import annotations

from typing import Any

from gpulab_core.contracts import scheduler as sch
from gpulab_core.contracts import selfservice as ss
from gpulab_identity.audit.entries import Build, Entry


def _request_details(p: ss.RequestEvent) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "status": p.status,
        "user_id": str(p.user_id),
        "user_email": p.user_email,
        "environment_id": str(p.environment_id),
        "environment_name": p.environment_name,
        "group_id": str(p.group_id) if p.group_id else None,
        "assignment_id": str(p.assignment_id) if p.assignment_id else None,
        "gpus": p.gpus,
        "hours": p.hours,
        "note": p.note,
    }


def _submitted(data: dict[str, Any]) -> Entry:
    p = ss.RequestSubmitted.model_validate(data)
    details = {**_request_details(p), "position": p.position}
    return Entry("request.submitted", "request", p.request_id, p.actor_id, details)


def _granted(data: dict[str, Any]) -> Entry:
    p = ss.RequestGranted.model_validate(data)
    expires = p.expires_at.isoformat() if p.expires_at else None
    details = {**_request_details(p), "waited": p.waited, "expires_at": expires}
    return Entry("request.granted", "request", p.request_id, p.actor_id, details)


def _denied(data: dict[str, Any]) -> Entry:
    p = ss.RequestDenied.model_validate(data)
    return Entry("request.denied", "request", p.request_id, p.actor_id, {**_request_details(p), "reason": p.reason})


def _cancelled(data: dict[str, Any]) -> Entry:
    p = ss.RequestCancelled.model_validate(data)
    return Entry("request.cancelled", "request", p.request_id, p.actor_id, _request_details(p))


def _quota_set(data: dict[str, Any]) -> Entry:
    """On the user or group the quota is for (null limits: no limit)."""
    p = ss.QuotaSet.model_validate(data)
    details = {"max_gpus": p.max_gpus, "max_hours": p.max_hours, "gpu_hours_per_month": p.gpu_hours_per_month}
    return Entry("quota.set", p.subject_type, p.subject_id, p.actor_id, details)


def _assignment_extended(data: dict[str, Any]) -> Entry:
    p = ss.AssignmentExtended.model_validate(data)
    details = {
        "user_id": str(p.user_id),
        "user_email": p.user_email,
        "hours": p.hours,
        "expires_at": p.expires_at.isoformat(),
        "request_id": str(p.request_id) if p.request_id else None,
    }
    return Entry("assignment.extended", "assignment", p.assignment_id, p.actor_id, details)


ENTRIES: dict[str, Build] = {
    ss.REQUEST_SUBMITTED: _submitted,
    ss.REQUEST_GRANTED: _granted,
    ss.REQUEST_DENIED: _denied,
    ss.REQUEST_CANCELLED: _cancelled,
    ss.QUOTA_SET: _quota_set,
    ss.ASSIGNMENT_EXTENDED: _assignment_extended,
}


def assignment_origin(p: sch.AssignmentCreated) -> dict[str, Any]:
    """The request it grants, the group it is charged to, and the quota it exceeded: only those set,
    so an admin's plain assignment keeps the row it always had."""
    origin: dict[str, Any] = {}
    if p.request_id is not None:
        origin["request_id"] = str(p.request_id)
    if p.group_id is not None:
        origin["group_id"] = str(p.group_id)
    if p.over_quota:
        origin["over_quota"] = p.over_quota
    return origin
