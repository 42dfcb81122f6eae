"""The scheduler's RPC contract (subjects `gpulab.rpc.scheduler.<operation>`) and its events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from gpulab_core.contracts.common import Contract, Page
from gpulab_core.contracts.events import EventPayload

SERVICE = "scheduler"

EnforcementMode = Literal["soft", "cgroup", "mig", "container"]
TunnelProvider = Literal["ssh_proxy_jump", "netbird"]
Placement = Literal["dynamic", "fixed"]
AssignmentStatus = Literal["active", "revoked", "expired", "released"]
NodeState = Literal["pending", "applied", "failed"]
EndReason = Literal["revoked", "expired", "released", "node_deleted", "user_disabled"]
SelfService = Literal["off", "approval", "auto"]

MAX_CPUS = 4096
MAX_RAM_MB = 64 * 1024 * 1024  # 64 TiB
MAX_EXPIRY_HOURS = 24 * 366


# ---- environments ----
class EnvironmentFields(Contract):
    name: str = Field(min_length=1, max_length=100)
    enforcement_mode: EnforcementMode
    tunnel_provider: TunnelProvider
    default_cpus: int = Field(default=0, ge=0, le=MAX_CPUS)  # 0: no CPU limit
    default_ram_mb: int = Field(default=0, ge=0, le=MAX_RAM_MB)  # 0: no memory limit
    default_expiry_hours: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_HOURS)  # None: no expiry
    self_service: SelfService = Field(
        default="off",
        description="`off`: only admins assign; `approval`: users request, an admin decides; `auto`: a request"
        " that fits the quotas is granted at once, or queued",
    )
    max_hours: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_HOURS, description="longest request; null: none")


class Environment(EnvironmentFields):
    id: uuid.UUID
    node_ids: list[uuid.UUID]
    created_at: datetime


class EnvironmentPage(Contract):
    items: list[Environment]
    next_cursor: str | None


class CreateEnvironmentRequest(EnvironmentFields):
    actor_id: uuid.UUID | None = None


class EnvironmentChange(Contract):
    """PATCH: only the fields given change."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    enforcement_mode: EnforcementMode | None = None
    tunnel_provider: TunnelProvider | None = None
    default_cpus: int | None = Field(default=None, ge=0, le=MAX_CPUS)
    default_ram_mb: int | None = Field(default=None, ge=0, le=MAX_RAM_MB)
    default_expiry_hours: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_HOURS)
    self_service: SelfService | None = None
    max_hours: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_HOURS)


class UpdateEnvironmentRequest(EnvironmentChange):
    id: uuid.UUID
    actor_id: uuid.UUID | None = None


class EnvironmentIdRequest(Contract):
    id: uuid.UUID
    actor_id: uuid.UUID | None = None


class EnvironmentNodeRequest(Contract):
    id: uuid.UUID  # the environment
    node_id: uuid.UUID
    actor_id: uuid.UUID | None = None


# ---- assignments ----
class AssignedGpu(Contract):
    index: int
    uuid: str
    # Added: the GPU as its node reported it when the assignment was placed. Null only for a GPU of an
    # assignment made before these were kept whose node no longer reports it.
    name: str | None = Field(description="the GPU's model, as nvidia-smi names it (`NVIDIA A100-SXM4-80GB`)")
    memory_mb: int | None = Field(description="the GPU's memory in MiB")


class Assignment(Contract):
    id: uuid.UUID
    user_id: uuid.UUID
    environment_id: uuid.UUID
    # Added (with node_hostname), so that a user, who cannot read /nodes or /environments, sees where
    # and what: the Environment's current name, and the node's host name (kept after it is deleted).
    environment_name: str
    node_id: uuid.UUID
    node_hostname: str
    placement: Placement
    gpus: list[AssignedGpu]
    cpus: int
    ram_mb: int
    linux_username: str
    status: AssignmentStatus
    created_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
    node_state: NodeState = Field(
        description=(
            "what the node's agent last reported for this assignment: `pending` until its first report,"
            " `applied` (the user, keys and enforcement are in place), `failed` (node_message says why;"
            " the agent retries at each heartbeat). For an ended assignment, the last report from while it"
            " was in force"
        )
    )
    node_message: str | None = Field(
        description="the node's sentence on why it failed (at most 500 characters); null unless node_state is failed"
    )
    request_id: uuid.UUID | None = Field(default=None, description="the self-service request it was granted from")
    group_id: uuid.UUID | None = Field(default=None, description="the group its GPU-hours are charged to")


class AssignmentPage(Contract):
    items: list[Assignment]
    next_cursor: str | None


class NewAssignment(Contract):
    user_id: uuid.UUID
    environment_id: uuid.UUID
    gpus: int = Field(ge=1, le=256)
    cpus: int | None = Field(default=None, ge=0, le=MAX_CPUS)  # None: the environment's default
    ram_mb: int | None = Field(default=None, ge=0, le=MAX_RAM_MB)
    placement: Placement
    node_id: uuid.UUID | None = None  # required for `fixed`, refused for `dynamic`
    expires_at: AwareDatetime | None = None  # None: the environment's default expiry (if any)


class CreateAssignmentRequest(NewAssignment):
    actor_id: uuid.UUID | None = None


class ListAssignmentsRequest(Page):
    user_id: uuid.UUID | None = None
    environment_id: uuid.UUID | None = None
    node_id: uuid.UUID | None = None
    status: AssignmentStatus | None = None


