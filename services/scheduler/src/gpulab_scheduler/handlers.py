"""The scheduler's NATS endpoints: parse (the contract models), call the rules, one transaction each."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import db
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import scheduler as c
from gpulab_core.errors import Conflict, NotFound, Unavailable
from gpulab_core.rpc import Endpoint
from gpulab_scheduler.access import AccessTarget, netbird_client, netbird_keys, provider_for
from gpulab_scheduler.assignments import service as assignments
from gpulab_scheduler.assignments.placement import Busy
from gpulab_scheduler.config import Settings
from gpulab_scheduler.environments import service as environments
from gpulab_scheduler.groups import service as groups
from gpulab_scheduler.identity_client import IdentityClient
from gpulab_scheduler.nodes import repository as node_rows
from gpulab_scheduler.usage import service as usage
from gpulab_scheduler.users.directory import UserDirectory

log = logging.getLogger(__name__)
# A placement that found every fitting node locked by others (or lost a race on a GPU) tries again.
PLACEMENT_ATTEMPTS = 50


def endpoints(
    sessions: async_sessionmaker[AsyncSession],
    identity: IdentityClient,
    settings: Settings,
    http: Any,
    on_revoked: Callable[[], None] | None = None,
) -> list[Endpoint[Any]]:
    tx = db.transactional(sessions)
    users = UserDirectory(sessions, identity)

    async def create_assignment(req: c.CreateAssignmentRequest) -> c.Assignment:
        started = time.monotonic()
        assignee = await assignments.check_request(req, users)
        for attempt in range(PLACEMENT_ATTEMPTS):
            try:
                async with sessions() as session, session.begin():
                    made, _event = await assignments.create(session, req, assignee)
                    # The caller stops waiting after its RPC timeout (the same setting on every
                    # service): past it, roll back rather than make an assignment it reports failed.
                    if time.monotonic() - started > settings.rpc_timeout_s * 0.8:
                        raise Unavailable("the placement took too long; nothing was assigned, try again")
                return made
            except (Busy, IntegrityError) as exc:
                if isinstance(exc, IntegrityError) and "uq_assignment_gpus_held" not in str(exc.orig):
                    raise
                # Rolled back, locks released: wait a little (growing, jittered) and place again.
                await asyncio.sleep(min(0.002 * (attempt + 1), 0.05) * (0.5 + random.random()))  # noqa: S311
        raise Conflict("the nodes of this environment are too busy right now; try again", code=c.NO_CAPACITY)

    async def access(req: c.MyAssignmentRequest) -> c.Access:
        async with sessions() as session:
            row = await assignments.row_of(session, req.id, req.user_id)  # another user's: not found
            if row.status != "active":
                raise Conflict(
                    f"the assignment has {row.status}; there is nothing to reach", code=c.ASSIGNMENT_ENDED_ALREADY
                )
            env = await assignments.environment_of(session, row.environment_id)
            node = await node_rows.get(session, row.node_id)
        if node is None or node.management_ip is None:
            raise NotFound("the node's management address is not known yet")
        container_port: int | None = None
        if env.enforcement_mode == "container" and env.tunnel_provider != "netbird":
            # The login is the container's sshd, on a port only the node's agent knows: no config
            # without it (one without the port would not get in).
            container_port = row.node_access_port
            if container_port is None:
                if row.node_state == "failed":
                    why = f"the node could not set it up: {row.node_message}"
                elif row.node_state == "applied":
                    # An agent from before access_port, or a Proxmox node (its CTs have addresses of
                    # their own, which no agent reports yet).
                    why = (
                        "the node applied it but reported no SSH port for its container (an agent older "
                        "than this control plane, or a Proxmox node, which the generated config does not "
                        "cover yet); an admin can check the node"
                    )
                else:
                    why = (
                        "the node has not reported the SSH port of the assignment's container yet; "
                        "try again in a minute"
                    )
                raise Conflict(f"access is not ready: {why}", code=c.ACCESS_NOT_READY)
        target = AccessTarget(
            assignment_id=row.id,
            user_email=row.user_email,
            linux_username=row.linux_username,
            node_hostname=node.hostname,
            management_ip=node.management_ip,
            ssh_port=node.ssh_port,
            expires_at=row.expires_at,
            container_port=container_port,
        )
        if env.tunnel_provider == "netbird":
            async with sessions() as session, session.begin():
                return await netbird_keys.view(session, netbird_client(settings, http), target, row.user_id)
        return await provider_for(env.tunnel_provider, settings).access(target)

    async def revoke(req: c.AssignmentIdRequest) -> c.Assignment:
        async with sessions() as session, session.begin():
            revoked = await assignments.revoke(session, req)
        # Its NetBird peers go now rather than at the next sweep; the sweep retries whatever fails.
        if on_revoked is not None:
            on_revoked()
        return revoked

    return [
        Endpoint.of(ops.ENVIRONMENTS_CREATE, tx(environments.create)),
        Endpoint.of(ops.ENVIRONMENTS_LIST, tx(environments.list_page)),
        Endpoint.of(ops.ENVIRONMENTS_GET, tx(environments.get)),
        Endpoint.of(ops.ENVIRONMENTS_UPDATE, tx(environments.update_environment)),
        Endpoint.of(ops.ENVIRONMENTS_DELETE, tx(environments.delete_environment)),
        Endpoint.of(ops.ENVIRONMENTS_ATTACH_NODE, tx(environments.attach)),
        Endpoint.of(ops.ENVIRONMENTS_DETACH_NODE, tx(environments.detach)),
        Endpoint.of(ops.ASSIGNMENTS_CREATE, create_assignment),
        Endpoint.of(ops.ASSIGNMENTS_LIST, tx(assignments.list_page)),
        Endpoint.of(ops.ASSIGNMENTS_GET, tx(assignments.get)),
        Endpoint.of(ops.ASSIGNMENTS_REVOKE, revoke),
        Endpoint.of(ops.ASSIGNMENTS_GET_MINE, tx(assignments.get_mine)),
        Endpoint.of(ops.ASSIGNMENTS_ACCESS, access),
        Endpoint.of(ops.USAGE_REPORT, tx(usage.report)),
        Endpoint.of(ops.GROUPS_CHARGED, tx(groups.charged)),
    ]
