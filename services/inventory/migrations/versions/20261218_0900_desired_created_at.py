"""desired_assignments.created_at: when the scheduler made the assignment (its created event's
`occurred_at`), so that of two assignments of a node holding one GPU, the older is known to have ended
even while its ended event is late (desired/service.py).

Revision ID: inventory_0009_created_at
Revises: inventory_0008_access_port
Create Date: 2026-12-18 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "inventory_0009_created_at"
down_revision: str | None = "inventory_0008_access_port"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds it without rewriting the table; rows from before count as oldest.
    op.add_column(
        "desired_assignments", sa.Column("created_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("desired_assignments", "created_at", schema=SCHEMA)
