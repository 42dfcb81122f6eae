"""The desired state in the heartbeat reply, projected from the scheduler's and identity's events:
published here the way the outbox relay does, read back by a real agent over mutual TLS."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from gpulab.agent.v1 import assignment_pb2
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gpulab_core.contracts import events as identity_events
from gpulab_core.contracts import scheduler as s
from gpulab_core.events import Event
from gpulab_devstack.testing import Stack, new_event, relay_publish, wait_until
from gpulab_inventory.desired import repository, service
from gpulab_inventory.desired.service import assignment_spec
from gpulab_inventory.heartbeat.server import HeartbeatServer
from gpulab_inventory.models import SCHEMA, desired_assignments, metadata

from .conftest import Agent, ControlPlane, enrolled, start_inventory

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1xOq0vZzZxJdQ7bDQzTQ5nq7YQm1cX2Xh0j0aGm8Aa ada@laptop"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2yPr1wAaAyKeR8cER0UR6or8ZRn2dY3Yi1k1bHn9Bb ada@desk"
KEY_C = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3 ada@old"
WAIT_S = 15  # the consumer fetches at once; generous for a loaded test machine


async def publish(plane: ControlPlane, event_type: str, data: dict[str, Any]) -> Event:
    """As the outbox relay does: the Event envelope on `gpulab.events.<type>`, Nats-Msg-Id = event id."""
    return await relay_publish(plane.inventory.js, new_event(event_type, data))


async def republish(plane: ControlPlane, event: Event, msg_id: str | None = None) -> None:
    await relay_publish(plane.inventory.js, event, msg_id=msg_id)


_GPUS = itertools.count(100)


def created(node_id: str | None, user_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "assignment_id": uuid.uuid4(),
        "user_id": user_id,
        "user_email": "ada@example.org",
        "environment_id": uuid.uuid4(),
        "environment_name": "training",
        "node_id": node_id,
        "node_hostname": "gpu-01",
        "placement": "dynamic",
        "linux_username": "gl_ada",
        "ssh_public_keys": [KEY_A],
        "enforcement_mode": "cgroup",
        # A GPU of its own: the node's desired state never holds two assignments on one GPU (supersede).
        "gpus": [{"index": n % 8, "uuid": f"GPU-{n:08x}-aaaa-bbbb-cccc-0123456789ab"} for n in [next(_GPUS)]],
        "cpus": 8,
        "ram_mb": 65536,
        "expires_at": datetime(2027, 3, 1, 12, 30, tzinfo=UTC),
    }
    values.update(fields)
    return s.AssignmentCreated.model_validate(values).model_dump(mode="json")


def ended(data: dict[str, Any]) -> dict[str, Any]:
    return s.AssignmentEnded(
        assignment_id=data["assignment_id"],
        user_id=data["user_id"],
        user_email=data["user_email"],
        node_id=data["node_id"],
        node_hostname=data["node_hostname"],
        reason="revoked",
        ended_at=datetime.now(UTC),
    ).model_dump(mode="json")


def keys_changed(user_id: uuid.UUID, keys: list[str], version: int) -> dict[str, Any]:
    return identity_events.SshKeysChanged(user_id=user_id, public_keys=keys, version=version).model_dump(mode="json")


async def assignments(agent: Agent, port: int | None = None) -> dict[str, assignment_pb2.Assignment]:
    """The desired state in the agent's next heartbeat reply, by assignment id."""
    channel = agent.heartbeat_channel(port=port) if port else None
    reply = await agent.heartbeat(channel=channel)
    return {a.assignment_id: a for a in reply.assignments}


async def has(agent: Agent, assignment_id: str, port: int | None = None) -> bool:
    return assignment_id in await assignments(agent, port)


async def keys_are(agent: Agent, assignment_id: str, keys: list[str], port: int | None = None) -> bool:
    found = (await assignments(agent, port)).get(assignment_id)
    return found is not None and list(found.ssh_public_keys) == keys


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


async def test_an_end_and_its_creation_applied_at_once_by_two_replicas_leave_nothing(plane: ControlPlane) -> None:
    sessions = plane.inventory.sessions
    assert sessions is not None
    data = s.AssignmentCreated.model_validate(created(str(uuid.uuid4()), uuid.uuid4()))
    async with sessions() as ending, ending.begin():
        await service.assignment_ended(ending, s.AssignmentEnded.model_validate(ended(data.model_dump(mode="json"))))
        creating = asyncio.create_task(_in_transaction(sessions, _create_now, data))
        await asyncio.sleep(0.3)
        assert not creating.done()  # it waits for the end to commit, then sees it
    assert await creating == set()
    async with sessions() as session:
        assert await repository.node_of(session, data.assignment_id) is None


