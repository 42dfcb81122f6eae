"""The identity schema's first tables: the outbox and the consumers' processed-event ids.

Revision ID: identity_0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op

from gpulab_core.migrations import create_core_tables_v1

revision = "identity_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_core_tables_v1(op, "identity")


def downgrade() -> None:
    op.drop_table("processed_events", schema="identity")
    op.drop_table("outbox", schema="identity")
