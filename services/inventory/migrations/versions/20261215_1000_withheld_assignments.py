"""desired_assignments.withheld: an assignment left out of its node's heartbeat reply because the
node's whole desired state would not fit one reply (GPULAB_HEARTBEAT_MAX_MESSAGE_BYTES). The
projection decides it (desired/fitting.py) and records it as a `failed` outcome; the heartbeat path
never sends a withheld assignment, and REST names the node's problem.

Existing rows start as not withheld; the next change of a node's desired state, or the heartbeat path
meeting a reply that is too large, fits that node.

Revision ID: inventory_0006_withheld
Revises: inventory_0005_dead_letters
Create Date: 2026-12-15 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "inventory_0006_withheld"
down_revision: str | None = "inventory_0005_dead_letters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "desired_assignments",
        sa.Column("withheld", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("desired_assignments", "withheld", schema=SCHEMA)
