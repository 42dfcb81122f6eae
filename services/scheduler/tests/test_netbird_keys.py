"""Attack tests of issue 12's finding 7 (and finding 8's NetBird part): every view of the access page
minted a new NetBird setup key, the user's NetBird peers outlived the assignment, and no issuance was
audited. The scheduler and identity run for real; NetBird is the fake of its documented API that the
cluster's schedulers are configured with (conftest.lab_netbird)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gpulab_devstack.testing import wait_until

from .conftest import NETBIRD_LAB_GROUP, Cluster
from .fake_netbird import EnrollmentRefused, FakeNetBird

# How long a check waits for the scheduler's sweep (0.3 s in the tests) and a busy 2-core machine.
WAIT_S = 30.0


async def netbird_assignment(cluster: Cluster, **fields: Any) -> tuple[dict[str, Any], uuid.UUID]:
    node = await cluster.node(1)
    env = await cluster.environment([node], tunnel_provider="netbird")
    user = await cluster.user()
    return await cluster.assign(user, env, 1, **fields), user


async def view(cluster: Cluster, made: dict[str, Any], user: uuid.UUID) -> dict[str, Any]:
    """What the user's access page asks for (`GET /me/assignments/{id}/access`)."""
    access: dict[str, Any] = await cluster.call("assignments.access", {"id": made["id"], "user_id": str(user)})
    return access


def keys_of(netbird: FakeNetBird, made: dict[str, Any]) -> list[dict[str, Any]]:
    return [k for k in netbird.keys.values() if made["id"] in k["name"]]


async def audit_rows(cluster: Cluster, made: dict[str, Any]) -> list[dict[str, Any]]:
    page = await cluster.rpc.call(
        "identity", "audit.list", {"target_type": "assignment", "target_id": made["id"], "limit": 100}
    )
    rows: list[dict[str, Any]] = page["items"]
    return rows


async def test_viewing_the_access_page_twice_mints_one_netbird_key(cluster: Cluster) -> None:
    made, user = await netbird_assignment(cluster)

    first = await view(cluster, made, user)
    second = await view(cluster, made, user)

    assert len(keys_of(cluster.netbird, made)) == 1
    assert second == first


async def test_views_at_the_same_time_mint_one_netbird_key(cluster: Cluster) -> None:
    made, user = await netbird_assignment(cluster)

    seen = await asyncio.gather(*(view(cluster, made, user) for _ in range(5)))

    assert len(keys_of(cluster.netbird, made)) == 1
    assert {a["setup_key"] for a in seen} == {seen[0]["setup_key"]}


async def test_the_netbird_key_is_one_off_short_lived_and_refused_once_used(cluster: Cluster) -> None:
    made, user = await netbird_assignment(cluster, expires_at=(datetime.now(UTC) + timedelta(days=7)).isoformat())

    access = await view(cluster, made, user)

    [key] = keys_of(cluster.netbird, made)
    assert (key["type"], key["usage_limit"]) == ("one-off", 1)
    assert datetime.fromisoformat(access["expires_at"]) <= datetime.now(UTC) + timedelta(hours=1, seconds=5)
    cluster.netbird.enroll(access["setup_key"], "ada-laptop")
    with pytest.raises(EnrollmentRefused, match="overused"):
        cluster.netbird.enroll(access["setup_key"], "mallory-laptop")


async def test_a_used_or_expired_key_is_replaced_and_the_old_one_deleted(cluster: Cluster) -> None:
    made, user = await netbird_assignment(cluster)
    netbird = cluster.netbird

    unused = await view(cluster, made, user)
    netbird.advance(3601)  # past the key's hour: NetBird says `expired`
    fresh = await view(cluster, made, user)
    netbird.enroll(fresh["setup_key"], "ada-laptop")
    after_use = await view(cluster, made, user)

    assert len({unused["setup_key"], fresh["setup_key"], after_use["setup_key"]}) == 3
    # One key at a time: the expired and the used one are gone from NetBird.
    assert [k["key"] for k in keys_of(netbird, made)] == [after_use["setup_key"]]
    assert await view(cluster, made, user) == after_use


