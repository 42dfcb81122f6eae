"""What each node's agent last reported for each of its assignments (the heartbeat's applied_state),
kept on the desired assignment so that a replica that (re)loads a node compares with it and writes
only a change.

Revision ID: inventory_0004
Revises: inventory_0003
Create Date: 2026-12-10 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "inventory_0004"
down_revision: str | None = "inventory_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds them without rewriting the table.
    op.add_column("desired_assignments", sa.Column("reported_state", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column("desired_assignments", sa.Column("reported_message", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        "desired_assignments", sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA
    )
    op.create_check_constraint(
        op.f("ck_desired_assignments_reported_state"),
        "desired_assignments",
        "reported_state IN ('applied', 'failed', 'removed')",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_desired_assignments_reported_state"), "desired_assignments", schema=SCHEMA, type_="check"
    )
    op.drop_column("desired_assignments", "reported_at", schema=SCHEMA)
    op.drop_column("desired_assignments", "reported_message", schema=SCHEMA)
    op.drop_column("desired_assignments", "reported_state", schema=SCHEMA)
