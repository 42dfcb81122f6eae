"""Self-service through the real scheduler (two replicas) and identity: requests in `auto` and
`approval` Environments, quotas and their refusals, cancel, deny, extensions and releases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gpulab_devstack.testing import wait_until

from .conftest import Cluster
from .selfservice_support import admin, group, quota, submit


async def test_an_auto_request_that_fits_is_granted_at_once(cluster: Cluster) -> None:
    node = await cluster.node(4)
    env = await cluster.environment([node], self_service="auto", max_hours=48)
    user, boss = await cluster.user(), await admin(cluster)
    lab = await group(cluster, boss, user)
    before = datetime.now(UTC)
    made = await submit(cluster, user, env, 2, 5, group_id=str(lab), note="training run")
    assert made["status"] == "granted"
    assert made["position"] is None
    assert made["kind"] == "new"
    assignment = await cluster.call("assignments.get", {"id": made["assignment_id"]})
    assert assignment["request_id"] == made["id"]
    assert assignment["group_id"] == str(lab)
    assert len(assignment["gpus"]) == 2
    assert assignment["status"] == "active"
    expires = datetime.fromisoformat(assignment["expires_at"])
    assert before + timedelta(hours=5) <= expires <= datetime.now(UTC) + timedelta(hours=5)
    mine = await cluster.call("requests.list", {"user_id": str(user)})
    assert [r["id"] for r in mine["items"]] == [made["id"]]


async def test_refusals_name_the_rule_and_change_nothing(cluster: Cluster) -> None:
    node = await cluster.node(4)
    off = await cluster.environment([node])
    env = await cluster.environment([node], self_service="auto", max_hours=8)
    user, keyless, boss = await cluster.user(), await cluster.user(with_key=False), await admin(cluster)
    lab = await group(cluster, boss)  # the user is not in it
    cases = [
        ({"environment_id": off["id"]}, "self_service_off"),
        ({"hours": 9}, "too_long"),
        ({"group_id": str(lab)}, "not_a_member"),
        ({"group_id": str(uuid.uuid4())}, "not_a_member"),
        ({"environment_id": str(uuid.uuid4())}, "not_found"),
        ({"gpus": 0}, "invalid_request"),
        ({"hours": 0}, "invalid_request"),
        ({"note": "x" * 1001}, "invalid_request"),
    ]
    for change, code in cases:
        body = {"user_id": str(user), "environment_id": env["id"], "gpus": 1, "hours": 1, **change}
        assert (await cluster.error("requests.submit", body)).code == code, change
    body = {"user_id": str(keyless), "environment_id": env["id"], "gpus": 1, "hours": 1}
    assert (await cluster.error("requests.submit", body)).code == "user_has_no_ssh_key"
    assert (await cluster.call("requests.list", {"user_id": str(user)}))["items"] == []
    assert await cluster.held() == [h for h in await cluster.held() if h[0] != str(node)]


async def test_quotas_refuse_with_the_limit_and_what_is_left(cluster: Cluster) -> None:
    node = await cluster.node(8)
    env = await cluster.environment([node], self_service="auto")
    user, boss = await cluster.user(), await admin(cluster)
    set_ = await quota(cluster, boss, "user", user, max_gpus=3, max_hours=10, gpu_hours_per_month=None)
    assert set_["max_gpus"] == 3
    assert set_["used"] == {"gpus_now": 0, "gpu_hours_this_month": 0.0}
    await submit(cluster, user, env, 2, 1)
    refused = await cluster.error(
        "requests.submit", {"user_id": str(user), "environment_id": env["id"], "gpus": 2, "hours": 1}
    )
    assert refused.code == "quota_exceeded"
    assert refused.details["limit"] == "max_gpus"
    assert refused.details["left"] == 1
    assert "3 GPU(s) at once: 2 held, so 1 left; 2 asked for" in refused.message
    too_long = await cluster.error(
        "requests.submit", {"user_id": str(user), "environment_id": env["id"], "gpus": 1, "hours": 11}
    )
    assert too_long.code == "too_long"
    assert too_long.details["limit"] == "max_hours"
    # The group's quota counts too: the user's allows it, the group's monthly GPU-hours do not.
    lab = await group(cluster, boss, user)
    await quota(cluster, boss, "group", lab, gpu_hours_per_month=5)
    body = {"user_id": str(user), "environment_id": env["id"], "gpus": 1, "hours": 6, "group_id": str(lab)}
    monthly = await cluster.error("requests.submit", body)
    assert monthly.code == "quota_exceeded"
    assert monthly.details["limit"] == "gpu_hours_per_month"
    assert monthly.details["subject_type"] == "group"
    assert monthly.details["left"] == 5
    assert "so 5 left; this asks for 6" in monthly.message
    mine = await cluster.call("quotas.mine", {"user_id": str(user), "group_ids": [str(lab)]})
    assert mine["user"]["used"]["gpus_now"] == 2
    assert 1.99 <= mine["user"]["used"]["gpu_hours_this_month"] <= 2.0  # 2 GPUs booked for 1 h
    assert mine["groups"][0]["gpu_hours_per_month"] == 5
    listed = await cluster.call("quotas.list", {})
    assert {(q["subject_type"], q["subject_id"]) for q in listed["items"]} >= {("user", str(user)), ("group", str(lab))}


async def test_admins_may_exceed_a_quota_and_the_audit_log_says_so(cluster: Cluster) -> None:
    node = await cluster.node(4)
    env = await cluster.environment([node])
    user, boss = await cluster.user(), await admin(cluster)
    await quota(cluster, boss, "user", user, max_gpus=1)
    made = await cluster.assign(user, env, 3, actor_id=str(boss))

    async def audited() -> dict[str, object] | None:
        page = await cluster.rpc.call("identity", "audit.list", {"target_id": made["id"], "limit": 10})
        rows = [r for r in page["items"] if r["action"] == "assignment.created"]
        return rows[0]["details"] if rows else None

    await wait_until(audited, timeout_s=15)
    details = await audited()
    assert details is not None
    assert "3 GPUs held, quota 1" in str(details.get("over_quota"))


async def test_approval_approve_deny_and_cancel(cluster: Cluster) -> None:
    node = await cluster.node(4)
    env = await cluster.environment([node], self_service="approval")
    user, boss = await cluster.user(), await admin(cluster)
    first = await submit(cluster, user, env, 1, 2)
    assert first["status"] == "pending_approval"
    approved = await cluster.call("requests.approve", {"id": first["id"], "actor_id": str(boss)})
    assert approved["status"] == "granted"
    assert approved["assignment_id"]
    assert approved["decided_at"]
    again = await cluster.error("requests.approve", {"id": first["id"], "actor_id": str(boss)})
    assert again.code == "request_not_open"
    second = await submit(cluster, user, env, 1, 2)
    denied = await cluster.call("requests.deny", {"id": second["id"], "actor_id": str(boss), "reason": "use the A100s"})
    assert denied["status"] == "denied"
    assert denied["reason"] == "use the A100s"
    third = await submit(cluster, user, env, 1, 2)
    cancelled = await cluster.call("requests.cancel", {"id": third["id"], "user_id": str(user)})
    assert cancelled["status"] == "cancelled"
    assert (
        await cluster.error("requests.cancel", {"id": third["id"], "user_id": str(user)})
    ).code == "request_not_open"
    other = await cluster.user()
    assert (await cluster.error("requests.cancel", {"id": first["id"], "user_id": str(other)})).code == "not_found"
    pending = await cluster.call("requests.list", {"environment_id": env["id"], "status": "granted"})
    assert [r["id"] for r in pending["items"]] == [first["id"]]


async def test_extend_within_the_rules_and_others_waiting(cluster: Cluster) -> None:
    node = await cluster.node(2)
    env = await cluster.environment([node], self_service="auto", max_hours=4)
    user, other = await cluster.user(), await cluster.user()
    made = await submit(cluster, user, env, 2, 2)
    before = await cluster.call("assignments.get", {"id": made["assignment_id"]})
    extended = await cluster.call("assignments.extend", {"id": made["assignment_id"], "user_id": str(user), "hours": 1})
    after = extended["assignment"]
    assert datetime.fromisoformat(after["expires_at"]) - datetime.fromisoformat(before["expires_at"]) == timedelta(
        hours=1
    )
    too_long = await cluster.error(
        "assignments.extend", {"id": made["assignment_id"], "user_id": str(user), "hours": 2}
    )
    assert too_long.code == "too_long"  # 3 h + 2 h > 4 h
    queued = await submit(cluster, other, env, 1, 1)
    assert queued["status"] == "queued"
    assert queued["position"] == 1
    waiting = await cluster.error("assignments.extend", {"id": made["assignment_id"], "user_id": str(user), "hours": 1})
    assert waiting.code == "others_waiting"
    stranger = await cluster.error(
        "assignments.extend", {"id": made["assignment_id"], "user_id": str(other), "hours": 1}
    )
    assert stranger.code == "not_found"
    await cluster.call("requests.cancel", {"id": queued["id"], "user_id": str(other)})


async def test_an_extension_in_an_approval_environment_waits_for_an_admin(cluster: Cluster) -> None:
    node = await cluster.node(2)
    env = await cluster.environment([node], self_service="approval")
    user, boss = await cluster.user(), await admin(cluster)
    first = await submit(cluster, user, env, 1, 1)
    granted = await cluster.call("requests.approve", {"id": first["id"], "actor_id": str(boss)})
    reply = await cluster.call("assignments.extend", {"id": granted["assignment_id"], "user_id": str(user), "hours": 3})
    assert reply["assignment"] is None
    assert reply["request"]["kind"] == "extension"
    assert reply["request"]["status"] == "pending_approval"
    before = await cluster.call("assignments.get", {"id": granted["assignment_id"]})
    done = await cluster.call("requests.approve", {"id": reply["request"]["id"], "actor_id": str(boss)})
    assert done["status"] == "granted"
    assert done["assignment_id"] == granted["assignment_id"]
    after = await cluster.call("assignments.get", {"id": granted["assignment_id"]})
    assert datetime.fromisoformat(after["expires_at"]) - datetime.fromisoformat(before["expires_at"]) == timedelta(
        hours=3
    )


@pytest.mark.parametrize("ended", ["released", "revoked"])
async def test_freed_gpus_go_to_the_queue_at_once(cluster: Cluster, ended: str) -> None:
    node = await cluster.node(2)
    env = await cluster.environment([node], self_service="auto")
    holder, waiter, boss = await cluster.user(), await cluster.user(), await admin(cluster)
    held = await submit(cluster, holder, env, 2, 8)
    queued = await submit(cluster, waiter, env, 2, 1)
    assert queued["status"] == "queued"
    assert queued["position"] == 1
    assert queued["estimated_start_at"] is not None
    assert datetime.fromisoformat(queued["estimated_start_at"]) > datetime.now(UTC) + timedelta(hours=7)
    assert (
        await cluster.error("assignments.release", {"id": held["assignment_id"], "user_id": str(waiter)})
    ).code == "not_found"
    if ended == "released":
        gone = await cluster.call("assignments.release", {"id": held["assignment_id"], "user_id": str(holder)})
        assert gone["status"] == "released"
        assert gone["ended_at"]
        again = await cluster.error("assignments.release", {"id": held["assignment_id"], "user_id": str(holder)})
        assert again.code == "assignment_not_active"
    else:
        await cluster.call("assignments.revoke", {"id": held["assignment_id"], "actor_id": str(boss)})
    started = datetime.now(UTC)

    async def granted() -> bool:
        rows = await cluster.call("requests.list", {"user_id": str(waiter)})
        return bool(rows["items"][0]["status"] == "granted")

    await wait_until(granted, timeout_s=2, interval_s=0.05)
    assert datetime.now(UTC) - started < timedelta(seconds=2)
