"""What the agent's last reconcile did (`HeartbeatRequest.applied_state`), recorded only when it changes.

The agent sends its last outcome for every assignment in every heartbeat; almost always it is the
one it sent before. So the Directory compares the report's bytes with the last ones it handled for the
node, then each outcome with the node's cached copy (`CachedNode.reported`, loaded with the desired
state); only an outcome that differs is written, under the node's row lock, on the node's own desired
assignment (`desired_assignments.reported_*`), with one `inventory.assignment_state_reported` event
each through the outbox. The UPDATE compares with the row as it is, so two replicas (or two
heartbeats) racing with the same report produce one event.

- Only the assignments the node was given count: an id that is not in the node's desired state (never
  sent to it, another node's, one that ended and left its list, or one withheld from its reply by
  desired/fitting.py) is ignored. Nothing a node reports can touch another node's assignment.
- Bounds: more than MAX_ENTRIES entries is refused (INVALID_ARGUMENT), like an out-of-bounds hardware
  report. A message is the node's free-text sentence: it is cut to MESSAGE_MAX characters and a NUL
  (which PostgreSQL text cannot hold) replaced, never refused, because refusing the heartbeat over a
  verbose error would also stop its liveness and its desired state.
- An access port (container mode's sshd on the node's 127.0.0.1, `AppliedAssignment.access_port`) is
  kept only on an `applied` outcome and only from TCP_PORT_MIN to TCP_PORT_MAX; any other non-zero value
  is ignored (recorded as none) with a log line, never refused, for the same reason.
- `reported_at` is the database's clock (`clock_timestamp()`) taken under the node's row lock, so the
  reports of one node are in the order they were recorded whichever replica recorded them; the
  scheduler keeps the newest.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import outbox
from gpulab_core.contracts import inventory as c
from gpulab_core.errors import InvalidRequest
from gpulab_inventory.models import tables

log = logging.getLogger(__name__)

SOURCE = "inventory"
# A node holds at most 256 assignments at once (each has a GPU of its own, and a hardware report lists
# at most 256 GPUs); the agent also reports those that just left its list. Four times that is plenty.
MAX_ENTRIES = 1024
MESSAGE_MAX = 500  # characters of a failure's message kept and shown

# (state, message, access port): the outcome of one assignment as recorded. message is None unless it
# failed; the access port is None unless it was applied in a mode that has one (container).
Outcome = tuple[str, str | None, int | None]

# One entry of the report as the gRPC edge hands it over (heartbeat/wire.py): (assignment id, the
# state it names, None when it names none we know; the agent's error sentence; its access port, 0 for none).
Entry = tuple[str, str | None, str, int]

_RECORD = text(
    "UPDATE inventory.desired_assignments AS d "
    "SET reported_state = v.state, reported_message = v.message, reported_access_port = v.port, "
    "reported_at = clock_timestamp() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:states AS text[]), CAST(:messages AS text[]), CAST(:ports AS integer[])) "
    "AS v(id, state, message, port) "
    "WHERE d.assignment_id = v.id AND d.node_id = :node_id AND NOT d.withheld "
    "AND (d.reported_state, d.reported_message, d.reported_access_port) IS DISTINCT FROM (v.state, v.message, v.port) "
    "RETURNING d.assignment_id, d.reported_state, d.reported_message, d.reported_access_port, d.reported_at"
).bindparams(bindparam("ids"), bindparam("states"), bindparam("messages"), bindparam("ports"), bindparam("node_id"))


def outcomes(entries: Sequence[Entry], desired: Mapping[str, Outcome | None]) -> dict[str, Outcome]:
    """The report's outcome for each assignment of `desired` (id → last recorded outcome) it names;
    the first entry of an id counts (as the agent itself does with a repeated id). An entry with no
    known state is skipped. Raises InvalidRequest when the report is out of bounds."""
    if len(entries) > MAX_ENTRIES:
        raise InvalidRequest(f"applied_state has more than {MAX_ENTRIES} assignments")
    found: dict[str, Outcome] = {}
    for assignment_id, state, error, port in entries:
        if assignment_id not in desired or assignment_id in found:
            continue
        if state is not None:
            found[assignment_id] = (
                state,
                _message(error) if state == "failed" else None,
                _port(assignment_id, port) if state == "applied" else None,
            )
    return found


def changed(found: Mapping[str, Outcome], desired: Mapping[str, Outcome | None]) -> dict[str, Outcome]:
    return {assignment_id: o for assignment_id, o in found.items() if desired.get(assignment_id) != o}


def _port(assignment_id: str, port: int) -> int | None:
    """The reported access port when it is a TCP port; 0 (none) and anything out of range are None."""
    if port == 0:
        return None
    if not c.TCP_PORT_MIN <= port <= c.TCP_PORT_MAX:
        log.warning(
            "assignment %.64s: the agent reported access port %d, not %d to %d: ignored",
            assignment_id,
            port,
            c.TCP_PORT_MIN,
            c.TCP_PORT_MAX,
        )
        return None
    return port


def _message(sentence: str) -> str | None:
    sentence = sentence.replace("\x00", "\ufffd")
    if len(sentence) > MESSAGE_MAX:
        sentence = sentence[: MESSAGE_MAX - 1] + "…"
    return sentence or None


async def record(session: AsyncSession, node_id: uuid.UUID, outcomes: Mapping[str, Outcome]) -> int:
    """Write each outcome that differs from the one recorded for that assignment of this node, with an
    event each; returns how many. The caller holds the node's row lock."""
    ids = list(outcomes)
    rows = (
        await session.execute(
            _RECORD,
            {
                "ids": ids,
                "states": [outcomes[i][0] for i in ids],
                "messages": [outcomes[i][1] for i in ids],
                "ports": [outcomes[i][2] for i in ids],
                "node_id": node_id,
            },
        )
    ).all()
    await announce(session, node_id, rows)
    return len(rows)


async def announce(session: AsyncSession, node_id: uuid.UUID, rows: Sequence[Any]) -> None:
    """One `inventory.assignment_state_reported` per recorded outcome: rows of (assignment_id,
    reported_state, reported_message, reported_access_port, reported_at)."""
    for row in rows:
        event = c.AssignmentStateReported(
            assignment_id=row.assignment_id,
            node_id=node_id,
            state=row.reported_state,
            message=row.reported_message,
            access_port=row.reported_access_port,
            reported_at=row.reported_at,
        )
        await outbox.emit(
            session, tables.outbox, c.ASSIGNMENT_STATE_REPORTED, event.model_dump(mode="json"), source=SOURCE
        )
