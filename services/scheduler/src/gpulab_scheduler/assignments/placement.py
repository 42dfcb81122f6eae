"""Where an assignment goes: the node and its exact GPUs, with that node's row locked.

Placement. `fixed` takes the named node; `dynamic` takes the first node, in a documented order, that
has the room: online nodes of the environment by (free GPUs ascending, host name): best fit, which
keeps the nodes with the most free GPUs whole for the requests that need many (docs/adr/0013).
On the chosen node the GPUs with the lowest indices are taken.

Concurrency. A node's row in the scheduler's node projection is locked (`FOR UPDATE SKIP LOCKED`)
while its free GPUs, CPUs and RAM are counted and the assignment is written, so two replicas never
both fill the last GPU; a node locked by another request is skipped and the whole placement tried
again if no other node fitted, so a busy node is never reported full. The partial unique index on
(node, GPU) among active assignments is the last word: even a bug here cannot give one GPU twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts import scheduler as c
from gpulab_core.errors import Conflict, InvalidRequest
from gpulab_scheduler.assignments import placement_repository as repository
from gpulab_scheduler.environments.repository import Environment
from gpulab_scheduler.nodes import repository as node_rows
from gpulab_scheduler.nodes.repository import Node


class Busy(Exception):
    """Every node that might fit was locked by another placement: try the whole placement again."""


@dataclass(frozen=True)
class Room:
    node: Node
    free_gpus: list[dict[str, Any]]  # in index order
    free_cpus: int | None  # None: the node did not report its CPUs
    free_ram_mb: int | None


def usable_gpus(hardware: dict[str, Any] | None, mig_only: bool) -> list[dict[str, Any]]:
    """The node's GPUs an Environment may hand out (a `mig` one: only the MIG-capable), by index."""
    gpus = (hardware or {}).get("gpus", [])
    return sorted((g for g in gpus if g.get("mig_capable") or not mig_only), key=lambda g: g["index"])


async def _room(session: AsyncSession, node: Node, mig_only: bool) -> Room:
    held = await repository.held_gpu_uuids(session, node.id)
    used_cpus, used_ram = await repository.used_cpus_ram(session, node.id)
    hardware = node.hardware or {}
    free = [g for g in usable_gpus(hardware, mig_only) if g["uuid"] not in held]
    cores, ram = hardware.get("cpu_cores"), hardware.get("ram_mb")
    return Room(
        node=node,
        free_gpus=free,
        free_cpus=cores - used_cpus if cores else None,
        free_ram_mb=ram - used_ram if ram else None,
    )


@dataclass(frozen=True)
class Estimate:
    """A node's room from the candidates query (how many GPUs are free, not which), for ordering."""

    candidate: repository.Candidate
    free_gpus: int
    free_cpus: int | None
    free_ram_mb: int | None

    @classmethod
    def of(cls, candidate: repository.Candidate) -> Estimate:
        cores, ram = candidate.cpu_cores, candidate.ram_mb
        return cls(
            candidate=candidate,
            free_gpus=max(0, candidate.usable_gpus - candidate.held_gpus),
            free_cpus=cores - candidate.used_cpus if cores else None,
            free_ram_mb=ram - candidate.used_ram_mb if ram else None,
        )


def _shortfall(
    free_gpus: int, free_cpus: int | None, free_ram_mb: int | None, gpus: int, cpus: int, ram_mb: int
) -> str | None:
    """Why the request does not fit on a node with this much free, or None when it does."""
    if free_gpus < gpus:
        return "gpus"
    if cpus and free_cpus is not None and free_cpus < cpus:
        return "cpus"
    if ram_mb and free_ram_mb is not None and free_ram_mb < ram_mb:
        return "ram"
    return None


async def place(
    session: AsyncSession, env: Environment, req: c.CreateAssignmentRequest, cpus: int, ram_mb: int
) -> tuple[Room, list[dict[str, Any]]]:
    """The node and GPUs for the request, with that node's row locked until the transaction ends."""
    mig_only = env.enforcement_mode == "mig"
    found = await repository.candidates(session, req.environment_id, req.node_id, mig_only=mig_only)
    if req.placement == "fixed" and not found:
        raise InvalidRequest("the node is not attached to this environment", details={"field": "node_id"})
    online = [n for n in found if n.status == "online"]
    if not online:
        if req.placement == "fixed":
            raise Conflict(f"node {found[0].hostname} is {found[0].status}, not online", code=c.NO_CAPACITY)
        raise Conflict("no node of this environment is online", code=c.NO_CAPACITY)
    if req.placement == "fixed" and req.gpus > online[0].usable_gpus:
        raise InvalidRequest(
            f"node {online[0].hostname} has {online[0].usable_gpus} GPU(s); {req.gpus} were asked for",
            details={"field": "gpus"},
        )
    # Best fit: fewest free GPUs first (estimated in one query, counted exactly under the lock).
    rooms = [Estimate.of(n) for n in online]
    rooms.sort(key=lambda r: (r.free_gpus, r.candidate.hostname, str(r.candidate.id)))
    short: dict[str, int] = {}
    busy = False
    for guess in rooms:
        guessed = _shortfall(guess.free_gpus, guess.free_cpus, guess.free_ram_mb, req.gpus, cpus, ram_mb)
        if guessed is not None:
            short[guessed] = 1
            continue
        locked = await node_rows.lock_unless_locked(session, guess.candidate.id)
        if locked is None:
            busy = True
            continue
        room = await _room(session, locked, mig_only)
        why = _shortfall(len(room.free_gpus), room.free_cpus, room.free_ram_mb, req.gpus, cpus, ram_mb)
        if why is None and locked.status == "online" and locked.deleted_at is None:
            return room, room.free_gpus[: req.gpus]
        short[why or "gpus"] = 1
    if busy:
        raise Busy()
    most = max((r.free_gpus for r in rooms), default=0)
    if "gpus" in short or not short:
        detail = f"not enough free GPUs: {req.gpus} asked for, at most {most} free on one online node"
    elif "cpus" in short:
        detail = f"not enough free CPUs on the online nodes with {req.gpus} free GPU(s) ({cpus} asked for)"
    else:
        detail = f"not enough free RAM on the online nodes with {req.gpus} free GPU(s) ({ram_mb} MiB asked for)"
    raise Conflict(detail, code=c.NO_CAPACITY, details={"reason": next(iter(short), "gpus")})
