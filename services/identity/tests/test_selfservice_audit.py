"""The self-service events (requests, quotas, extensions) reach the audit log, one row each, through
the stream as the scheduler's outbox relay publishes them; an assignment made from a request or over
a quota says so in its row."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from gpulab_core.contracts import scheduler as sch
from gpulab_core.contracts import selfservice as ss

from .conftest import Identity
from .test_node_audit import OCCURRED, chain_intact, event, publish
from .test_scheduler_audit import created, recorded, rows_of

USER = uuid.UUID(int=7)
ENV = uuid.UUID(int=8)


def request_fields(request_id: uuid.UUID, status: ss.RequestStatus, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "kind": "new",
        "user_id": USER,
        "user_email": "ada@example.org",
        "environment_id": ENV,
        "environment_name": "a100-pool",
        "group_id": None,
        "assignment_id": None,
        "gpus": 2,
        "hours": 24,
        "note": "thesis run",
        "status": status,
        **extra,
    }


async def test_a_requests_life_makes_one_row_per_step(identity: Identity) -> None:
    request_id, group, assignment = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    admin = identity.admin_id
    steps: list[tuple[str, Any]] = [
        (ss.REQUEST_SUBMITTED, ss.RequestSubmitted(**request_fields(request_id, "queued", group_id=group), position=3)),
        (
            ss.REQUEST_GRANTED,
            ss.RequestGranted(
                **request_fields(request_id, "granted", group_id=group, assignment_id=assignment),
                waited=True,
                expires_at=OCCURRED + timedelta(hours=24),
            ),
        ),
    ]
    for i, (event_type, payload) in enumerate(steps):
        await publish(
            identity, event(event_type, payload.model_dump(mode="json"), occurred_at=OCCURRED + timedelta(minutes=i))
        )
    submitted, granted = reversed(await recorded(identity, "request", request_id, 2))
    assert (submitted["action"], granted["action"]) == ("request.submitted", "request.granted")
    assert submitted["details"]["position"] == 3
    assert submitted["details"]["group_id"] == str(group)
    assert submitted["details"]["note"] == "thesis run"
    assert submitted["actor_id"] is None, "the queue acted"
    assert granted["details"]["assignment_id"] == str(assignment)
    assert granted["details"]["waited"] is True
    assert granted["details"]["expires_at"] == (OCCURRED + timedelta(hours=24)).isoformat()

    denied_id, cancelled_id = uuid.uuid4(), uuid.uuid4()
    denied = ss.RequestDenied(**request_fields(denied_id, "denied", actor_id=admin), reason="the cluster is reserved")
    cancelled = ss.RequestCancelled(**request_fields(cancelled_id, "cancelled", actor_id=USER))
    await publish(identity, event(ss.REQUEST_DENIED, denied.model_dump(mode="json")))
    await publish(identity, event(ss.REQUEST_CANCELLED, cancelled.model_dump(mode="json")))
    (row,) = await recorded(identity, "request", denied_id, 1)
    assert (row["action"], row["actor_id"], row["actor_email"]) == ("request.denied", str(admin), identity.admin_email)
    assert row["details"]["reason"] == "the cluster is reserved"
    (row,) = await recorded(identity, "request", cancelled_id, 1)
    assert (row["action"], row["details"]["status"]) == ("request.cancelled", "cancelled")
    assert await chain_intact(identity)


async def test_quota_and_extension_rows(identity: Identity) -> None:
    group, assignment, request_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    quota = ss.QuotaSet(
        subject_type="group",
        subject_id=group,
        max_gpus=4,
        max_hours=None,
        gpu_hours_per_month=500,
        actor_id=identity.admin_id,
    )
    extended = ss.AssignmentExtended(
        assignment_id=assignment,
        user_id=USER,
        user_email="ada@example.org",
        request_id=request_id,
        hours=12,
        expires_at=OCCURRED + timedelta(hours=36),
        actor_id=USER,
    )
    await publish(identity, event(ss.QUOTA_SET, quota.model_dump(mode="json")))
    await publish(identity, event(ss.ASSIGNMENT_EXTENDED, extended.model_dump(mode="json")))
    (row,) = await recorded(identity, "group", group, 1)
    assert row["action"] == "quota.set"
    assert row["details"] == {"max_gpus": 4, "max_hours": None, "gpu_hours_per_month": 500}
    (row,) = await recorded(identity, "assignment", assignment, 1)
    assert row["action"] == "assignment.extended"
    assert row["details"] == {
        "user_id": str(USER),
        "user_email": "ada@example.org",
        "hours": 12,
        "expires_at": (OCCURRED + timedelta(hours=36)).isoformat(),
        "request_id": str(request_id),
    }


async def test_an_assignment_over_quota_says_so_and_names_its_request_and_group(identity: Identity) -> None:
    assignment, request_id, group = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sentence = "over the group's quota: 6 GPUs at once where 4 are allowed"
    data = {**created(assignment, identity.admin_id), "request_id": str(request_id), "group_id": str(group)}
    await publish(identity, event(sch.ASSIGNMENT_CREATED, {**data, "over_quota": sentence}))
    (row,) = await recorded(identity, "assignment", assignment, 1)
    assert row["details"]["over_quota"] == sentence
    assert row["details"]["request_id"] == str(request_id)
    assert row["details"]["group_id"] == str(group)
    # A plain one has none of the three (the existing row, unchanged).
    plain = uuid.uuid4()
    await publish(identity, event(sch.ASSIGNMENT_CREATED, created(plain, identity.admin_id)))
    (row,) = await recorded(identity, "assignment", plain, 1)
    assert not {"over_quota", "request_id", "group_id"} & set(row["details"])


async def test_a_malformed_request_event_writes_nothing(identity: Identity) -> None:
    bad, good = uuid.uuid4(), uuid.uuid4()
    fields = ss.RequestDenied(**request_fields(bad, "denied"), reason="x").model_dump(mode="json")
    await publish(identity, event(ss.REQUEST_DENIED, {**fields, "gpus": "many"}))
    await publish(
        identity,
        event(ss.REQUEST_CANCELLED, ss.RequestCancelled(**request_fields(good, "cancelled")).model_dump(mode="json")),
    )
    assert [r["action"] for r in await recorded(identity, "request", good, 1)] == ["request.cancelled"]
    assert await rows_of(identity, "request", bad) == []
