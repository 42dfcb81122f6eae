"""Environments and their nodes, the node projection, Linux usernames, assignments and their exact GPUs.

Revision ID: scheduler_0002
Revises: scheduler_0001
Create Date: 2026-12-01 14:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "scheduler_0002"
down_revision: str | None = "scheduler_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scheduler"


def _ts(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column[object]:
    default = {"server_default": sa.text("now()")} if now else {}
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, **default)  # type: ignore[arg-type]


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("enforcement_mode", sa.Text(), nullable=False),
        sa.Column("tunnel_provider", sa.Text(), nullable=False),
        sa.Column("default_cpus", sa.Integer(), nullable=False),
        sa.Column("default_ram_mb", sa.BIGINT(), nullable=False),
        sa.Column("default_expiry_hours", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _ts("created_at", nullable=False, now=True),
        _ts("deleted_at"),
        sa.CheckConstraint(
            "enforcement_mode IN ('soft', 'cgroup', 'mig', 'container')", name=op.f("ck_environments_enforcement_mode")
        ),
        sa.CheckConstraint(
            "tunnel_provider IN ('ssh_proxy_jump', 'netbird')", name=op.f("ck_environments_tunnel_provider")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        schema=S,
    )
    op.create_index(
        "uq_environments_name_live",
        "environments",
        ["name"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("ix_environments_created", "environments", ["created_at", "id"], schema=S)
    op.create_table(
        "environment_nodes",
        sa.Column("environment_id", sa.UUID(), nullable=False),
        sa.Column("node_id", sa.UUID(), nullable=False),
        _ts("attached_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("environment_id", "node_id", name=op.f("pk_environment_nodes")),
        schema=S,
    )
    op.create_index("ix_environment_nodes_node", "environment_nodes", ["node_id"], schema=S)
    op.create_table(
        "nodes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("management_ip", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        _ts("status_at", nullable=False),
        sa.Column("hardware", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        _ts("hardware_at"),
        _ts("deleted_at"),
        sa.CheckConstraint("status IN ('pending', 'online', 'offline', 'revoked')", name=op.f("ck_nodes_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        schema=S,
    )
    op.create_table(
        "linux_users",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.CheckConstraint("username ~ '^[a-z_][a-z0-9_-]{0,31}$'", name=op.f("ck_linux_users_username")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_linux_users")),
        sa.UniqueConstraint("username", name=op.f("uq_linux_users_username")),
        schema=S,
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("user_email", sa.Text(), nullable=False),
        sa.Column("environment_id", sa.UUID(), nullable=False),
        sa.Column("node_id", sa.UUID(), nullable=False),
        sa.Column("placement", sa.Text(), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("ram_mb", sa.BIGINT(), nullable=False),
        sa.Column("linux_username", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'active'"), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _ts("created_at", nullable=False, now=True),
        _ts("expires_at"),
        _ts("ended_at"),
        sa.Column("end_reason", sa.Text(), nullable=True),
        _ts("expiry_warned_at"),
        sa.CheckConstraint("placement IN ('dynamic', 'fixed')", name=op.f("ck_assignments_placement")),
        sa.CheckConstraint("status IN ('active', 'revoked', 'expired')", name=op.f("ck_assignments_status")),
        sa.CheckConstraint("(status = 'active') = (ended_at IS NULL)", name=op.f("ck_assignments_ended_at")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        schema=S,
    )
    op.create_index("ix_assignments_created", "assignments", ["created_at", "id"], schema=S)
    op.create_index(
        "ix_assignments_node_active",
        "assignments",
        ["node_id"],
        schema=S,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index("ix_assignments_user", "assignments", ["user_id"], schema=S)
    op.create_index(
        "ix_assignments_expiry", "assignments", ["expires_at"], schema=S, postgresql_where=sa.text("status = 'active'")
    )
    op.create_table(
        "assignment_gpus",
        sa.Column("assignment_id", sa.UUID(), nullable=False),
        sa.Column("gpu_uuid", sa.Text(), nullable=False),
        sa.Column("gpu_index", sa.SmallInteger(), nullable=False),
        sa.Column("node_id", sa.UUID(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.PrimaryKeyConstraint("assignment_id", "gpu_uuid", name=op.f("pk_assignment_gpus")),
        schema=S,
    )
    op.create_index(
        "uq_assignment_gpus_held",
        "assignment_gpus",
        ["node_id", "gpu_uuid"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("active"),
    )


def downgrade() -> None:
    for table in ("assignment_gpus", "assignments", "linux_users", "nodes", "environment_nodes", "environments"):
        op.drop_table(table, schema=S)
