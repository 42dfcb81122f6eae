"""The NATS endpoints of self-service: requests, quotas, a user's own assignment (extend, release) and
what a user may request (offers, estimate). Each parses its contract, runs the rules in one
transaction, and kicks the queue's dispatcher when GPUs were freed or a request joined a queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import db
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import scheduler as sch
from gpulab_core.contracts import selfservice as c
from gpulab_core.errors import Conflict, InvalidRequest
from gpulab_core.rpc import Endpoint
from gpulab_scheduler.assignments import own
from gpulab_scheduler.identity_client import IdentityClient
from gpulab_scheduler.quotas import service as quotas
from gpulab_scheduler.requests import offers, service
from gpulab_scheduler.requests import repository as repo
from gpulab_scheduler.requests.dispatcher import Dispatcher
from gpulab_scheduler.users.directory import UserDirectory


def endpoints(
    sessions: async_sessionmaker[AsyncSession], identity: IdentityClient, dispatcher: Dispatcher
) -> list[Endpoint[Any]]:
    tx = db.transactional(sessions)
    users = UserDirectory(sessions, identity)

    async def reply(request_id: uuid.UUID) -> c.Request:
        async with sessions() as session:
            row = await repo.get(session, request_id)
            assert row is not None
            (found,) = await service.to_contracts(session, [row])
        return found

    async def submit(req: c.SubmitRequest) -> c.Request:
        assignee = await users.assignee(req.user_id)
        if assignee is None:
            raise InvalidRequest("no such user", details={"field": "user_id"})
        if assignee.user.status != "active":
            raise Conflict(f"the user is {assignee.user.status}, not active")
        if not assignee.keys.public_keys:
            raise InvalidRequest("add an SSH key first: the GPUs are reached with it", code=sch.USER_HAS_NO_SSH_KEY)
        group_name = None
        if req.group_id is not None:
            member = await identity.membership(req.user_id, req.group_id)
            if member is None or not member.member:
                raise InvalidRequest(
                    "you are not a member of that group", code=c.NOT_A_MEMBER, details={"field": "group_id"}
                )
            group_name = member.name
        async with sessions() as session, session.begin():
            row, granted = await service.submit(session, req, assignee, group_name)
        if row.status == "queued" and not granted:
            await dispatcher.run(row.environment_id, wait=True, fresh={row.id})  # backfill may start it
        return await reply(row.id)

    async def list_requests(req: c.ListRequestsRequest) -> c.RequestPage:
        async with sessions() as session:
            rows, cursor = await repo.page(
                session,
                req.cursor,
                req.limit,
                user_id=req.user_id,
                environment_id=req.environment_id,
                status=req.status,
            )
            return c.RequestPage(items=await service.to_contracts(session, rows), next_cursor=cursor)

    async def cancel(req: c.MyRequestRequest) -> c.Request:
        async with sessions() as session, session.begin():
            row = await service.cancel(session, req)
        dispatcher.kick()  # the queue behind it may start now
        return await reply(row.id)

    async def approve(req: c.RequestIdRequest) -> c.Request:
        async with sessions() as session, session.begin():
            row = await service.mine_or_missing(session, req.id, None)
            if row.status != "pending_approval":
                raise service.not_open(row)
            if row.kind == "extension":
                await own.approve_extension(session, row, req.actor_id)
            else:
                await service.approve_new(session, row, req.actor_id)
        if row.kind == "new":
            await dispatcher.run(row.environment_id, wait=True)
        return await reply(row.id)

    async def deny(req: c.DenyRequest) -> c.Request:
        async with sessions() as session, session.begin():
            row = await service.deny(session, req)
        dispatcher.kick()
        return await reply(row.id)

    async def release(req: c.ReleaseRequest) -> sch.Assignment:
        async with sessions() as session, session.begin():
            released = await own.release(session, req)
        dispatcher.kick()
        return released

    async def estimate(req: c.EstimateRequest) -> c.Estimate:
        async with sessions() as session:
            return await offers.estimate(session, req, datetime.now(UTC))

    async def list_offers(_req: c.ListOffersRequest) -> c.EnvironmentOffers:
        async with sessions() as session:
            return await offers.offers(session, datetime.now(UTC))

    return [
        Endpoint.of(ops.REQUESTS_SUBMIT, submit),
        Endpoint.of(ops.REQUESTS_LIST, list_requests),
        Endpoint.of(ops.REQUESTS_CANCEL, cancel),
        Endpoint.of(ops.REQUESTS_APPROVE, approve),
        Endpoint.of(ops.REQUESTS_DENY, deny),
        Endpoint.of(ops.QUOTAS_SET, tx(quotas.set_quota)),
        Endpoint.of(ops.QUOTAS_LIST, tx(quotas.list_quotas)),
        Endpoint.of(ops.QUOTAS_MINE, tx(quotas.mine)),
        Endpoint.of(ops.ASSIGNMENTS_EXTEND, tx(own.extend)),
        Endpoint.of(ops.ASSIGNMENTS_RELEASE, release),
        Endpoint.of(ops.ENVIRONMENTS_OFFERS, list_offers),
        Endpoint.of(ops.ENVIRONMENTS_ESTIMATE, estimate),
    ]
