"""The inventory service's RPC contract (subjects `gpulab.rpc.inventory.<operation>`) and its events."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from gpulab_core.contracts.common import Contract, Page
from gpulab_core.contracts.events import EventPayload

SERVICE = "inventory"

# `jump` (added): the SSH jump host users connect through. Its agent keeps one forwarding-only account
# per user holding an active assignment anywhere, limited to those nodes (docs/adr/0017-managed-jump-host.md).
NodeType = Literal["linux", "proxmox", "jump"]
# The port sshd listens on when a node is created without one.
DEFAULT_SSH_PORT = 22
# A TCP port number: the header's 16 bits, 0 meaning none (RFC 9293).
TCP_PORT_MIN = 1
TCP_PORT_MAX = 65535
NodeStatus = Literal["pending", "online", "offline", "revoked"]

# RFC 1123 host names: labels of letters, digits and inner hyphens, 253 characters in all.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


class Gpu(Contract):
    index: int = Field(ge=0, le=1023)
    uuid: str = Field(max_length=128)
    name: str = Field(max_length=256)
    memory_mb: int = Field(ge=0)
    mig_capable: bool
    mig_enabled: bool


class Hardware(Contract):
    """As API.md's `Node.hardware`, field for field the agent's Hardware message."""

    cpu_model: str = Field(max_length=256)
    cpu_cores: int = Field(ge=0)
    ram_mb: int = Field(ge=0)
    gpus: list[Gpu] = Field(max_length=256)


class Node(Contract):
    id: uuid.UUID
    hostname: str
    type: NodeType
    management_ip: str
    ssh_port: int = Field(
        default=DEFAULT_SSH_PORT, description="added: the port of the node's sshd at its management address"
    )
    status: NodeStatus
    last_seen_at: datetime | None
    agent_version: str | None
    hardware: Hardware | None
    created_at: datetime
    problems: list[str] = Field(
        default_factory=list,
        description="added: what keeps this node from getting its whole desired state (empty when nothing): "
        "e.g. assignments left out of its heartbeat reply because together they do not fit one reply",
    )


class NodePage(Contract):
    items: list[Node]
    next_cursor: str | None


class Enrollment(Contract):
    """A fresh one-time token and the command that uses it; the token is shown this once."""

    token: str
    expires_at: datetime
    install_command: str
    ca_fingerprint: str  # SHA-256 of the CA certificate (DER), 64 lowercase hex digits


class NewNode(Contract):
    hostname: str = Field(min_length=1, max_length=253)
    type: NodeType
    management_ip: str = Field(max_length=64)
    ssh_port: int = Field(
        default=DEFAULT_SSH_PORT,
        ge=1,
        le=65535,
        description="added: the port of the node's sshd at its management address (default 22); the generated "
        "SSH config names it when it is not 22",
    )

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError("must be a host name: letters, digits, hyphens and dots (RFC 1123)")
        return value.lower()

    @field_validator("management_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IPv4 or IPv6 address") from None
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ValueError("must be an address without a zone (%...)")
        return str(address)


class CreateNodeRequest(NewNode):
    actor_id: uuid.UUID | None = None


class NodeCreated(Contract):
    node: Node
    enrollment: Enrollment


class NodeIdRequest(Contract):
    id: uuid.UUID
    actor_id: uuid.UUID | None = None


class ListNodesRequest(Page):
    status: NodeStatus | None = None


# Events (type → payload), on GPULAB_EVENTS.
NODE_CREATED = "inventory.node_created"
NODE_DELETED = "inventory.node_deleted"
NODE_ONLINE = "inventory.node_online"
NODE_OFFLINE = "inventory.node_offline"
NODE_HARDWARE_CHANGED = "inventory.node_hardware_changed"
ASSIGNMENT_STATE_REPORTED = "inventory.assignment_state_reported"

# A node's report about one assignment: in force, failed (`message` says why), or its access removed.
AppliedState = Literal["applied", "failed", "removed"]


class NodeCreatedEvent(EventPayload):
    node_id: uuid.UUID
    hostname: str
    type: str
    management_ip: str
    ssh_port: int = DEFAULT_SSH_PORT  # added; absent in events written before it
    actor_id: uuid.UUID | None = None


class NodeDeletedEvent(EventPayload):
    """The node is revoked: its certificates and tokens no longer work; its assignments must end."""

    node_id: uuid.UUID
    hostname: str
    actor_id: uuid.UUID | None = None


class NodeOnlineEvent(EventPayload):
    """A heartbeat arrived from a node that was `pending` (first contact) or `offline` (it came back)."""

    node_id: uuid.UUID
    hostname: str
    previous_status: Literal["pending", "offline"]
    at: datetime
    offline_since: datetime | None = None  # when it had gone quiet, for a node that was offline


class NodeOfflineEvent(EventPayload):
    """No heartbeat for 3 intervals."""

    node_id: uuid.UUID
    hostname: str
    last_seen_at: datetime | None
    at: datetime


class NodeHardwareChangedEvent(EventPayload):
    node_id: uuid.UUID
    hostname: str
    hardware: dict[str, object]
    previous: dict[str, object] | None = None


class AssignmentStateReported(EventPayload):
    """A node's agent reported a new outcome for one of the assignments it was given: emitted only
    when the outcome differs from what that node last reported for it (heartbeat/reports.py)."""

    assignment_id: uuid.UUID
    node_id: uuid.UUID  # the node that reported it (its certificate's CN), always the assignment's own
    state: AppliedState
    message: str | None  # the node's sentence on why it failed (at most 500 characters); None otherwise
    reported_at: datetime  # when inventory recorded it: the newest report wins
    # added: in container mode, the node-local port (127.0.0.1) where the applied assignment's container
    # accepts SSH, reached through the node account's sshd; None in other modes, unless applied, or while
    # the agent has not reported it. Always TCP_PORT_MIN..TCP_PORT_MAX (inventory drops any other).
    access_port: int | None = None


# Error codes.
NODE_EXISTS = "node_exists"  # another node that is not revoked has this host name
NODE_REVOKED = "node_revoked"  # the node was deleted; it cannot get a new token
