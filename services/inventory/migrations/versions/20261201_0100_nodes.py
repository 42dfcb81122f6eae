"""Nodes, the revoked-serial projection and the desired-state projection.

Revision ID: inventory_0002
Revises: inventory_0001
Create Date: 2026-12-01 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "inventory_0002"
down_revision: str | None = "inventory_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("management_ip", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_version", sa.Text(), nullable=True),
        sa.Column("hardware", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("hardware_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("type IN ('linux', 'proxmox')", name=op.f("ck_nodes_type")),
        sa.CheckConstraint("status IN ('pending', 'online', 'offline', 'revoked')", name=op.f("ck_nodes_status")),
        sa.CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)", name=op.f("ck_nodes_revoked_at")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_nodes_hostname_live",
        "nodes",
        ["hostname"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status <> 'revoked'"),
    )
    op.create_index("ix_nodes_created", "nodes", ["created_at", "id"], schema=SCHEMA)
    op.create_index(
        "ix_nodes_online_last_seen",
        "nodes",
        ["last_seen_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'online'"),
    )
    op.create_table(
        "revoked_certificates",
        sa.Column("serial", sa.Text(), nullable=False),
        sa.Column("node_id", sa.UUID(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_revoked_certificates")),
        schema=SCHEMA,
    )
    op.create_index("ix_revoked_certificates_node_id", "revoked_certificates", ["node_id"], schema=SCHEMA)
    op.create_table(
        "desired_assignments",
        sa.Column("assignment_id", sa.UUID(), nullable=False),
        sa.Column("node_id", sa.UUID(), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_desired_assignments")),
        schema=SCHEMA,
    )
    op.create_index("ix_desired_assignments_node_id", "desired_assignments", ["node_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("desired_assignments", schema=SCHEMA)
    op.drop_table("revoked_certificates", schema=SCHEMA)
    op.drop_table("nodes", schema=SCHEMA)
