"""Nodes as the admin sees them: create (with a first enrollment token), list, get, new token, delete.

Never commits: the NATS edge (handlers.py) owns the transaction. A call to pki runs inside it, so a
pki that does not answer rolls the whole change back and the admin sees 503 with nothing changed.
"""

from __future__ import annotations

import shlex
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import inventory as c
from gpulab_core.errors import Conflict, NotFound
from gpulab_inventory.config import Settings
from gpulab_inventory.desired import fitting
from gpulab_inventory.desired import repository as desired_repo
from gpulab_inventory.models import tables
from gpulab_inventory.nodes import repository
from gpulab_inventory.nodes.liveness import REVOKED
from gpulab_inventory.pki_client import PkiClient

SOURCE = "inventory"


def to_node(row: Any, problems: list[str] | None = None) -> c.Node:
    return c.Node(
        id=row.id,
        hostname=row.hostname,
        type=row.type,
        management_ip=row.management_ip,
        ssh_port=row.ssh_port,
        status=row.status,
        last_seen_at=row.last_seen_at,
        agent_version=row.agent_version,
        hardware=c.Hardware.model_validate(row.hardware) if row.hardware is not None else None,
        created_at=row.created_at,
        problems=problems or [],
    )


async def _problems(session: AsyncSession, node_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """Each node's problems: assignments withheld from its heartbeat reply (desired/fitting.py)."""
    counts = await desired_repo.withheld_counts(session, node_ids)
    return {node_id: [fitting.problem(count)] for node_id, count in counts.items()}


def install_command(settings: Settings, token: str, fingerprint: str) -> str:
    """The one line the admin runs on the node (the contract of install-agent.sh's arguments).

    The token is never an argument of any process, where every user of the node could read it (ps):
    the shell's builtin printf writes it after the script on bash's standard input, which the script
    reads with --token-file - once bash has read the script itself. `&&`: a failed download sends no
    token, and a script cut short runs nothing (its last line starts it)."""
    url = settings.public_url.rstrip("/")
    args = ["--url", url, "--ca-fingerprint", fingerprint]
    if settings.enroll_endpoint:
        args += ["--enroll-endpoint", settings.enroll_endpoint]
    args += ["--token-file", "-"]
    quoted = " ".join(shlex.quote(a) for a in args)
    script = shlex.quote(url + "/install-agent.sh")
    return f"{{ curl -fsSL {script} && printf '%s\\n' {shlex.quote(token)}; }} | sudo bash -s -- {quoted}"


async def _enrollment(pki: PkiClient, settings: Settings, node_id: uuid.UUID, actor: uuid.UUID | None) -> c.Enrollment:
    ca = await pki.ca()
    token = await pki.issue_token(node_id, actor)
    return c.Enrollment(
        token=token.token,
        expires_at=token.expires_at,
        install_command=install_command(settings, token.token, ca.sha256_fingerprint),
        ca_fingerprint=ca.sha256_fingerprint,
    )


async def create(session: AsyncSession, req: c.CreateNodeRequest, pki: PkiClient, settings: Settings) -> c.NodeCreated:
    node_id = uuid.uuid4()
    row = await repository.add(
        session, node_id, req.hostname, req.type, req.management_ip, req.actor_id, ssh_port=req.ssh_port
    )
    if row is None:
        raise Conflict(f"a node named {req.hostname} exists already", code=c.NODE_EXISTS)
    event = c.NodeCreatedEvent(
        node_id=node_id,
        hostname=req.hostname,
        type=req.type,
        management_ip=req.management_ip,
        ssh_port=req.ssh_port,
        actor_id=req.actor_id,
    )
    await outbox.emit(session, tables.outbox, c.NODE_CREATED, event.model_dump(mode="json"), source=SOURCE)
    enrollment = await _enrollment(pki, settings, node_id, req.actor_id)
    return c.NodeCreated(node=to_node(row), enrollment=enrollment)


async def _get_row(session: AsyncSession, node_id: uuid.UUID, *, lock: bool = False) -> Any:
    row = await repository.get(session, node_id, lock=lock)
    if row is None:
        raise NotFound("no such node")
    return row


async def get(session: AsyncSession, req: c.NodeIdRequest) -> c.Node:
    row = await _get_row(session, req.id)
    return to_node(row, (await _problems(session, [row.id])).get(row.id))


async def new_token(session: AsyncSession, req: c.NodeIdRequest, pki: PkiClient, settings: Settings) -> c.Enrollment:
    row = await _get_row(session, req.id, lock=True)  # a delete running now waits, or this sees it
    if row.status == REVOKED:
        raise Conflict("the node was deleted; add it again to enroll it", code=c.NODE_REVOKED)
    return await _enrollment(pki, settings, req.id, req.actor_id)


async def delete(session: AsyncSession, req: c.NodeIdRequest, pki: PkiClient) -> c.Node:
    """Revoke the node: its certificates and tokens stop working, its record stays (status `revoked`).
    Deleting a deleted node changes nothing and answers the same."""
    row = await _get_row(session, req.id, lock=True)
    if row.status == REVOKED:
        return to_node(row)
    await pki.revoke_node(req.id, req.actor_id)  # tokens too; before the commit, so a failure changes nothing
    row = await repository.mark_revoked(session, req.id, datetime.now(UTC))
    event = c.NodeDeletedEvent(node_id=req.id, hostname=row.hostname, actor_id=req.actor_id)
    await outbox.emit(session, tables.outbox, c.NODE_DELETED, event.model_dump(mode="json"), source=SOURCE)
    return to_node(row)


async def list_page(session: AsyncSession, req: c.ListNodesRequest) -> c.NodePage:
    rows, cursor = await repository.page(session, req.status, req.cursor, req.limit)
    problems = await _problems(session, [r.id for r in rows])
    return c.NodePage(items=[to_node(r, problems.get(r.id)) for r in rows], next_cursor=cursor)
