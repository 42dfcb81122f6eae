"""What each assignment's node last reported for it (inventory.assignment_state_reported): `pending`
until the first report, then `applied` or `failed` with the node's message, and the time of the report
that set them, so that only a newer report replaces them.

Assignments made before this revision start `pending`: their node's next heartbeat sets them
(inventory_0004 records no outcome for them yet, so that report is a change).

Revision ID: scheduler_0004
Revises: scheduler_0003
Create Date: 2026-12-07 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scheduler_0004"
down_revision: str | None = "scheduler_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scheduler"


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "assignments",
        sa.Column("node_state", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        schema=S,
    )
    op.add_column("assignments", sa.Column("node_message", sa.Text(), nullable=True), schema=S)
    op.add_column("assignments", sa.Column("node_state_at", sa.DateTime(timezone=True), nullable=True), schema=S)
    op.create_check_constraint(
        op.f("ck_assignments_node_state"), "assignments", "node_state IN ('pending', 'applied', 'failed')", schema=S
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_assignments_node_state"), "assignments", schema=S, type_="check")
    op.drop_column("assignments", "node_state_at", schema=S)
    op.drop_column("assignments", "node_message", schema=S)
    op.drop_column("assignments", "node_state", schema=S)
