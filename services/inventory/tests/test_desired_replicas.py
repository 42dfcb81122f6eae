"""The desired state with several inventory replicas: two consumers applying related events at
once, and a replica with a long node cache told of every committed change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core.contracts import events as identity_events
from gpulab_core.contracts import scheduler as s
from gpulab_devstack.testing import Stack, wait_until
from gpulab_inventory.desired import repository, service
from gpulab_inventory.heartbeat.server import HeartbeatServer
from gpulab_inventory.models import desired_assignments

from .conftest import Agent, ControlPlane, enrolled, start_inventory
from .desired_support import (
    KEY_A,
    KEY_B,
    WAIT_S,
    assignments,
    created,
    ended,
    has,
    keys_are,
    keys_changed,
    publish,
)


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
