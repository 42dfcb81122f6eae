"""The desired-state projection: who each assignment is for, each user's latest SSH keys (by version),
and the assignments that ended (so that a late `assignment_created` cannot bring one back).

Revision ID: inventory_0003
Revises: inventory_0002
Create Date: 2026-12-10 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "inventory_0003"
down_revision: str | None = "inventory_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    # Nothing wrote desired_assignments before this revision (its consumer comes with it), so the
    # column can be required at once.
    op.add_column("desired_assignments", sa.Column("user_id", sa.UUID(), nullable=False), schema=SCHEMA)
    op.create_index("ix_desired_assignments_user_id", "desired_assignments", ["user_id"], schema=SCHEMA)
    op.create_table(
        "user_ssh_keys",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("public_keys", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_ssh_keys")),
        schema=SCHEMA,
    )
    op.create_table(
        "ended_assignments",
        sa.Column("assignment_id", sa.UUID(), nullable=False),
        sa.Column("node_id", sa.UUID(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_ended_assignments")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("ended_assignments", schema=SCHEMA)
    op.drop_table("user_ssh_keys", schema=SCHEMA)
    op.drop_index("ix_desired_assignments_user_id", table_name="desired_assignments", schema=SCHEMA)
    op.drop_column("desired_assignments", "user_id", schema=SCHEMA)
