"""identity's NATS endpoints: parse (the contract models), call the rules, one transaction each."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import db
from gpulab_core.contracts import identity as c
from gpulab_core.contracts import operations as ops
from gpulab_core.errors import NotFound
from gpulab_core.rpc import Endpoint
from gpulab_identity.audit import repository as audit_repo
from gpulab_identity.audit import service as audit
from gpulab_identity.auth import service as auth
from gpulab_identity.deps import Deps
from gpulab_identity.groups import service as groups
from gpulab_identity.invites import service as invites
from gpulab_identity.ssh_keys import service as keys
from gpulab_identity.users import repository as users_repo
from gpulab_identity.users import service as users


def endpoints(deps: Deps) -> list[Endpoint[Any]]:
    tx = db.transactional(deps.sessions)

    async def login(req: c.LoginRequest) -> c.LoginReply:
        async with deps.sessions() as session, session.begin():
            outcome = await auth.login(session, req, deps.settings, deps.passwords)
        # Raised after the commit: a failure's record (rate limit, audit) must be kept.
        if outcome.error is not None:
            raise outcome.error
        assert outcome.reply is not None
        return outcome.reply

    async def get_user(session: AsyncSession, req: c.UserIdRequest) -> c.User:
        user = await users_repo.get(session, req.id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def list_users(session: AsyncSession, req: c.ListUsersRequest) -> c.UserPage:
        items, cursor = await users_repo.list_page(session, req)
        return c.UserPage(items=items, next_cursor=cursor)

    async def list_audit(session: AsyncSession, req: c.ListAuditRequest) -> c.AuditPage:
        items, cursor = await audit_repo.list_entries(session, req)
        return c.AuditPage(items=items, next_cursor=cursor)

    async def list_keys(session: AsyncSession, req: c.ListSshKeysRequest) -> c.SshKeyList:
        return c.SshKeyList(items=await keys.list_keys(session, req.user_id))

    async def delete_key(session: AsyncSession, req: c.DeleteSshKeyRequest) -> dict[str, str]:
        await keys.remove(session, req.user_id, req.id)
        return {}

    async def logout(session: AsyncSession, req: c.SessionRequest) -> dict[str, str]:
        await auth.logout(session, req.session_token)
        return {}

    ttl = timedelta(hours=deps.settings.invite_ttl_hours)
    seal_key = deps.settings.invite_seal_key.get_secret_value()
    max_keys = deps.settings.ssh_keys_per_user_max
    # Half the caller's wait (GPULAB_RPC_TIMEOUT_S is one setting for every service): the rest is for
    # the queue, the round trips and the batch that runs past the budget.
    verify_budget_s = deps.settings.rpc_timeout_s / 2
    bounds = audit.RefusalBounds(
        deps.settings.audit_refusals_per_address_per_minute, deps.settings.audit_refusals_per_minute
    )
    return [
        Endpoint.of(ops.AUTH_LOGIN, login),
        Endpoint.of(ops.AUTH_LOGOUT, tx(logout)),
        Endpoint.of(ops.AUTH_SESSION, tx(lambda s, r: auth.current(s, r.session_token, deps.settings))),
        Endpoint.of(ops.INVITES_CREATE, tx(lambda s, r: invites.create(s, r, ttl, seal_key))),
        Endpoint.of(ops.INVITES_LOOKUP, tx(lambda s, r: invites.lookup(s, r.token))),
        Endpoint.of(ops.INVITES_ACCEPT, tx(lambda s, r: invites.accept(s, r, deps.passwords))),
        Endpoint.of(ops.USERS_LIST, tx(list_users)),
        Endpoint.of(ops.USERS_GET, tx(get_user)),
        Endpoint.of(ops.USERS_UPDATE, tx(users.update_user)),
        Endpoint.of(ops.SSH_KEYS_LIST, tx(list_keys)),
        Endpoint.of(ops.SSH_KEYS_ADD, tx(lambda s, r: keys.add(s, r.user_id, r.public_key, max_keys))),
        Endpoint.of(ops.SSH_KEYS_DELETE, tx(delete_key)),
        Endpoint.of(ops.SSH_KEYS_AUTHORIZED, tx(lambda s, r: keys.authorized(s, r.user_id))),
        Endpoint.of(ops.AUDIT_LIST, tx(list_audit)),
        Endpoint.of(ops.AUDIT_RECORD_REFUSAL, tx(lambda s, r: audit.record_refusal(s, r, bounds))),
        Endpoint.of(ops.AUDIT_VERIFY, tx(lambda s, r: audit.verify_chain(s, r, verify_budget_s))),
        *_group_endpoints(deps),
    ]


def _group_endpoints(deps: Deps) -> list[Endpoint[Any]]:
    tx = db.transactional(deps.sessions)

    return [
        Endpoint.of(ops.GROUPS_CREATE, tx(groups.create)),
        Endpoint.of(ops.GROUPS_LIST, tx(groups.list_page)),
        Endpoint.of(ops.GROUPS_GET, tx(lambda s, r: groups.get(s, r.id))),
        Endpoint.of(ops.GROUPS_UPDATE, tx(groups.update)),
        Endpoint.of(ops.GROUPS_DELETE, tx(lambda s, r: _done(groups.delete(s, r)))),
        Endpoint.of(ops.GROUPS_ADD_MEMBER, tx(lambda s, r: _done(groups.add_member(s, r)))),
        Endpoint.of(ops.GROUPS_REMOVE_MEMBER, tx(lambda s, r: _done(groups.remove_member(s, r)))),
        Endpoint.of(ops.GROUPS_OF_USER, tx(lambda s, r: groups.of_user(s, r.user_id))),
        Endpoint.of(ops.GROUPS_MEMBERSHIP, tx(groups.membership)),
        Endpoint.of(ops.GROUPS_NAMES, tx(groups.names)),
    ]


async def _done(change: Awaitable[None]) -> dict[str, str]:
    await change
    return {}
