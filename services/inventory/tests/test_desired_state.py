"""The desired state in the heartbeat reply, projected from the scheduler's and identity's events:
published here the way the outbox relay does, read back by a real agent over mutual TLS: what reaches
which node, in which order the events may come, and the projection's schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from gpulab.agent.v1 import assignment_pb2
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts import events as identity_events
from gpulab_core.contracts import scheduler as s
from gpulab_devstack.testing import new_event, relay_publish, wait_until
from gpulab_inventory.desired.service import assignment_spec
from gpulab_inventory.models import SCHEMA, metadata

from .conftest import Agent, ControlPlane, enrolled
from .desired_support import (
    KEY_A,
    KEY_B,
    KEY_C,
    WAIT_S,
    assignments,
    created,
    ended,
    has,
    keys_are,
    keys_changed,
    publish,
    republish,
)


async def test_an_assignment_reaches_its_nodes_agent_exactly_and_no_other_node(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    a, b = await enrolled(plane, agents), await enrolled(plane, agents)
    assert await assignments(a) == {}
    data = created(a.node_id, uuid.uuid4())
    await publish(plane, s.ASSIGNMENT_CREATED, data)
    await wait_until(lambda: has(a, data["assignment_id"]), timeout_s=WAIT_S)

    got = (await assignments(a))[data["assignment_id"]]
    assert got.assignment_id == data["assignment_id"]
    assert got.linux_username == "gl_ada"
    assert list(got.ssh_public_keys) == [KEY_A]
    assert got.enforcement_mode == assignment_pb2.ENFORCEMENT_MODE_CGROUP
    assert [{"index": g.index, "uuid": g.uuid} for g in got.gpus] == data["gpus"]
    assert got.cpus == 8
    assert got.ram_mb == 65536
    assert got.HasField("expires_at")
    assert got.expires_at.ToDatetime(tzinfo=UTC) == datetime(2027, 3, 1, 12, 30, tzinfo=UTC)
    assert await assignments(b) == {}


async def test_each_enforcement_mode_and_no_expiry_come_through(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    user = uuid.uuid4()
    modes = {
        "soft": assignment_pb2.ENFORCEMENT_MODE_SOFT,
        "cgroup": assignment_pb2.ENFORCEMENT_MODE_CGROUP,
        "mig": assignment_pb2.ENFORCEMENT_MODE_MIG,
        "container": assignment_pb2.ENFORCEMENT_MODE_CONTAINER,
    }
    sent, second = {}, {}
    for i, mode in enumerate(modes):
        data = created(
            agent.node_id,
            user,
            enforcement_mode=mode,
            expires_at=None,
            cpus=0,
            ram_mb=0,
            gpus=[{"index": i, "uuid": f"GPU-{i}"}, {"index": 4 + i, "uuid": f"GPU-{4 + i}"}],
        )
        sent[data["assignment_id"]] = mode
        second[data["assignment_id"]] = f"GPU-{4 + i}"
        await publish(plane, s.ASSIGNMENT_CREATED, data)
    await wait_until(lambda: _count_is(agent, len(sent)), timeout_s=WAIT_S)
    got = await assignments(agent)
    assert {i: a.enforcement_mode for i, a in got.items()} == {i: modes[m] for i, m in sent.items()}
    for a in got.values():
        assert not a.HasField("expires_at")
        assert (a.cpus, a.ram_mb) == (0, 0)
        assert [g.uuid for g in a.gpus][1] == second[a.assignment_id]


async def _count_is(agent: Agent, n: int) -> bool:
    return len(await assignments(agent)) == n


async def test_the_same_event_twice_gives_one_entry(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    data = created(agent.node_id, uuid.uuid4())
    event = await publish(plane, s.ASSIGNMENT_CREATED, data)
    await republish(plane, event)  # the relay again within JetStream's duplicate window
    await republish(plane, event, msg_id=str(uuid.uuid4()))  # ...or after it: the consumer's own record
    await publish(plane, s.ASSIGNMENT_CREATED, data)  # another event, the same assignment
    marker = created(agent.node_id, uuid.uuid4())
    await publish(plane, s.ASSIGNMENT_CREATED, marker)  # applied after the others (one consumer, in order)
    await wait_until(lambda: has(agent, marker["assignment_id"]), timeout_s=WAIT_S)
    assert sorted(await assignments(agent)) == sorted([data["assignment_id"], marker["assignment_id"]])


async def test_newer_ssh_keys_replace_the_assignments_keys_and_older_ones_do_not(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    agent = await enrolled(plane, agents)
    user = uuid.uuid4()
    first = created(agent.node_id, user, ssh_public_keys=[KEY_A])
    await publish(plane, s.ASSIGNMENT_CREATED, first)
    await wait_until(lambda: has(agent, first["assignment_id"]), timeout_s=WAIT_S)

    await publish(plane, identity_events.SSH_KEYS_CHANGED, keys_changed(user, [KEY_A, KEY_B], version=5))
    await wait_until(lambda: keys_are(agent, first["assignment_id"], [KEY_A, KEY_B]), timeout_s=WAIT_S)

    # An older version arrives late, then a second assignment whose event still carries the keys of
    # when it was made: both get the newest keys known.
    await publish(plane, identity_events.SSH_KEYS_CHANGED, keys_changed(user, [KEY_C], version=4))
    second = created(agent.node_id, user, ssh_public_keys=[KEY_C], linux_username="gl_ada2")
    await publish(plane, s.ASSIGNMENT_CREATED, second)
    await wait_until(lambda: has(agent, second["assignment_id"]), timeout_s=WAIT_S)
    got = await assignments(agent)
    assert list(got[first["assignment_id"]].ssh_public_keys) == [KEY_A, KEY_B]
    assert list(got[second["assignment_id"]].ssh_public_keys) == [KEY_A, KEY_B]

    # Every key removed is a change too; another user's keys change nothing here.
    await publish(plane, identity_events.SSH_KEYS_CHANGED, keys_changed(uuid.uuid4(), [KEY_C], version=99))
    await publish(plane, identity_events.SSH_KEYS_CHANGED, keys_changed(user, [], version=6))
    await wait_until(lambda: keys_are(agent, second["assignment_id"], []), timeout_s=WAIT_S)
    assert list((await assignments(agent))[first["assignment_id"]].ssh_public_keys) == []


async def test_an_ended_assignment_is_gone_from_the_next_reply(plane: ControlPlane, agents: list[Agent]) -> None:
    agent = await enrolled(plane, agents)
    user = uuid.uuid4()
    staying, leaving = created(agent.node_id, user), created(agent.node_id, user)
    await publish(plane, s.ASSIGNMENT_CREATED, staying)
    await publish(plane, s.ASSIGNMENT_CREATED, leaving)
    await wait_until(lambda: _count_is(agent, 2), timeout_s=WAIT_S)
    await publish(plane, s.ASSIGNMENT_ENDED, ended(leaving))
    await wait_until(lambda: _count_is(agent, 1), timeout_s=WAIT_S)
    assert list(await assignments(agent)) == [staying["assignment_id"]]


async def test_an_end_applied_before_its_creation_keeps_the_assignment_away(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    agent = await enrolled(plane, agents)
    late = created(agent.node_id, uuid.uuid4())
    await publish(plane, s.ASSIGNMENT_ENDED, ended(late))
    await publish(plane, s.ASSIGNMENT_CREATED, late)
    marker = created(agent.node_id, uuid.uuid4())
    await publish(plane, s.ASSIGNMENT_CREATED, marker)
    await wait_until(lambda: has(agent, marker["assignment_id"]), timeout_s=WAIT_S)
    assert list(await assignments(agent)) == [marker["assignment_id"]]
    # A key change of its user does not bring it back either.
    await publish(plane, identity_events.SSH_KEYS_CHANGED, keys_changed(late["user_id"], [KEY_B], version=1))
    marker_keys = keys_changed(marker["user_id"], [KEY_B], version=1)
    await publish(plane, identity_events.SSH_KEYS_CHANGED, marker_keys)
    await wait_until(lambda: keys_are(agent, marker["assignment_id"], [KEY_B]), timeout_s=WAIT_S)
    assert list(await assignments(agent)) == [marker["assignment_id"]]


async def test_of_two_assignments_holding_one_gpu_the_node_gets_only_the_newer_whichever_event_is_late(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    """The scheduler gives a GPU to one assignment at a time, so a newer one on the same GPU means the
    older ended, even while its ended event is late (another replica still applying it, a redelivery):
    the node never holds both. And an older one whose created event comes after the newer's is never
    put."""
    agent = await enrolled(plane, agents)
    gpu = [{"index": 3, "uuid": "GPU-00000003-aaaa-bbbb-cccc-0123456789ab"}]
    older = created(agent.node_id, uuid.uuid4(), gpus=gpu)
    newer = created(agent.node_id, uuid.uuid4(), gpus=gpu)
    other_gpu = created(
        agent.node_id, uuid.uuid4(), gpus=[{"index": 4, "uuid": "GPU-00000004-aaaa-bbbb-cccc-0123456789ab"}]
    )
    now = datetime.now(UTC)
    await relay_publish(
        plane.inventory.js, new_event(s.ASSIGNMENT_CREATED, older, occurred_at=now - timedelta(minutes=5))
    )
    await relay_publish(
        plane.inventory.js, new_event(s.ASSIGNMENT_CREATED, other_gpu, occurred_at=now - timedelta(minutes=4))
    )
    await wait_until(lambda: has(agent, str(older["assignment_id"])), WAIT_S)
    await relay_publish(plane.inventory.js, new_event(s.ASSIGNMENT_CREATED, newer, occurred_at=now))
    await wait_until(lambda: has(agent, str(newer["assignment_id"])), WAIT_S)
    held = await assignments(agent)
    assert set(held) == {str(newer["assignment_id"]), str(other_gpu["assignment_id"])}, "the older is gone at once"
    # Its ended event, late, changes nothing; nor does an older assignment's creation arriving last.
    await publish(plane, s.ASSIGNMENT_ENDED, ended(older))
    oldest = created(agent.node_id, uuid.uuid4(), gpus=gpu)
    late = await relay_publish(
        plane.inventory.js, new_event(s.ASSIGNMENT_CREATED, oldest, occurred_at=now - timedelta(minutes=9))
    )
    await wait_until(lambda: _processed(plane, late.id), WAIT_S)
    assert set(await assignments(agent)) == {str(newer["assignment_id"]), str(other_gpu["assignment_id"])}


async def _processed(plane: ControlPlane, event_id: uuid.UUID) -> bool:
    assert plane.inventory.sessions is not None
    async with plane.inventory.sessions() as session:
        found = await session.execute(text("SELECT 1 FROM processed_events WHERE event_id = :e"), {"e": event_id})
        return found.first() is not None


async def test_the_migrations_create_exactly_what_the_models_declare(db: AsyncEngine) -> None:
    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        if type_ == "schema":
            return name == SCHEMA
        return not (type_ == "table" and name == "alembic_version")

    def diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(
            conn, opts={"include_schemas": True, "include_name": include_name, "compare_type": True}
        )
        return list(compare_metadata(ctx, metadata))

    async with db.connect() as conn:
        assert await conn.run_sync(diff) == []


def test_an_expiry_without_an_offset_is_read_as_utc() -> None:
    """Never as the inventory host's local time."""
    naive = s.AssignmentCreated.model_validate(
        created(str(uuid.uuid4()), uuid.uuid4(), expires_at="2027-03-01T12:30:00")
    )
    assert naive.expires_at is not None
    assert naive.expires_at.tzinfo is None
    assert assignment_spec(naive, [])["expires_at"] == "2027-03-01T12:30:00Z"
    other_zone = created(str(uuid.uuid4()), uuid.uuid4(), expires_at="2027-03-01T14:30:00+02:00")
    assert assignment_spec(s.AssignmentCreated.model_validate(other_zone), [])["expires_at"] == "2027-03-01T12:30:00Z"
