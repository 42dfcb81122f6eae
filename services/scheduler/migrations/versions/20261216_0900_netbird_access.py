"""netbird_access: the NetBird group and the one current setup key of each assignment (issue 12,
finding 7), so that a view of the access page shows the stored key instead of minting another, and the
assignment's peers are removed when it ends.

Revision ID: scheduler_0006_netbird_access
Revises: scheduler_0005_dead_letters
Create Date: 2026-12-16
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "scheduler_0006_netbird_access"
down_revision: str | None = "scheduler_0005_dead_letters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scheduler"


def upgrade() -> None:
    op.create_table(
        "netbird_access",
        sa.Column("assignment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("group_id", sa.Text(), nullable=False),
        sa.Column("setup_key_id", sa.Text(), nullable=True),
        sa.Column("setup_key", sa.Text(), nullable=True),
        sa.Column("setup_key_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_netbird_access")),
        schema=S,
    )
    op.create_index(
        "ix_netbird_access_not_removed",
        "netbird_access",
        ["assignment_id"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("removed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_netbird_access_not_removed", table_name="netbird_access", schema=S)
    op.drop_table("netbird_access", schema=S)
