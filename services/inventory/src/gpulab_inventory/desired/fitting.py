"""Which of a node's assignments fit its heartbeat reply: the rules, no I/O.

A heartbeat reply carries the node's whole desired state, and gRPC refuses to send a reply larger than
GPULAB_HEARTBEAT_MAX_MESSAGE_BYTES: such a node would hear nothing at all, so every tenant on it would
keep stale access (a revoke would never arrive). Instead, when the assignments do not all fit, the
largest are left out ("withheld") until the rest fit. The reply stays complete for everyone else; a
withheld assignment is never sent, so the agent removes it if it had it (access fails closed), and it
is recorded as `failed` with the reason, so the user, the admin and the node's REST `problems` see it.
The largest go first because they are what made the reply too large (a tenant with huge keys), and
because that frees the most room while leaving out the fewest people. Ties go by id, so every replica
decides the same.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import json_format
from gpulab.agent.v1 import assignment_pb2

# Room in a reply for everything but its assignments: `heartbeat_interval_s` takes at most 6 bytes (a
# tag and a varint); the rest is kept for small fields added later.
REPLY_RESERVE_BYTES = 64
_TAG = 1  # `repeated Assignment assignments = 1`: field 1, length-delimited, one byte of tag


def varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def parse(spec: dict[str, Any]) -> assignment_pb2.Assignment:
    """A desired assignment's `spec` (the agent's Assignment as JSON) back into the message."""
    message = assignment_pb2.Assignment()
    json_format.ParseDict(spec, message, ignore_unknown_fields=True)
    return message


def reply_size(message: assignment_pb2.Assignment) -> int:
    """The bytes one assignment adds to a HeartbeatResponse on the wire."""
    size: int = message.ByteSize()
    return _TAG + varint_size(size) + size


Id = TypeVar("Id", bound=Hashable)  # an assignment id: a UUID in the database, a string in the reply


@dataclass(frozen=True)
class Fit(Generic[Id]):
    withheld: frozenset[Id]
    total: int  # the bytes all assignments together would take
    budget: int  # the bytes the assignments of one reply may take


def fit(sizes: Mapping[Id, int], max_message_bytes: int) -> Fit[Id]:
    """Leave out the largest assignments (ties: the higher id) until the rest fit one reply."""
    budget = max_message_bytes - REPLY_RESERVE_BYTES
    total = sum(sizes.values())
    left = total
    withheld: set[Id] = set()
    for assignment_id in sorted(sizes, key=lambda a: (sizes[a], str(a)), reverse=True):
        if left <= budget:
            break
        withheld.add(assignment_id)
        left -= sizes[assignment_id]
    return Fit(frozenset(withheld), total, budget)


def reason(size: int, plan: Fit[Any]) -> str:
    """The sentence recorded as the withheld assignment's `failed` message (at most 500 characters)."""
    return (
        f"left out of the node's heartbeat reply: the node's assignments together take {plan.total} bytes,"
        f" more than the {plan.budget} a reply may carry (GPULAB_HEARTBEAT_MAX_MESSAGE_BYTES), and this one"
        f" takes {size}, mostly its user's SSH keys; it is sent again once the node's assignments fit"
    )


def problem(count: int) -> str:
    """The node's REST `problems` entry while it has withheld assignments."""
    return (
        f"{count} assignment(s) left out of this node's heartbeat reply: its assignments do not fit one reply"
        " (GPULAB_HEARTBEAT_MAX_MESSAGE_BYTES); those users have no access here until they do"
    )
