"""The jump host's desired state: one forwarding-only account per user holding an active assignment
on any node, limited to those nodes' sshd (docs/adr/0017-managed-jump-host.md).

A node of type `jump` gets, instead of assignments of its own, one `ENFORCEMENT_MODE_JUMP` entry per
user: its id is the user's id (stable while the user holds anything), its Linux user name and keys
are the user's (as the nodes get them), and `forward_targets` lists `<management address>:<ssh port>` of
each node the user holds a sent (not withheld) assignment on that is not deleted. When the user's
last assignment ends (revoked, expired, node deleted, user disabled), the entry leaves the list and
the jump host's agent removes the account at its next heartbeat, as any node removes an ended one.

It is computed from the desired-state rows at every heartbeat of the jump node, never cached: any
node's change is a change of the jump host's state, and one jump host's two small queries per
heartbeat cost less than keeping a cache of every node's changes in step.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime
from typing import Any

from gpulab.agent.v1 import assignment_pb2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_inventory.heartbeat import wire
from gpulab_inventory.models import desired_assignments, nodes

JUMP_TYPE = "jump"


def permit_open(management_ip: str, ssh_port: int) -> str:
    """`host:port` as sshd's permitopen reads it: an IPv6 address in brackets."""
    host = ipaddress.ip_address(management_ip)
    return f"[{host}]:{ssh_port}" if host.version == 6 else f"{host}:{ssh_port}"


async def accounts(session: AsyncSession) -> list[assignment_pb2.Assignment]:
    rows = (
        await session.execute(
            select(desired_assignments.c.user_id, desired_assignments.c.spec, nodes.c.management_ip, nodes.c.ssh_port)
            .join(nodes, nodes.c.id == desired_assignments.c.node_id)
            .where(
                desired_assignments.c.withheld.is_(False),
                nodes.c.status != "revoked",
                nodes.c.type != JUMP_TYPE,
            )
            .order_by(desired_assignments.c.user_id, desired_assignments.c.assignment_id)
        )
    ).all()
    by_user: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        by_user.setdefault(row.user_id, []).append(row)
    return [_account(user_id, held) for user_id, held in by_user.items()]


def _account(user_id: uuid.UUID, held: list[Any]) -> assignment_pb2.Assignment:
    specs = [wire.assignment_from_spec(r.spec) for r in held]
    # Every row of a user carries the user's current keys (identity's ssh_keys_changed rewrites them all).
    latest = specs[-1]
    account = assignment_pb2.Assignment(
        assignment_id=str(user_id),
        linux_username=latest.linux_username,
        ssh_public_keys=list(latest.ssh_public_keys),
        enforcement_mode=assignment_pb2.ENFORCEMENT_MODE_JUMP,
        forward_targets=sorted({permit_open(r.management_ip, r.ssh_port) for r in held}),
    )
    # The account lasts as long as the longest of the assignments it serves: none if one never expires.
    if all(s.HasField("expires_at") for s in specs):
        last: datetime = max(s.expires_at.ToDatetime() for s in specs)
        account.expires_at.FromDatetime(last)
    return account