async def test_a_revoked_assignment_loses_its_netbird_peers_and_keys(cluster: Cluster) -> None:
    made, user = await netbird_assignment(cluster)
    netbird = cluster.netbird
    first = await view(cluster, made, user)
    laptop = netbird.enroll(first["setup_key"], "ada-laptop")
    second = await view(cluster, made, user)  # the first was used: a new one, not yet used
    other_made, other_user = await netbird_assignment(cluster)
    bystander = netbird.enroll((await view(cluster, other_made, other_user))["setup_key"], "bob-laptop")
    assert NETBIRD_LAB_GROUP in netbird.peers[laptop]["groups"]

    await cluster.call("assignments.revoke", {"id": made["id"]})

    await wait_until(lambda: laptop not in netbird.peers and not keys_of(netbird, made), timeout_s=WAIT_S)
    with pytest.raises(EnrollmentRefused):
        netbird.enroll(second["setup_key"], "mallory-laptop")
    assert bystander in netbird.peers  # another assignment's peer stays
    with pytest.raises(Exception, match="assignment_not_active|has revoked"):
        await view(cluster, made, user)


async def test_an_expired_assignment_loses_its_netbird_peers_and_keys(cluster: Cluster) -> None:
    ends = datetime.now(UTC) + timedelta(seconds=5)
    made, user = await netbird_assignment(cluster, expires_at=ends.isoformat())
    netbird = cluster.netbird
    access = await view(cluster, made, user)
    laptop = netbird.enroll(access["setup_key"], "ada-laptop")

    await wait_until(lambda: laptop not in netbird.peers and not keys_of(netbird, made), timeout_s=WAIT_S)


async def test_netbird_key_issuance_and_removal_are_in_the_audit_log(cluster: Cluster) -> None:
    made, user = await netbird_assignment(cluster)
    access = await view(cluster, made, user)
    cluster.netbird.enroll(access["setup_key"], "ada-laptop")
    [key] = keys_of(cluster.netbird, made)

    async def issued() -> list[dict[str, Any]]:
        return [r for r in await audit_rows(cluster, made) if r["action"] == "assignment.netbird_key_issued"]

    await wait_until(issued, timeout_s=WAIT_S)
    [row] = await issued()
    assert row["actor_id"] == str(user)
    assert row["details"]["setup_key_id"] == key["id"]
    assert datetime.fromisoformat(row["details"]["expires_at"]) == datetime.fromisoformat(access["expires_at"])
    assert access["setup_key"] not in str(row)  # the secret itself is never written down

    await cluster.call("assignments.revoke", {"id": made["id"]})

    async def removed() -> list[dict[str, Any]]:
        return [r for r in await audit_rows(cluster, made) if r["action"] == "assignment.netbird_access_removed"]

    await wait_until(removed, timeout_s=WAIT_S)
    [gone] = await removed()
    assert gone["details"]["peers_removed"] == 1
    assert gone["details"]["setup_keys_removed"] == 1


async def test_netbird_down_at_the_revoke_removes_the_peers_once_it_is_back(cluster: Cluster) -> None:
    made, user = await netbird_assignment(cluster)
    netbird = cluster.netbird
    laptop = netbird.enroll((await view(cluster, made, user))["setup_key"], "ada-laptop")
    netbird.fail_with(503, "<html>maintenance</html>", "text/html")
    try:
        before = len(netbird.requests)
        await cluster.call("assignments.revoke", {"id": made["id"]})
        await wait_until(lambda: len(netbird.requests) > before + 1, timeout_s=WAIT_S)  # tried, and tried again
        assert laptop in netbird.peers  # NetBird refused: nothing was removed, nothing is marked removed
    finally:
        netbird.recover()

    await wait_until(lambda: laptop not in netbird.peers and not keys_of(netbird, made), timeout_s=WAIT_S)