async def test_a_key_change_and_a_new_assignment_applied_at_once_agree(plane: ControlPlane) -> None:
    sessions = plane.inventory.sessions
    assert sessions is not None
    user = uuid.uuid4()
    data = s.AssignmentCreated.model_validate(created(str(uuid.uuid4()), user, ssh_public_keys=[KEY_A]))
    async with sessions() as changing, changing.begin():
        change = identity_events.SshKeysChanged(user_id=user, public_keys=[KEY_B], version=1)
        await service.ssh_keys_changed(changing, change)
        creating = asyncio.create_task(_in_transaction(sessions, _create_now, data))
        await asyncio.sleep(0.3)
        assert not creating.done()
    assert await creating == {data.node_id}
    async with sessions() as session:
        spec = (
            await session.execute(
                select(desired_assignments.c.spec).where(desired_assignments.c.assignment_id == data.assignment_id)
            )
        ).scalar_one()
    assert spec["ssh_public_keys"] == [KEY_B]


async def _create_now(session: AsyncSession, data: s.AssignmentCreated) -> set[uuid.UUID]:
    return await service.assignment_created(session, data, datetime.now(UTC))


async def _in_transaction(
    sessions: async_sessionmaker[AsyncSession],
    apply: Callable[[AsyncSession, Any], Awaitable[set[uuid.UUID]]],
    payload: Any,
) -> set[uuid.UUID]:
    async with sessions() as session, session.begin():
        return await apply(session, payload)


async def test_another_replica_with_a_long_cache_sees_every_change_at_once(
    plane: ControlPlane, agents: list[Agent], migrated: Stack, tmp_path: Path
) -> None:
    # This replica would trust its cached copy of a node for five minutes: only the announcement of
    # each committed change, whichever replica's consumer applied it, makes it read the node again.
    replica = await start_inventory(migrated, tmp_path, node_cache_s=300)
    try:
        server = replica.parts["heartbeat"]
        assert isinstance(server, HeartbeatServer)
        port = server.port
        agent = await enrolled(plane, agents)
        assert await assignments(agent, port) == {}
        user = uuid.uuid4()
        data = created(agent.node_id, user)
        await publish(plane, s.ASSIGNMENT_CREATED, data)
        await wait_until(lambda: has(agent, data["assignment_id"], port), timeout_s=WAIT_S)
        await publish(plane, identity_events.SSH_KEYS_CHANGED, keys_changed(user, [KEY_B], version=1))
        await wait_until(lambda: keys_are(agent, data["assignment_id"], [KEY_B], port), timeout_s=WAIT_S)
        await publish(plane, s.ASSIGNMENT_ENDED, ended(data))
        await wait_until(lambda: _empty_at(agent, port), timeout_s=WAIT_S)
    finally:
        await replica.stop()


async def _empty_at(agent: Agent, port: int) -> bool:
    return await assignments(agent, port) == {}


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


async def _node(plane: ControlPlane, agents: list[Agent], **fields: Any) -> Agent:
    made = await plane.add_node(**fields)
    agent = plane.agent()
    agents.append(agent)
    await agent.enroll(made["enrollment"]["token"])
    return agent


async def test_the_jump_host_gets_one_forwarding_entry_per_user_limited_to_the_nodes_they_hold(
    plane: ControlPlane, agents: list[Agent]
) -> None:
    """docs/adr/0017-managed-jump-host.md: the jump host's reply holds, per user with an active
    assignment, their keys and the `ip:port` of each node they hold; an ended assignment takes its
    node out, the last one takes the user out, and no node but the jump host gets such an entry."""
    a = await _node(plane, agents, management_ip="10.0.0.7")
    b = await _node(plane, agents, management_ip="fd00::5", ssh_port=2222)
    jump = await _node(plane, agents, type="jump", management_ip="10.0.0.1")
    user, other = uuid.uuid4(), uuid.uuid4()
    on_a, on_b = created(a.node_id, user), created(b.node_id, user)
    theirs = created(a.node_id, other, linux_username="gl_bob", ssh_public_keys=[KEY_C])
    for data in (on_a, on_b, theirs):
        await publish(plane, s.ASSIGNMENT_CREATED, data)

    async def entry(user_id: uuid.UUID) -> assignment_pb2.Assignment | None:
        return (await assignments(jump)).get(str(user_id))

    async def permits(user_id: uuid.UUID, want: list[str]) -> bool:
        found = await entry(user_id)
        return (list(found.forward_targets) if found else []) == want

    await wait_until(lambda: permits(user, ["10.0.0.7:22", "[fd00::5]:2222"]), timeout_s=WAIT_S)
    mine = await entry(user)
    assert mine is not None
    assert (mine.linux_username, list(mine.ssh_public_keys)) == ("gl_ada", [KEY_A])
    assert mine.enforcement_mode == assignment_pb2.ENFORCEMENT_MODE_JUMP
    assert not mine.gpus
    await wait_until(lambda: permits(other, ["10.0.0.7:22"]), timeout_s=WAIT_S)
    assert all(x.enforcement_mode != assignment_pb2.ENFORCEMENT_MODE_JUMP for x in (await assignments(a)).values())

    await publish(plane, s.ASSIGNMENT_ENDED, ended(on_b))
    await wait_until(lambda: permits(user, ["10.0.0.7:22"]), timeout_s=WAIT_S)
    await publish(plane, s.ASSIGNMENT_ENDED, ended(on_a))
    await wait_until(lambda: permits(user, []), timeout_s=WAIT_S)
    assert await entry(other) is not None
