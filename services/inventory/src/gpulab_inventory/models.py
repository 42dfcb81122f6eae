"""The inventory schema: its tables are declared on this metadata (outbox and processed events included)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    Table,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from gpulab_core.runtime import ServiceTables

SCHEMA = "inventory"
tables = ServiceTables.for_schema(SCHEMA)
metadata = tables.metadata

nodes = Table(
    "nodes",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("hostname", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("management_ip", Text, nullable=False),
    Column("ssh_port", Integer, nullable=False, server_default=text("22")),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    # Written in batches (every few seconds), never per heartbeat.
    Column("last_seen_at", DateTime(timezone=True)),
    Column("agent_version", Text),
    Column("hardware", JSONB),
    Column("hardware_changed_at", DateTime(timezone=True)),
    Column("status_changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", UUID(as_uuid=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("type IN ('linux', 'proxmox', 'jump')", name="type"),
    CheckConstraint("ssh_port BETWEEN 1 AND 65535", name="ssh_port"),
    CheckConstraint("status IN ('pending', 'online', 'offline', 'revoked')", name="status"),
    CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)", name="revoked_at"),
)
# One live node per host name; a revoked (deleted) node keeps its row and frees the name.
Index("uq_nodes_hostname_live", nodes.c.hostname, unique=True, postgresql_where=text("status <> 'revoked'"))
Index("ix_nodes_created", nodes.c.created_at, nodes.c.id)
# The offline sweeper's scan: online nodes by last contact.
Index("ix_nodes_online_last_seen", nodes.c.last_seen_at, postgresql_where=text("status = 'online'"))

# Serials pki revoked (from pki.certificates_revoked, backfilled from pki at start): the heartbeat
# port refuses them even before their node is marked revoked here.
revoked_certificates = Table(
    "revoked_certificates",
    metadata,
    Column("serial", Text, primary_key=True),
    Column("node_id", UUID(as_uuid=True)),  # unknown for serials backfilled from pki
    Column("revoked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_revoked_certificates_node_id", revoked_certificates.c.node_id)

# The desired state each node enforces: a projection of the scheduler's assignments, kept by the
# `desired-state` consumer (desired/service.py). One row per active assignment; `spec` is the agent's
# gpulab.agent.v1.Assignment as JSON (proto field names), what the heartbeat reply carries.
# `reported_*`: what the node's agent last reported for it (heartbeat/reports.py), null until its first
# report; written by the heartbeat path only when the report changes.
desired_assignments = Table(
    "desired_assignments",
    metadata,
    Column("assignment_id", UUID(as_uuid=True), primary_key=True),
    Column("node_id", UUID(as_uuid=True), nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),  # whose keys `spec.ssh_public_keys` holds
    Column("spec", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # When the scheduler made it (its created event's occurred_at); null for rows from before it was kept.
    Column("created_at", DateTime(timezone=True)),
    Column("reported_state", Text),
    Column("reported_message", Text),
    # Container mode's sshd port on the node's 127.0.0.1, when the agent reported it for an applied assignment.
    Column("reported_access_port", Integer),
    Column("reported_at", DateTime(timezone=True)),
    # Left out of the node's heartbeat reply: the node's desired state would not fit one reply
    # (desired/fitting.py). Never sent, recorded as `failed`; the node's REST `problems` say so.
    Column("withheld", Boolean, nullable=False, server_default=false()),
    CheckConstraint("reported_state IN ('applied', 'failed', 'removed')", name="reported_state"),
    CheckConstraint("reported_access_port BETWEEN 1 AND 65535", name="reported_access_port"),
)
Index("ix_desired_assignments_node_id", desired_assignments.c.node_id)
Index("ix_desired_assignments_user_id", desired_assignments.c.user_id)

# Each user's SSH keys as identity last said (identity.ssh_keys_changed): the full list and its
# version. Only a higher version replaces it, so events applied twice or out of order converge.
user_ssh_keys = Table(
    "user_ssh_keys",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("public_keys", ARRAY(Text), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Assignments that ended: with several consumer replicas an `assignment_ended` may be applied before
# its `assignment_created`, which must then not bring the assignment back.
ended_assignments = Table(
    "ended_assignments",
    metadata,
    Column("assignment_id", UUID(as_uuid=True), primary_key=True),
    Column("node_id", UUID(as_uuid=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
