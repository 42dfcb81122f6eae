"""Self-service through the REST API (API.md "Self-service and fair use"), with identity and the
scheduler running for real: requests granted, queued and decided, quotas and their refusals as
problems, extend and release, what a user may request."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from gpulab_devstack.testing import wait_until

from .conftest import Browser, UserFactory
from .test_allocation_api import environment, online_node, user_with_key
from .test_allocation_api import scheduler as scheduler  # noqa: PLC0414 (the module's fixture, shared)

pytestmark = pytest.mark.usefixtures("scheduler")


async def test_a_user_requests_is_queued_and_gets_the_gpus_released(
    nc: NATS, admin: Browser, new_user: UserFactory, tmp_path: Path
) -> None:
    node = await online_node(nc, gpus=2)
    env = await environment(admin, node, self_service="auto", max_hours=24)
    ada, bob = await user_with_key(new_user, tmp_path), await user_with_key(new_user, tmp_path)
    offers = (await ada.get("/me/environments")).json()["items"]
    offer = next(o for o in offers if o["id"] == env["id"])
    assert offer["gpus_free"] == 2
    assert offer["self_service"] == "auto"
    estimate = (await ada.get(f"/me/environments/{env['id']}/estimate", params={"gpus": 2, "hours": 3})).json()
    assert estimate == {"fits_now": True, "position": 1, "estimated_start_at": None}
    made = await ada.post("/me/requests", json={"environment_id": env["id"], "gpus": 2, "hours": 3})
    assert made.status_code == 201, made.text
    granted = made.json()
    assert granted["status"] == "granted"
    waiting = await bob.post("/me/requests", json={"environment_id": env["id"], "gpus": 1, "hours": 1})
    assert waiting.status_code == 201
    assert waiting.json()["status"] == "queued"
    assert waiting.json()["position"] == 1
    assert datetime.fromisoformat(waiting.json()["estimated_start_at"]) > datetime.fromisoformat(granted["created_at"])
    mine = (await bob.get("/me/requests")).json()["items"]
    assert [r["id"] for r in mine] == [waiting.json()["id"]]
    # Extending while someone waits: refused.
    refused = await ada.post(f"/me/assignments/{granted['assignment_id']}/extend", json={"hours": 1})
    assert refused.status_code == 409
    assert refused.json()["code"] == "others_waiting"
    # Bob cannot release Ada's; Ada releases, Bob's request is granted.
    assert (await bob.post(f"/me/assignments/{granted['assignment_id']}/release")).status_code == 404
    released = await ada.post(f"/me/assignments/{granted['assignment_id']}/release")
    assert released.status_code == 200
    assert released.json()["status"] == "released"

    async def bobs_granted() -> bool:
        return bool((await bob.get("/me/requests")).json()["items"][0]["status"] == "granted")

    await wait_until(bobs_granted, timeout_s=2, interval_s=0.05)
    # No one waits now: Bob extends his.
    bobs = (await bob.get("/me/requests")).json()["items"][0]
    extended = await bob.post(f"/me/assignments/{bobs['assignment_id']}/extend", json={"hours": 2})
    assert extended.status_code == 200, extended.text
    assert extended.json()["request_id"] == bobs["id"]


async def test_refusals_are_problems_that_say_why(
    nc: NATS, admin: Browser, new_user: UserFactory, tmp_path: Path
) -> None:
    node = await online_node(nc, gpus=4)
    off = await environment(admin, node)
    env = await environment(admin, node, self_service="auto", max_hours=8)
    ada = await user_with_key(new_user, tmp_path)
    keyless = await new_user()
    quota = await admin.put(f"/quotas/users/{ada.user_id}", json={"max_gpus": 1})
    assert quota.status_code == 200, quota.text
    assert quota.json()["max_gpus"] == 1
    assert quota.json()["gpu_hours_per_month"] is None
    cases = [
        (ada, {"environment_id": off["id"], "gpus": 1, "hours": 1}, 403, "self_service_off"),
        (ada, {"environment_id": env["id"], "gpus": 2, "hours": 1}, 409, "quota_exceeded"),
        (ada, {"environment_id": env["id"], "gpus": 1, "hours": 9}, 422, "too_long"),
        (ada, {"environment_id": env["id"], "gpus": 1, "hours": 1, "group_id": str(uuid.uuid4())}, 422, "not_a_member"),
        (keyless, {"environment_id": env["id"], "gpus": 1, "hours": 1}, 422, "user_has_no_ssh_key"),
        (ada, {"environment_id": env["id"], "gpus": "two", "hours": 1}, 422, "invalid_request"),
        (ada, {"environment_id": env["id"], "gpus": 1}, 422, "invalid_request"),
        (ada, {"environment_id": str(uuid.uuid4()), "gpus": 1, "hours": 1}, 404, "not_found"),
    ]
    for who, body, status, code in cases:
        reply = await who.post("/me/requests", json=body)
        assert (reply.status_code, reply.json()["code"]) == (status, code), (body, reply.text)
    over = await ada.post("/me/requests", json={"environment_id": env["id"], "gpus": 2, "hours": 1})
    assert "allows 1 GPU(s) at once: 0 held, so 1 left; 2 asked for" in over.json()["detail"]
    assert (await ada.get("/me/requests")).json()["items"] == []
    # Quotas for users and groups that do not exist: 404; a user cannot set one.
    assert (await admin.put(f"/quotas/users/{uuid.uuid4()}", json={"max_gpus": 1})).status_code == 404
    assert (await admin.put(f"/quotas/groups/{uuid.uuid4()}", json={"max_gpus": 1})).status_code == 404
    assert (await admin.put(f"/quotas/users/{ada.user_id}", json={"max_gpus": -1})).status_code == 422
    assert (await ada.put(f"/quotas/users/{ada.user_id}", json={"max_gpus": 9})).status_code == 403
    assert (await ada.get("/requests")).status_code == 403
    mine = (await ada.get("/me/quota")).json()
    assert mine["user"]["max_gpus"] == 1
    assert mine["groups"] == []


async def test_an_admin_approves_or_denies_in_the_inbox(
    nc: NATS, admin: Browser, new_user: UserFactory, tmp_path: Path
) -> None:
    node = await online_node(nc, gpus=2)
    env = await environment(admin, node, self_service="approval")
    ada = await user_with_key(new_user, tmp_path)
    group = (await admin.post("/groups", json={"name": f"lab-{uuid.uuid4().hex[:6]}"})).json()
    assert (await admin.post(f"/groups/{group['id']}/members", json={"user_id": ada.user_id})).status_code == 204
    assert (await admin.put(f"/quotas/groups/{group['id']}", json={"gpu_hours_per_month": 100})).status_code == 200
    first = (
        await ada.post(
            "/me/requests",
            json={"environment_id": env["id"], "gpus": 1, "hours": 2, "group_id": group["id"], "note": "x"},
        )
    ).json()
    second = (await ada.post("/me/requests", json={"environment_id": env["id"], "gpus": 1, "hours": 2})).json()
    assert first["status"] == second["status"] == "pending_approval"
    inbox = (await admin.get("/requests", params={"status": "pending_approval", "environment_id": env["id"]})).json()
    assert [r["id"] for r in inbox["items"]] == [first["id"], second["id"]]
    approved = await admin.post(f"/requests/{first['id']}/approve")
    assert approved.status_code == 200
    assert approved.json()["status"] == "granted"
    assert (await admin.post(f"/requests/{second['id']}/deny", json={})).status_code == 422
    denied = await admin.post(f"/requests/{second['id']}/deny", json={"reason": "one at a time"})
    assert denied.json()["reason"] == "one at a time"
    again = await admin.post(f"/requests/{second['id']}/approve")
    assert (again.status_code, again.json()["code"]) == (409, "request_not_open")
    # An extension here waits for an admin: 202 with the request.
    extension = await ada.post(f"/me/assignments/{approved.json()['assignment_id']}/extend", json={"hours": 1})
    assert extension.status_code == 202, extension.text
    assert extension.json()["kind"] == "extension"
    quota = (await ada.get("/me/quota")).json()
    assert quota["groups"][0]["subject_id"] == group["id"]
    assert quota["groups"][0]["used"]["gpu_hours_this_month"] > 1.9  # 1 GPU booked for 2 h
    listed = (await admin.get("/quotas")).json()["items"]
    assert any(q["subject_id"] == group["id"] for q in listed)
