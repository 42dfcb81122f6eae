"""Groups through the service: create, list, change, delete, members, membership and names; bad
inputs change nothing; every change leaves its audit row."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gpulab_core.contracts.groups import GROUP_DESCRIPTION_MAX
from gpulab_core.errors import RemoteError
from gpulab_devstack.testing import Stack

from .conftest import Identity
from .test_auth import make_user
from .test_invites import invite


def group_name(tag: str = "group") -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


async def create(identity: Identity, name: str, description: str = "") -> dict[str, Any]:
    body = {"actor_id": str(identity.admin_id), "name": name, "description": description}
    group: dict[str, Any] = await identity.call("groups.create", body)
    return group


async def member(identity: Identity, op: str, group_id: str, user_id: str) -> None:
    await identity.call(op, {"actor_id": str(identity.admin_id), "group_id": group_id, "user_id": user_id})


async def refused(identity: Identity, op: str, payload: dict[str, Any]) -> str:
    with pytest.raises(RemoteError) as err:
        await identity.call(op, payload)
    return err.value.code


async def audit_actions(identity: Identity, group_id: str) -> list[str]:
    page = await identity.call("audit.list", {"target_type": "group", "target_id": group_id})
    return [e["action"] for e in page["items"]]


async def test_create_get_update_list_and_delete(identity: Identity) -> None:
    name = group_name("vision")
    group = await create(identity, f"  {name} ", "the vision lab")
    assert group["name"] == name, "trimmed"
    assert group["description"] == "the vision lab"
    assert group["member_ids"] == []
    assert await identity.call("groups.get", {"id": group["id"]}) == group
    new_name = group_name("vision2")
    changed = await identity.call(
        "groups.update", {"actor_id": str(identity.admin_id), "id": group["id"], "name": new_name}
    )
    assert changed["name"] == new_name
    assert changed["description"] == "the vision lab"
    listed = await identity.call("groups.list", {"limit": 500})
    assert changed in listed["items"]
    await identity.call("groups.delete", {"actor_id": str(identity.admin_id), "id": group["id"]})
    assert await refused(identity, "groups.get", {"id": group["id"]}) == "not_found"
    assert group["id"] not in [g["id"] for g in (await identity.call("groups.list", {"limit": 500}))["items"]]
    # Deleted groups keep their name for usage rows; unknown ids are left out.
    names = await identity.call("groups.names", {"ids": [group["id"], str(uuid.uuid4())]})
    assert names == {"names": {group["id"]: new_name}}
    assert await audit_actions(identity, group["id"]) == ["group.deleted", "group.updated", "group.created"]
    # A deleted group's name may be taken again.
    assert (await create(identity, new_name))["name"] == new_name


async def test_members_are_idempotent_and_audited(identity: Identity, migrated: Stack) -> None:
    group = await create(identity, group_name())
    alice, _ = await make_user(identity, migrated)
    bob, _ = await make_user(identity, migrated)
    for user in (alice, bob, alice):
        await member(identity, "groups.add_member", group["id"], user)
    got = await identity.call("groups.get", {"id": group["id"]})
    assert got["member_ids"] == [alice, bob], "added once each, in order"
    assert (await identity.call("groups.of_user", {"user_id": alice}))["items"] == [got]
    ask = {"user_id": alice, "group_id": group["id"]}
    assert await identity.call("groups.membership", ask) == {
        "group_id": group["id"],
        "name": group["name"],
        "member": True,
    }
    await member(identity, "groups.remove_member", group["id"], alice)
    await member(identity, "groups.remove_member", group["id"], alice)  # not a member: nothing happens
    assert (await identity.call("groups.get", {"id": group["id"]}))["member_ids"] == [bob]
    assert (await identity.call("groups.membership", ask))["member"] is False
    assert (await identity.call("groups.of_user", {"user_id": alice}))["items"] == []
    actions = await audit_actions(identity, group["id"])
    assert actions == ["group.member_removed", "group.member_added", "group.member_added", "group.created"]
    # A deleted group has no members and no membership.
    await identity.call("groups.delete", {"actor_id": str(identity.admin_id), "id": group["id"]})
    assert await refused(identity, "groups.membership", {"user_id": bob, "group_id": group["id"]}) == "not_found"
    assert (await identity.call("groups.of_user", {"user_id": bob}))["items"] == []


async def test_invited_users_may_be_members(identity: Identity) -> None:
    group = await create(identity, group_name())
    user = await invite(identity, f"inv-{uuid.uuid4().hex[:8]}@example.org", "user")
    await member(identity, "groups.add_member", group["id"], str(user["id"]))
    assert (await identity.call("groups.get", {"id": group["id"]}))["member_ids"] == [str(user["id"])]


async def test_a_taken_name_is_refused_whatever_its_case(identity: Identity) -> None:
    name = group_name("Taken")
    first = await create(identity, name)
    assert (
        await refused(identity, "groups.create", {"actor_id": str(identity.admin_id), "name": name.lower()})
        == "group_exists"
    )
    other = await create(identity, group_name())
    rename = {"actor_id": str(identity.admin_id), "id": other["id"], "name": name.upper()}
    assert await refused(identity, "groups.update", rename) == "group_exists"
    assert (await identity.call("groups.get", {"id": other["id"]}))["name"] == other["name"]
    assert await audit_actions(identity, first["id"]) == ["group.created"]


async def test_bad_inputs_are_refused_and_change_nothing(identity: Identity, migrated: Stack) -> None:
    group = await create(identity, group_name())
    actor = str(identity.admin_id)
    user, _ = await make_user(identity, migrated)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("groups.create", {"actor_id": actor, "name": "   "}, "invalid_request"),
        ("groups.create", {"actor_id": actor, "name": ""}, "invalid_request"),
        ("groups.create", {"actor_id": actor, "name": "x" * 101}, "invalid_request"),
        (
            "groups.create",
            {"actor_id": actor, "name": group_name(), "description": "d" * (GROUP_DESCRIPTION_MAX + 1)},
            "invalid_request",
        ),
        ("groups.create", {"actor_id": actor, "name": group_name(), "colour": "red"}, "invalid_request"),
        ("groups.update", {"actor_id": actor, "id": group["id"]}, "invalid_request"),
        ("groups.update", {"actor_id": actor, "id": group["id"], "name": " "}, "invalid_request"),
        ("groups.update", {"actor_id": actor, "id": str(uuid.uuid4()), "name": "x"}, "not_found"),
        ("groups.get", {"id": "not-a-uuid"}, "invalid_request"),
        ("groups.delete", {"actor_id": actor, "id": str(uuid.uuid4())}, "not_found"),
        ("groups.add_member", {"actor_id": actor, "group_id": group["id"], "user_id": str(uuid.uuid4())}, "not_found"),
        ("groups.add_member", {"actor_id": actor, "group_id": str(uuid.uuid4()), "user_id": user}, "not_found"),
        (
            "groups.remove_member",
            {"actor_id": actor, "group_id": group["id"], "user_id": str(uuid.uuid4())},
            "not_found",
        ),
        ("groups.membership", {"user_id": user, "group_id": str(uuid.uuid4())}, "not_found"),
        ("groups.names", {"ids": [str(uuid.uuid4())] * 501}, "invalid_request"),
        ("groups.list", {"cursor": "garbage!"}, "invalid_request"),
    ]
    for op, payload, code in cases:
        assert await refused(identity, op, payload) == code, (op, payload)
    assert await identity.call("groups.get", {"id": group["id"]}) == group
    assert await audit_actions(identity, group["id"]) == ["group.created"]


async def test_list_pages_carry_each_groups_members(identity: Identity, migrated: Stack) -> None:
    made = [await create(identity, group_name("page")) for _ in range(3)]
    user, _ = await make_user(identity, migrated)
    for group in made:
        await member(identity, "groups.add_member", group["id"], user)
    seen: dict[str, list[str]] = {}
    cursor: str | None = None
    while True:
        page = await identity.call("groups.list", {"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen.update({g["id"]: g["member_ids"] for g in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert all(seen[g["id"]] == [user] for g in made)
