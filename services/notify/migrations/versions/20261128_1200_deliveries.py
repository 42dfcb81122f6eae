"""Outgoing mail: the deliveries table (one row per mail, its state and retry schedule).

Revision ID: notify_0002
Revises: notify_0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "notify_0002"
down_revision = "notify_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("invite_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("payload", pg.JSONB, nullable=True),
        sa.Column("state", sa.Text, server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("event_id", name="uq_deliveries_event_id"),
        sa.CheckConstraint("state IN ('pending', 'retrying', 'sent', 'failed')", name="ck_deliveries_state"),
        sa.CheckConstraint("attempts >= 0", name="ck_deliveries_attempts"),
        schema="notify",
    )
    op.create_index("ix_deliveries_invite_id", "deliveries", ["invite_id"], schema="notify")
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        schema="notify",
        postgresql_where=sa.text("state IN ('pending', 'retrying')"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries", schema="notify")
    op.drop_index("ix_deliveries_invite_id", table_name="deliveries", schema="notify")
    op.drop_table("deliveries", schema="notify")
