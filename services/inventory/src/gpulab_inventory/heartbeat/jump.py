"""The jump host's desired state: one forwarding-only account per user holding an active assignment
on any node, limited to those nodes' sshd (docs/adr/0017-managed-jump-host.md).

A node of type `jump` gets, instead of assignments of its own, one `ENFORCEMENT_MODE_JUMP` entry per
user: its id is the user's id (stable while the user holds anything), its Linux user name and keys
are the user's (as the nodes get them), and `forward_targets` lists `<management address>:<ssh port>`
of each node the user holds a sent (not withheld) assignment on that is not deleted. When the user's
last assignment ends (revoked, expired, node deleted, user disabled), the entry leaves the list and
the jump host's agent removes the account at its next heartbeat, as any node removes an ended one.

The rows come from desired/repository.py (`jump_rows`) at every heartbeat of the jump node, never
cached: any node's change is a change of the jump host's state, and one jump host's small query per
heartbeat costs less than keeping a cache in step with every node's changes. The entries are specs
(the agent's Assignment as JSON, proto field names) like every desired assignment, so the gRPC edge
decodes them as it decodes the others.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

JUMP_TYPE = "jump"
JUMP_MODE = "ENFORCEMENT_MODE_JUMP"


def forward_target(management_ip: str, ssh_port: int) -> str:
    """`host:port` as sshd's permitopen reads it: an IPv6 address in brackets."""
    host = ipaddress.ip_address(management_ip)
    return f"[{host}]:{ssh_port}" if host.version == 6 else f"{host}:{ssh_port}"


def accounts(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """One spec per user from `jump_rows` (ordered by user, then assignment)."""
    by_user: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        by_user.setdefault(row.user_id, []).append(row)
    return [_account(user_id, held) for user_id, held in by_user.items()]


def _account(user_id: uuid.UUID, held: list[Any]) -> dict[str, Any]:
    # Every row of a user carries the user's current keys (identity's ssh_keys_changed rewrites them all).
    latest = held[-1].spec
    spec: dict[str, Any] = {
        "assignment_id": str(user_id),
        "linux_username": latest.get("linux_username", ""),
        "ssh_public_keys": list(latest.get("ssh_public_keys", [])),
        "enforcement_mode": JUMP_MODE,
        "forward_targets": sorted({forward_target(r.management_ip, r.ssh_port) for r in held}),
    }
    # The account lasts as long as the longest of the assignments it serves: none if one never expires.
    ends = [r.spec.get("expires_at") for r in held]
    if all(ends):
        spec["expires_at"] = max(ends, key=lambda e: datetime.fromisoformat(e))
    return spec
