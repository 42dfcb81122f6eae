"""Self-service and fair use: Environments' self-service mode and longest duration, quotas per user
and per group, GPU requests (new and extension) with their queue order, and on assignments the
request and group they came from and the `released` status.

Revision ID: scheduler_0009_self_service
Revises: scheduler_0008_access_port
Create Date: 2026-12-18 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "scheduler_0009_self_service"
down_revision: str | None = "scheduler_0008_access_port"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scheduler"
UUID = pg.UUID(as_uuid=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.add_column("environments", sa.Column("self_service", sa.Text(), nullable=False, server_default="off"), schema=S)
    op.add_column("environments", sa.Column("max_hours", sa.Integer(), nullable=True), schema=S)
    op.create_check_constraint(
        op.f("ck_environments_self_service"), "environments", "self_service IN ('off', 'approval', 'auto')", schema=S
    )
    op.create_check_constraint(op.f("ck_environments_max_hours"), "environments", "max_hours > 0", schema=S)

    op.add_column("assignments", sa.Column("request_id", UUID, nullable=True), schema=S)
    op.add_column("assignments", sa.Column("group_id", UUID, nullable=True), schema=S)
    op.drop_constraint(op.f("ck_assignments_status"), "assignments", schema=S, type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_status"), "assignments", "status IN ('active', 'revoked', 'expired', 'released')", schema=S
    )
    op.create_index(
        "ix_assignments_group", "assignments", ["group_id"], schema=S, postgresql_where=sa.text("group_id IS NOT NULL")
    )
    op.create_index("ix_assignments_ended", "assignments", ["ended_at"], schema=S)

    op.create_table(
        "quotas",
        sa.Column("subject_type", sa.Text(), primary_key=True),
        sa.Column("subject_id", UUID, primary_key=True),
        sa.Column("max_gpus", sa.Integer()),
        sa.Column("max_hours", sa.Integer()),
        sa.Column("gpu_hours_per_month", sa.Integer()),
        sa.Column("updated_by", UUID),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("subject_type IN ('user', 'group')", name=op.f("ck_quotas_subject_type")),
        sa.CheckConstraint("max_gpus >= 0", name=op.f("ck_quotas_max_gpus")),
        sa.CheckConstraint("max_hours > 0", name=op.f("ck_quotas_max_hours")),
        sa.CheckConstraint("gpu_hours_per_month >= 0", name=op.f("ck_quotas_gpu_hours_per_month")),
        sa.PrimaryKeyConstraint("subject_type", "subject_id", name=op.f("pk_quotas")),
        schema=S,
    )

    op.create_table(
        "requests",
        sa.Column("id", UUID, primary_key=True),
        # Submission order: the queue's order within an Environment.
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("user_email", sa.Text(), nullable=False),
        sa.Column("environment_id", UUID, nullable=False),
        sa.Column("group_id", UUID),
        sa.Column("assignment_id", UUID),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("ram_mb", sa.BigInteger(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("queued_at", sa.DateTime(timezone=True)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_by", UUID),
        sa.CheckConstraint("kind IN ('new', 'extension')", name=op.f("ck_requests_kind")),
        sa.CheckConstraint(
            "status IN ('pending_approval', 'queued', 'granted', 'denied', 'cancelled')",
            name=op.f("ck_requests_status"),
        ),
        sa.CheckConstraint("gpus >= 0", name=op.f("ck_requests_gpus")),
        sa.CheckConstraint("hours > 0", name=op.f("ck_requests_hours")),
        sa.CheckConstraint("kind = 'new' OR assignment_id IS NOT NULL", name=op.f("ck_requests_extension_names")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        schema=S,
    )
    op.create_index(
        "ix_requests_queue",
        "requests",
        ["environment_id", "seq"],
        schema=S,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_requests_open",
        "requests",
        ["status", "seq"],
        schema=S,
        postgresql_where=sa.text("status IN ('pending_approval', 'queued')"),
    )
    op.create_index("ix_requests_user", "requests", ["user_id", "created_at"], schema=S)
    op.create_index("ix_requests_created", "requests", ["created_at", "id"], schema=S)
    op.create_index(
        "ix_requests_group", "requests", ["group_id"], schema=S, postgresql_where=sa.text("group_id IS NOT NULL")
    )


def downgrade() -> None:
    op.drop_table("requests", schema=S)
    op.drop_table("quotas", schema=S)
    op.drop_index("ix_assignments_ended", "assignments", schema=S)
    op.drop_index("ix_assignments_group", "assignments", schema=S)
    op.execute("UPDATE scheduler.assignments SET status = 'revoked' WHERE status = 'released'")
    op.drop_constraint(op.f("ck_assignments_status"), "assignments", schema=S, type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_status"), "assignments", "status IN ('active', 'revoked', 'expired')", schema=S
    )
    op.drop_column("assignments", "group_id", schema=S)
    op.drop_column("assignments", "request_id", schema=S)
    op.drop_constraint(op.f("ck_environments_max_hours"), "environments", schema=S, type_="check")
    op.drop_constraint(op.f("ck_environments_self_service"), "environments", schema=S, type_="check")
    op.drop_column("environments", "max_hours", schema=S)
    op.drop_column("environments", "self_service", schema=S)
