"""The heartbeat's protobuf messages as the dicts the rest of inventory keeps: the one place that
converts between the two (the gRPC edge), checking what a node sends like any other input."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from gpulab.agent.v1 import assignment_pb2
from gpulab.agent.v1 import heartbeat_pb2 as pb
from pydantic import ValidationError

from gpulab_core.contracts import inventory as c
from gpulab_core.errors import InvalidRequest
from gpulab_inventory.heartbeat.directory import Beat
from gpulab_inventory.heartbeat.reports import Entry

_STATES = {
    pb.APPLY_STATE_APPLIED: "applied",
    pb.APPLY_STATE_FAILED: "failed",
    pb.APPLY_STATE_REMOVED: "removed",
}


def beat(request: pb.HeartbeatRequest, wire: bytes) -> Beat:
    """The request as the Directory reads it: the messages' bytes to compare, and what they say,
    converted only when asked (when the bytes differ from the last ones the node sent). `wire`: the
    request's bytes as received, what `Directory.replay` compares."""
    # No Hardware message at all: nothing to report this time (what was recorded stays).
    hardware = request.hardware if request.HasField("hardware") else None
    # Unset before the agent's first reconcile: nothing to record.
    applied = request.applied_state if request.HasField("applied_state") else None
    return Beat(
        agent_version=request.agent_version,
        wire=wire,
        hardware_wire=hardware.SerializeToString(deterministic=True) if hardware is not None else None,
        hardware=lambda: hardware_dict(hardware),
        applied_wire=applied.SerializeToString(deterministic=True) if applied is not None else None,
        applied=lambda: applied_entries(applied),
    )


def assignment_from_spec(spec: dict[str, Any]) -> assignment_pb2.Assignment:
    message = assignment_pb2.Assignment()
    json_format.ParseDict(spec, message, ignore_unknown_fields=True)
    return message


def hardware_dict(hardware: Any) -> dict[str, Any]:
    """The agent's Hardware message as the REST `Node.hardware` object, checked like any input."""
    raw = {
        "cpu_model": hardware.cpu_model,
        "cpu_cores": hardware.cpu_cores,
        "ram_mb": hardware.ram_mb,
        "gpus": [
            {
                "index": g.index,
                "uuid": g.uuid,
                "name": g.name,
                "memory_mb": g.memory_mb,
                "mig_capable": g.mig_capable,
                "mig_enabled": g.mig_enabled,
            }
            for g in hardware.gpus
        ],
    }
    try:
        return c.Hardware.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"hardware.{where}: {first['msg']}") from None


def applied_entries(applied: Any) -> list[Entry]:
    """The agent's AppliedState as (assignment id, state or None when unknown, error, access port) entries."""
    return [(e.assignment_id, _STATES.get(e.state), e.error, e.access_port) for e in applied.assignments]
