"""Groups through the REST API, with identity and the scheduler running for real: the admin's CRUD
and members, the user's own groups, bad inputs, and a group in use that cannot be deleted."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import text

from gpulab_core import db
from gpulab_core.contracts.groups import GROUP_DESCRIPTION_MAX
from gpulab_devstack.testing import Stack, wait_until

from .conftest import Browser, UserFactory
from .test_allocation_api import environment, online_node, scheduler, user_with_key

__all__ = ["scheduler"]  # the fixture, used below by name


async def new_group(admin: Browser, **fields: Any) -> dict[str, Any]:
    created = await admin.post("/groups", json={"name": f"lab-{uuid.uuid4().hex[:8]}", **fields})
    assert created.status_code == 201, created.text
    group: dict[str, Any] = created.json()
    return group


async def test_admin_manages_groups_and_members_and_users_see_their_own(admin: Browser, new_user: UserFactory) -> None:
    user = await new_user()
    group = await new_group(admin, description="vision")
    assert set(group) == {"id", "name", "description", "member_ids", "created_at"}
    gid = group["id"]
    for _ in range(2):  # adding a member again changes nothing
        assert (await admin.post(f"/groups/{gid}/members", json={"user_id": user.user_id})).status_code == 204
    got = (await admin.get(f"/groups/{gid}")).json()
    assert got["member_ids"] == [user.user_id]
    mine = (await user.get("/me/groups")).json()
    assert mine == {"items": [got], "next_cursor": None}
    renamed = await admin.patch(f"/groups/{gid}", json={"name": group["name"] + "-b"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == group["name"] + "-b"
    listed = (await admin.get("/groups?limit=500")).json()["items"]
    assert renamed.json() in listed
    assert (await admin.delete(f"/groups/{gid}/members/{user.user_id}")).status_code == 204
    assert (await user.get("/me/groups")).json()["items"] == []
    audit = (await admin.get(f"/audit-log?target_type=group&target_id={gid}")).json()["items"]
    assert [e["action"] for e in audit] == [
        "group.member_removed",
        "group.updated",
        "group.member_added",
        "group.created",
    ]


async def test_bad_inputs_get_clear_errors_and_change_nothing(admin: Browser, new_user: UserFactory) -> None:
    user = await new_user()
    group = await new_group(admin)
    gid, ghost = group["id"], str(uuid.uuid4())
    cases: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
        ("POST", "/groups", {"name": group["name"].upper()}, 409, "group_exists"),
        ("POST", "/groups", {"name": "x", "description": "d" * (GROUP_DESCRIPTION_MAX + 1)}, 422, "invalid_request"),
        ("POST", "/groups", {"name": ""}, 422, "invalid_request"),
        ("POST", "/groups", {"name": "x", "owner": "me"}, 422, "invalid_request"),
        ("PATCH", f"/groups/{gid}", {}, 422, "invalid_request"),
        ("PATCH", f"/groups/{ghost}", {"name": "y"}, 404, "not_found"),
        ("GET", "/groups/not-a-uuid", None, 422, "invalid_request"),
        ("GET", f"/groups/{ghost}", None, 404, "not_found"),
        ("DELETE", f"/groups/{ghost}", None, 404, "not_found"),
        ("POST", f"/groups/{gid}/members", {"user_id": ghost}, 404, "not_found"),
        ("POST", f"/groups/{gid}/members", {"user_id": "nope"}, 422, "invalid_request"),
        ("POST", f"/groups/{ghost}/members", {"user_id": user.user_id}, 404, "not_found"),
        ("DELETE", f"/groups/{gid}/members/{ghost}", None, 404, "not_found"),
    ]
    for method, path, body, status, code in cases:
        headers = admin.write_headers() if method != "GET" else {}
        reply = await admin.client.request(method, "/api/v1" + path, json=body, headers=headers)
        assert (reply.status_code, reply.json()["code"]) == (status, code), (method, path, reply.text)
    assert (await admin.get(f"/groups/{gid}")).json() == group
    # A user is no admin.
    assert (await user.get("/groups")).status_code == 403


@pytest.mark.usefixtures("scheduler")
async def test_a_group_with_an_active_assignment_is_in_use(
    nc: NATS, migrated: Stack, admin: Browser, new_user: UserFactory, tmp_path: Path
) -> None:
    group = await new_group(admin)
    env = await environment(admin, await online_node(nc))
    user = await user_with_key(new_user, tmp_path)
    body = {"user_id": user.user_id, "environment_id": env["id"], "gpus": 1, "placement": "dynamic"}

    async def made() -> bool:
        reply = await admin.post("/assignments", json=body)
        made.id = reply.json().get("id")  # type: ignore[attr-defined]
        return reply.status_code == 201

    await wait_until(made, timeout_s=15)
    assignment_id = made.id  # type: ignore[attr-defined]
    # Charged as the scheduler charges a granted request (its own column; no RPC sets it yet).
    engine = db.create_engine(migrated.database_url, schema=None, app_name="test")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE scheduler.assignments SET group_id = :g WHERE id = :a"),
                {"g": group["id"], "a": assignment_id},
            )
    finally:
        await engine.dispose()
    refused = await admin.delete(f"/groups/{group['id']}")
    assert (refused.status_code, refused.json()["code"]) == (409, "group_in_use")
    assert (await admin.get(f"/groups/{group['id']}")).status_code == 200
    assert (await admin.post(f"/assignments/{assignment_id}/revoke")).status_code == 200
    assert (await admin.delete(f"/groups/{group['id']}")).status_code == 204
    assert (await admin.get(f"/groups/{group['id']}")).status_code == 404
