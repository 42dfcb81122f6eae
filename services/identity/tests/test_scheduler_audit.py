"""The scheduler's environment and assignment events reach the audit log, once each."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from gpulab_core.contracts import scheduler as sch
from gpulab_devstack.testing import wait_until

from .conftest import Identity
from .test_node_audit import OCCURRED, chain_intact, event, publish


async def rows_of(identity: Identity, target_type: str, target_id: uuid.UUID) -> list[dict[str, Any]]:
    """Newest first, as audit.list gives them."""
    page = await identity.call("audit.list", {"target_type": target_type, "target_id": str(target_id), "limit": 500})
    items: list[dict[str, Any]] = page["items"]
    return items


async def recorded(identity: Identity, target_type: str, target_id: uuid.UUID, count: int) -> list[dict[str, Any]]:
    async def enough() -> bool:
        return len(await rows_of(identity, target_type, target_id)) >= count

    await wait_until(enough, timeout_s=20)
    return await rows_of(identity, target_type, target_id)


def environment_event(env_id: uuid.UUID, actor_id: uuid.UUID | None, **changes: object) -> dict[str, Any]:
    payload = sch.EnvironmentEvent(environment_id=env_id, name="a100-pool", actor_id=actor_id, changes=changes)
    return payload.model_dump(mode="json")


def node_event(env_id: uuid.UUID, node_id: uuid.UUID, actor_id: uuid.UUID | None) -> dict[str, Any]:
    payload = sch.EnvironmentNodeEvent(
        environment_id=env_id, environment_name="a100-pool", node_id=node_id, actor_id=actor_id
    )
    return payload.model_dump(mode="json")


def created(assignment_id: uuid.UUID, actor_id: uuid.UUID | None, ssh_key: str = "ssh-ed25519 AAAA k") -> Any:
    return sch.AssignmentCreated(
        assignment_id=assignment_id,
        user_id=uuid.UUID(int=7),
        user_email="ada@example.org",
        environment_id=uuid.UUID(int=8),
        environment_name="a100-pool",
        node_id=uuid.UUID(int=9),
        node_hostname="gpu-01.lab",
        placement="dynamic",
        linux_username="gl_ada",
        ssh_public_keys=[ssh_key],
        enforcement_mode="cgroup",
        gpus=[sch.EventGpu(index=0, uuid="GPU-aaaa"), sch.EventGpu(index=3, uuid="GPU-dddd")],
        cpus=16,
        ram_mb=65536,
        expires_at=OCCURRED + timedelta(days=7),
        actor_id=actor_id,
    ).model_dump(mode="json")


def ended(assignment_id: uuid.UUID, reason: sch.EndReason, actor_id: uuid.UUID | None) -> dict[str, Any]:
    payload = sch.AssignmentEnded(
        assignment_id=assignment_id,
        user_id=uuid.UUID(int=7),
        user_email="ada@example.org",
        node_id=uuid.UUID(int=9),
        node_hostname="gpu-01.lab",
        reason=reason,
        ended_at=OCCURRED,
        actor_id=actor_id,
    )
    return payload.model_dump(mode="json")


async def test_environment_events_make_one_row_each_on_the_environment(identity: Identity) -> None:
    env_id, node_id, admin = uuid.uuid4(), uuid.uuid4(), identity.admin_id
    made = environment_event(env_id, admin, name="a100-pool", enforcement_mode="cgroup", default_cpus=8)
    # A field the environment does not have (a producer's mistake) is not copied into the log.
    changed = environment_event(env_id, admin, default_expiry_hours=48, netbird_api_token="secret-token")
    for i, (event_type, data) in enumerate(
        [
            (sch.ENVIRONMENT_CREATED, made),
            (sch.ENVIRONMENT_UPDATED, changed),
            (sch.NODE_ATTACHED, node_event(env_id, node_id, admin)),
            (sch.NODE_DETACHED, node_event(env_id, node_id, None)),
            (sch.ENVIRONMENT_DELETED, environment_event(env_id, admin)),
        ]
    ):
        await publish(identity, event(event_type, data, occurred_at=OCCURRED + timedelta(minutes=i)))

    rows = list(reversed(await recorded(identity, "environment", env_id, 5)))
    assert [r["action"] for r in rows] == [
        "environment.created",
        "environment.updated",
        "environment.node_attached",
        "environment.node_detached",
        "environment.deleted",
    ]
    assert all(r["target_id"] == str(env_id) for r in rows)
    assert [r["details"] for r in rows] == [
        {"name": "a100-pool", "changes": {"name": "a100-pool", "enforcement_mode": "cgroup", "default_cpus": 8}},
        {"name": "a100-pool", "changes": {"default_expiry_hours": 48}},
        {"node_id": str(node_id), "environment_name": "a100-pool"},
        {"node_id": str(node_id), "environment_name": "a100-pool"},
        {"name": "a100-pool", "changes": {}},
    ]
    assert [(r["actor_id"], r["actor_email"]) for r in rows] == [(str(admin), identity.admin_email)] * 3 + [
        (None, None),
        (str(admin), identity.admin_email),
    ]
    assert [datetime.fromisoformat(r["at"]) for r in rows] == [OCCURRED + timedelta(minutes=i) for i in range(5)]
    assert "secret-token" not in json.dumps(rows)
    assert await chain_intact(identity)


async def test_assignment_events_make_one_row_each_without_the_ssh_keys(identity: Identity) -> None:
    admin = identity.admin_id
    made, revoked, expired, orphaned, disabled = (uuid.uuid4() for _ in range(5))
    key = f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{uuid.uuid4().hex} ada@laptop"
    await publish(identity, event(sch.ASSIGNMENT_CREATED, created(made, admin, key)))
    # A reminder, not a change: never audited (the consumer does not even read it).
    expiring = sch.AssignmentExpiring(
        assignment_id=made,
        user_id=uuid.UUID(int=7),
        user_email="ada@example.org",
        node_hostname="gpu-01.lab",
        expires_at=OCCURRED,
    )
    await publish(identity, event(sch.ASSIGNMENT_EXPIRING, expiring.model_dump(mode="json")))
    ends: list[tuple[uuid.UUID, sch.EndReason, uuid.UUID | None, str]] = [
        (revoked, "revoked", admin, "assignment.revoked"),
        (expired, "expired", None, "assignment.expired"),
        (orphaned, "node_deleted", admin, "assignment.ended"),
        (disabled, "user_disabled", admin, "assignment.ended"),
    ]
    for assignment_id, reason, actor, _ in ends:
        await publish(identity, event(sch.ASSIGNMENT_ENDED, ended(assignment_id, reason, actor)))

    for assignment_id, reason, actor, action in ends:
        (row,) = await recorded(identity, "assignment", assignment_id, 1)
        assert row["action"] == action
        assert row["details"] == {"reason": reason, "node_hostname": "gpu-01.lab"}
        assert row["actor_id"] == (str(actor) if actor else None)
        assert datetime.fromisoformat(row["at"]) == OCCURRED
    (row,) = await rows_of(identity, "assignment", made)  # the expiring one came before the last ended
    assert row["action"] == "assignment.created"
    assert (row["actor_id"], row["actor_email"]) == (str(admin), identity.admin_email)
    assert row["details"] == {
        "user_id": str(uuid.UUID(int=7)),
        "user_email": "ada@example.org",
        "node_id": str(uuid.UUID(int=9)),
        "node_hostname": "gpu-01.lab",
        "gpus": [{"index": 0, "uuid": "GPU-aaaa"}, {"index": 3, "uuid": "GPU-dddd"}],
        "cpus": 16,
        "ram_mb": 65536,
        "expires_at": (OCCURRED + timedelta(days=7)).isoformat(),
        "placement": "dynamic",
    }
    assert key.split()[1] not in json.dumps(row)
    assert await chain_intact(identity)


async def test_a_scheduler_event_published_again_makes_one_row(identity: Identity) -> None:
    assignment_id = uuid.uuid4()
    once = event(sch.ASSIGNMENT_CREATED, created(assignment_id, identity.admin_id))
    await publish(identity, once)
    await publish(identity, once)  # within JetStream's duplicate window
    await publish(identity, once, msg_id=f"{once.id}-late")  # past it: the consumer's record drops it
    # Handled in stream order: once this later event is in, every copy before it was handled.
    await publish(identity, event(sch.ASSIGNMENT_ENDED, ended(assignment_id, "revoked", identity.admin_id)))

    rows = await recorded(identity, "assignment", assignment_id, 2)
    assert [r["action"] for r in rows] == ["assignment.revoked", "assignment.created"]
    assert await chain_intact(identity)


async def test_a_malformed_scheduler_event_writes_nothing_and_the_consumer_goes_on(
    identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    bad = uuid.uuid4()
    secret = f"ssh-ed25519 {uuid.uuid4().hex}"
    js = identity.runtime.js
    await js.publish(f"gpulab.events.{sch.ASSIGNMENT_ENDED}", b"{not json", headers={"Nats-Msg-Id": str(uuid.uuid4())})
    no_gpus = {**created(bad, None, secret), "gpus": "all"}
    await publish(identity, event(sch.ASSIGNMENT_CREATED, no_gpus))
    await publish(identity, event(sch.ASSIGNMENT_ENDED, {**ended(bad, "revoked", None), "reason": "bored"}))
    await publish(identity, event(sch.ENVIRONMENT_CREATED, {"environment_id": "env-1", "name": "x"}))
    await publish(identity, event(sch.NODE_ATTACHED, {"environment_id": str(bad), "node_id": str(bad)}))
    good = uuid.uuid4()
    await publish(identity, event(sch.ASSIGNMENT_ENDED, ended(good, "expired", None)))

    assert [r["action"] for r in await recorded(identity, "assignment", good, 1)] == ["assignment.expired"]
    assert await rows_of(identity, "assignment", bad) == []
    assert await rows_of(identity, "environment", bad) == []
    dropped = [r for r in caplog.records if "has a malformed payload" in r.getMessage()]
    assert len(dropped) == 4
    assert secret not in caplog.text, "a rejected payload's values are not logged"
    assert await chain_intact(identity)


async def test_netbird_key_issuance_and_removal_make_one_row_each_without_the_key(identity: Identity) -> None:
    assignment_id, user = uuid.uuid4(), identity.admin_id
    secret = str(uuid.uuid4()).upper()  # a plain setup key, as a careless producer might add one
    issued = sch.NetbirdKeyIssued(
        assignment_id=assignment_id,
        user_id=user,
        user_email=identity.admin_email,
        node_hostname="gpu-01.lab",
        setup_key_id="2531583362",
        setup_key_name=f"gpulab {assignment_id} ada@example.org",
        netbird_group_id="ch8i4ug6lnn4g9hqv7m0",
        expires_at=OCCURRED + timedelta(hours=1),
        actor_id=user,
    ).model_dump(mode="json")
    removed = sch.NetbirdAccessRemoved(
        assignment_id=assignment_id,
        user_id=user,
        user_email=identity.admin_email,
        netbird_group_id="ch8i4ug6lnn4g9hqv7m0",
        setup_keys_removed=1,
        peers_removed=["ada-laptop"],
    ).model_dump(mode="json")
    await publish(identity, event(sch.NETBIRD_KEY_ISSUED, {**issued, "setup_key": secret}))
    await publish(identity, event(sch.NETBIRD_ACCESS_REMOVED, removed, occurred_at=OCCURRED + timedelta(minutes=1)))

    rows = list(reversed(await recorded(identity, "assignment", assignment_id, 2)))
    assert [(r["action"], r["actor_id"]) for r in rows] == [
        ("assignment.netbird_key_issued", str(user)),
        ("assignment.netbird_access_removed", None),
    ]
    assert rows[0]["details"]["setup_key_id"] == "2531583362"
    assert rows[0]["details"]["expires_at"] == (OCCURRED + timedelta(hours=1)).isoformat()
    assert rows[1]["details"]["peers_removed"] == 1
    assert rows[1]["details"]["peer_names"] == ["ada-laptop"]
    assert secret not in json.dumps(rows)
    assert await chain_intact(identity)