class AssignmentIdRequest(Contract):
    id: uuid.UUID
    actor_id: uuid.UUID | None = None


class MyAssignmentRequest(Contract):
    """A user asking about one of their own assignments: another user's is `not_found`."""

    id: uuid.UUID
    user_id: uuid.UUID


class Access(Contract):
    """How the user reaches the node: an SSH config (`ssh_proxy_jump`) or a NetBird setup key."""

    provider: TunnelProvider
    ssh_config: str | None = None
    ssh_command: str | None = None
    setup_key: str | None = None
    management_url: str | None = None
    expires_at: datetime | None = None


# ---- events (type → payload), on GPULAB_EVENTS ----
ENVIRONMENT_CREATED = "scheduler.environment_created"
ENVIRONMENT_UPDATED = "scheduler.environment_updated"
ENVIRONMENT_DELETED = "scheduler.environment_deleted"
NODE_ATTACHED = "scheduler.node_attached"
NODE_DETACHED = "scheduler.node_detached"
ASSIGNMENT_CREATED = "scheduler.assignment_created"
ASSIGNMENT_ENDED = "scheduler.assignment_ended"
ASSIGNMENT_EXPIRING = "scheduler.assignment_expiring"
ASSIGNMENT_FAILED = "scheduler.assignment_failed"
# The NetBird setup key of an assignment, made for its user (audited), and the NetBird group, keys and
# peers of an ended assignment removed (issue 12, finding 7).
NETBIRD_KEY_ISSUED = "scheduler.netbird_key_issued"
NETBIRD_ACCESS_REMOVED = "scheduler.netbird_access_removed"


class EnvironmentEvent(EventPayload):
    """created / updated (`changes`: field → new value) / deleted."""

    environment_id: uuid.UUID
    name: str
    actor_id: uuid.UUID | None = None
    changes: dict[str, object] = Field(default_factory=dict)


class EnvironmentNodeEvent(EventPayload):
    environment_id: uuid.UUID
    environment_name: str
    node_id: uuid.UUID
    actor_id: uuid.UUID | None = None


class EventGpu(EventPayload):
    """A GPU as events carry it: lenient about fields added later, like every event payload."""

    index: int
    uuid: str


class AssignmentCreated(EventPayload):
    """Everything a node needs to enforce it (inventory's desired state) and the user needs to know."""

    assignment_id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    environment_id: uuid.UUID
    environment_name: str
    node_id: uuid.UUID
    node_hostname: str
    placement: Placement
    linux_username: str
    ssh_public_keys: list[str]  # the user's keys when it was made; later changes come from identity
    enforcement_mode: EnforcementMode
    gpus: list[EventGpu]
    cpus: int
    ram_mb: int
    expires_at: datetime | None
    actor_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None  # the self-service request it grants, if any
    group_id: uuid.UUID | None = None  # the group it is charged to, if any
    # Set when an admin's assignment exceeded a quota: the sentence the audit log shows.
    over_quota: str | None = None


class AssignmentEnded(EventPayload):
    assignment_id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    node_id: uuid.UUID
    node_hostname: str
    reason: EndReason
    ended_at: datetime
    actor_id: uuid.UUID | None = None


class AssignmentExpiring(EventPayload):
    """24 h before an assignment's expiry (once)."""

    assignment_id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    node_hostname: str
    expires_at: datetime


class AssignmentFailed(EventPayload):
    """The assignment's node reported that it could not apply it (its `node_state` became `failed`):
    once per failure, i.e. when the state turns to `failed` from `pending` or `applied`, never again
    for the same failure however many heartbeats repeat it. Admins are mailed about it (notify)."""

    assignment_id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    node_id: uuid.UUID
    node_hostname: str
    linux_username: str
    message: str | None  # the node's sentence (at most 500 characters)
    reported_at: datetime


class NetbirdKeyIssued(EventPayload):
    """A one-off NetBird setup key made for an assignment's user; never the key itself, only its
    NetBird id (what NetBird's dashboard and activity log name it by)."""

    assignment_id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    node_hostname: str
    setup_key_id: str
    setup_key_name: str
    netbird_group_id: str
    expires_at: datetime | None
    replaced_setup_key_id: str | None = None  # the used or expired key this one replaces
    actor_id: uuid.UUID | None = None  # the user whose view of the access page made it


class NetbirdAccessRemoved(EventPayload):
    """An ended assignment's NetBird group, the setup keys that name it and the peers in it, deleted."""

    assignment_id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    netbird_group_id: str
    setup_keys_removed: int
    peers_removed: list[str]  # the removed peers' names, as NetBird lists them


# ---- error codes ----
NO_CAPACITY = "no_capacity"  # 409; the detail says what was short
USER_HAS_NO_SSH_KEY = "user_has_no_ssh_key"  # 422
NODE_NOT_MIG_CAPABLE = "node_not_mig_capable"  # 409
ENVIRONMENT_EXISTS = "environment_exists"  # 409: the name is taken
ENVIRONMENT_IN_USE = "environment_in_use"  # 409: it has active assignments
ASSIGNMENT_ENDED_ALREADY = "assignment_not_active"  # 409
ACCESS_PROVIDER_FAILED = "access_provider_unavailable"  # 502: NetBird did not answer, or refused
# 409: the node has not reported what the access needs yet (container mode: its container's SSH port)
ACCESS_NOT_READY = "access_not_ready"
