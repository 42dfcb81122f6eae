"""Runs the queue's dispatch (queue.py) of every Environment with requests waiting: at once when this
replica freed GPUs or queued a request (`kick`), and every `poll_s` for what other replicas and the
nodes changed (a release on another replica, a node coming online, an expiry). Safe with any number
of replicas: each pass holds its Environment's queue lock, and a replica that finds it taken leaves
the pass to its holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Set
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core.contracts import scheduler as sch
from gpulab_core.errors import Conflict
from gpulab_scheduler.environments import repository as environment_rows
from gpulab_scheduler.requests import queue
from gpulab_scheduler.requests import repository as repo
from gpulab_scheduler.requests import service as rules
from gpulab_scheduler.users.directory import UserDirectory

log = logging.getLogger(__name__)


@dataclass
class Dispatcher:
    sessions: async_sessionmaker[AsyncSession]
    poll_s: float
    _kicked: asyncio.Event = field(default_factory=asyncio.Event)

    def kick(self) -> None:
        """GPUs were freed or a request queued here: dispatch now rather than at the next poll."""
        self._kicked.set()

    async def run(self, environment_id: uuid.UUID, *, wait: bool, fresh: Set[uuid.UUID] = frozenset()) -> int:
        """One pass over the Environment's queue; `fresh`: requests submitted just now (their users
        see the grant in the reply, so it is not mailed). Returns how many were granted."""

        async def grant(session: AsyncSession, r: repo.Request, node_id: uuid.UUID | None) -> None:
            assignee = await UserDirectory.known(session, r.user_id)  # submit() made the copy know them
            if assignee is None:
                raise Conflict("the user is not active or has no SSH key", code=sch.USER_HAS_NO_SSH_KEY)
            await rules.grant(session, r, node_id, assignee, fresh=r.id in fresh)

        async with self.sessions() as session, session.begin():
            env = await environment_rows.get(session, environment_id)
            if env is None or env.deleted_at is not None:
                return 0
            granted = await queue.dispatch(session, env, grant, wait=wait)
        if granted:
            log.info("granted %d queued request(s) in %s", len(granted), env.name)
        return len(granted)

    async def run_all(self) -> None:
        async with self.sessions() as session:
            waiting = await repo.environments_with_queue(session)
        for environment_id in waiting:
            await self.run(environment_id, wait=False)

    async def loop(self) -> None:
        while True:
            try:
                await self.run_all()
            except Exception as exc:
                log.warning("queue dispatch failed, retrying: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self.poll_s)
            self._kicked.clear()
