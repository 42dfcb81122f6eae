"""The scheduler schema: its tables are declared on this metadata (outbox and processed events included)."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, JSONB, UUID

from gpulab_core.runtime import ServiceTables

SCHEMA = "scheduler"
tables = ServiceTables.for_schema(SCHEMA)
metadata = tables.metadata

environments = Table(
    "environments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("enforcement_mode", Text, nullable=False),
    Column("tunnel_provider", Text, nullable=False),
    Column("default_cpus", Integer, nullable=False),
    Column("default_ram_mb", BIGINT, nullable=False),
    Column("default_expiry_hours", Integer),
    Column("created_by", UUID(as_uuid=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Deleted environments keep their row: past assignments still name them.
    Column("deleted_at", DateTime(timezone=True)),
    # Self-service (scheduler_0009): `off` only admins assign; `approval` an admin decides each request;
    # `auto` a request that fits the quotas is granted (or queued) at once. max_hours: longest request.
    Column("self_service", Text, nullable=False, server_default=text("'off'")),
    Column("max_hours", Integer),
    CheckConstraint("enforcement_mode IN ('soft', 'cgroup', 'mig', 'container')", name="enforcement_mode"),
    CheckConstraint("tunnel_provider IN ('ssh_proxy_jump', 'netbird')", name="tunnel_provider"),
    CheckConstraint("self_service IN ('off', 'approval', 'auto')", name="self_service"),
    CheckConstraint("max_hours > 0", name="max_hours"),
)
Index("uq_environments_name_live", environments.c.name, unique=True, postgresql_where=text("deleted_at IS NULL"))
Index("ix_environments_created", environments.c.created_at, environments.c.id)

environment_nodes = Table(
    "environment_nodes",
    metadata,
    Column("environment_id", UUID(as_uuid=True), primary_key=True),
    Column("node_id", UUID(as_uuid=True), primary_key=True),
    Column("attached_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_environment_nodes_node", environment_nodes.c.node_id)

# inventory's nodes as the scheduler needs them, kept from inventory's events (never asked per
# request). Each fact carries the time of the event that set it: events of one node handled out of
# order by two replicas converge to the newest.
nodes = Table(
    "nodes",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("hostname", Text, nullable=False),
    Column("management_ip", Text),
    Column("ssh_port", Integer, nullable=False, server_default=text("22")),  # its sshd's, from node_created
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("status_at", DateTime(timezone=True), nullable=False),
    Column("hardware", JSONB),
    Column("hardware_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('pending', 'online', 'offline', 'revoked')", name="status"),
)

# One Linux account name per user, for every node and every assignment: stable and unique.
linux_users = Table(
    "linux_users",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("username", Text, nullable=False, unique=True),
    CheckConstraint("username ~ '^[a-z_][a-z0-9_-]{0,31}$'", name="username"),
)

# The user facts an assignment needs, as identity's events and answers last said them (scheduler_0010,
# users/directory.py): email and status (status_at: the time of the fact, newest wins), and the SSH
# public keys with identity's version of them (-1: not known yet).
users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("email", Text),
    Column("status", Text),
    Column("status_at", DateTime(timezone=True)),
    Column("public_keys", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("keys_version", BIGINT, nullable=False, server_default=text("-1")),
    CheckConstraint("status IN ('invited', 'active', 'disabled')", name="status"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("user_email", Text, nullable=False),
    Column("environment_id", UUID(as_uuid=True), nullable=False),
    Column("node_id", UUID(as_uuid=True), nullable=False),
    Column("placement", Text, nullable=False),
    Column("cpus", Integer, nullable=False),
    Column("ram_mb", BIGINT, nullable=False),
    Column("linux_username", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'active'")),
    Column("created_by", UUID(as_uuid=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("end_reason", Text),
    Column("expiry_warned_at", DateTime(timezone=True)),
    # What the node's agent last reported for it (inventory.assignment_state_reported, projections.py):
    # `pending` until a first report; `node_state_at` is that report's time, so that of two reports
    # applied out of order the newer stays. node_message is the node's sentence when it `failed`.
    Column("node_state", Text, nullable=False, server_default=text("'pending'")),
    Column("node_message", Text),
    Column("node_state_at", DateTime(timezone=True)),
    # Container mode: the port on the node's 127.0.0.1 where the assignment's container accepts SSH,
    # as its node last reported it with `applied`; null otherwise (the SSH config needs it).
    Column("node_access_port", Integer),
    # The request it was granted from (self-service), and the group its GPU-hours are charged to.
    Column("request_id", UUID(as_uuid=True)),
    Column("group_id", UUID(as_uuid=True)),
    CheckConstraint("placement IN ('dynamic', 'fixed')", name="placement"),
    CheckConstraint("status IN ('active', 'revoked', 'expired', 'released')", name="status"),
    CheckConstraint("node_state IN ('pending', 'applied', 'failed')", name="node_state"),
    CheckConstraint("node_access_port BETWEEN 1 AND 65535", name="node_access_port"),
    CheckConstraint("(status = 'active') = (ended_at IS NULL)", name="ended_at"),
)
Index("ix_assignments_created", assignments.c.created_at, assignments.c.id)
Index("ix_assignments_node_active", assignments.c.node_id, postgresql_where=text("status = 'active'"))
Index("ix_assignments_user", assignments.c.user_id)
Index("ix_assignments_expiry", assignments.c.expires_at, postgresql_where=text("status = 'active'"))
Index("ix_assignments_group", assignments.c.group_id, postgresql_where=text("group_id IS NOT NULL"))
Index("ix_assignments_ended", assignments.c.ended_at)

# A quota on a user or a group (scheduler_0009); a null limit is no limit, no row is no limit at all.
quotas = Table(
    "quotas",
    metadata,
    Column("subject_type", Text, primary_key=True),
    Column("subject_id", UUID(as_uuid=True), primary_key=True),
    Column("max_gpus", Integer),
    Column("max_hours", Integer),
    Column("gpu_hours_per_month", Integer),
    Column("updated_by", UUID(as_uuid=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("subject_type IN ('user', 'group')", name="subject_type"),
    CheckConstraint("max_gpus >= 0", name="max_gpus"),
    CheckConstraint("max_hours > 0", name="max_hours"),
    CheckConstraint("gpu_hours_per_month >= 0", name="gpu_hours_per_month"),
)

# A user's request for GPUs (`new`) or for more time on an assignment (`extension`). `seq` is the
# submission order, the queue's order within an Environment (scheduler_0009).
requests = Table(
    "requests",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("seq", BIGINT, Identity(always=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("user_email", Text, nullable=False),
    Column("environment_id", UUID(as_uuid=True), nullable=False),
    Column("group_id", UUID(as_uuid=True)),
    Column("assignment_id", UUID(as_uuid=True)),
    Column("gpus", Integer, nullable=False),
    Column("cpus", Integer, nullable=False),
    Column("ram_mb", BIGINT, nullable=False),
    Column("hours", Integer, nullable=False),
    Column("note", Text),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("queued_at", DateTime(timezone=True)),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", UUID(as_uuid=True)),
    CheckConstraint("kind IN ('new', 'extension')", name="kind"),
    CheckConstraint("status IN ('pending_approval', 'queued', 'granted', 'denied', 'cancelled')", name="status"),
    CheckConstraint("gpus >= 0", name="gpus"),
    CheckConstraint("hours > 0", name="hours"),
    CheckConstraint("kind = 'new' OR assignment_id IS NOT NULL", name="extension_names"),
)
Index("ix_requests_queue", requests.c.environment_id, requests.c.seq, postgresql_where=text("status = 'queued'"))
Index(
    "ix_requests_open",
    requests.c.status,
    requests.c.seq,
    postgresql_where=text("status IN ('pending_approval', 'queued')"),
)
Index("ix_requests_user", requests.c.user_id, requests.c.created_at)
Index("ix_requests_created", requests.c.created_at, requests.c.id)
Index("ix_requests_group", requests.c.group_id, postgresql_where=text("group_id IS NOT NULL"))

# The exact GPUs of every assignment. The partial unique index is what makes it impossible for two
# active assignments to hold one GPU, whatever the concurrency and the number of replicas.
# gpu_name and gpu_memory_mb are the node's report of the GPU when it was placed (scheduler_0003):
# what the assignment got, even after the node reports other hardware. Null only for rows from
# before that revision whose node no longer reported the GPU then.
assignment_gpus = Table(
    "assignment_gpus",
    metadata,
    Column("assignment_id", UUID(as_uuid=True), primary_key=True),
    Column("gpu_uuid", Text, primary_key=True),
    Column("gpu_index", SmallInteger, nullable=False),
    Column("node_id", UUID(as_uuid=True), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("gpu_name", Text),
    Column("gpu_memory_mb", BIGINT),
)
Index(
    "uq_assignment_gpus_held",
    assignment_gpus.c.node_id,
    assignment_gpus.c.gpu_uuid,
    unique=True,
    postgresql_where=text("active"),
)

# The NetBird access of an assignment whose Environment uses `netbird` (access/netbird_keys.py): the
# NetBird group its peers join, and its one current setup key, shown on every view while NetBird says it
# is valid. `setup_key` is the plain key (one-off, short-lived): kept so that a second view shows it
# again rather than minting another; cleared with the key id once the access is removed (`removed_at`),
# after the assignment ended.
netbird_access = Table(
    "netbird_access",
    metadata,
    Column("assignment_id", UUID(as_uuid=True), primary_key=True),
    Column("group_id", Text, nullable=False),
    Column("setup_key_id", Text),
    Column("setup_key", Text),
    Column("setup_key_expires_at", DateTime(timezone=True)),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("removed_at", DateTime(timezone=True)),
)
Index("ix_netbird_access_not_removed", netbird_access.c.assignment_id, postgresql_where=text("removed_at IS NULL"))
