"""assignments.node_access_port: in container mode, the port on the node's 127.0.0.1 where the
assignment's container accepts SSH, as its node reported it with `applied`
(inventory.assignment_state_reported's access_port), so that the SSH config can name it. Null until
reported: the access reply says the access is not ready.

Revision ID: scheduler_0008_access_port
Revises: scheduler_0007_node_ssh_port
Create Date: 2026-12-17 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scheduler_0008_access_port"
down_revision: str | None = "scheduler_0007_node_ssh_port"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scheduler"


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds it without rewriting the table.
    op.add_column("assignments", sa.Column("node_access_port", sa.Integer(), nullable=True), schema=S)
    op.create_check_constraint(
        op.f("ck_assignments_node_access_port"), "assignments", "node_access_port BETWEEN 1 AND 65535", schema=S
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_assignments_node_access_port"), "assignments", schema=S, type_="check")
    op.drop_column("assignments", "node_access_port", schema=S)
