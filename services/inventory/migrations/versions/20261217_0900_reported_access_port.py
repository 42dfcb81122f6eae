"""desired_assignments.reported_access_port: in container mode, the port on the node's 127.0.0.1 where
the applied assignment's container accepts SSH, as the agent reported it (AppliedAssignment.access_port),
so that the user's SSH config can name it.

Revision ID: inventory_0008_access_port
Revises: inventory_0007_ssh_port_jump
Create Date: 2026-12-17 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "inventory_0008_access_port"
down_revision: str | None = "inventory_0007_ssh_port_jump"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds it without rewriting the table.
    op.add_column("desired_assignments", sa.Column("reported_access_port", sa.Integer(), nullable=True), schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_desired_assignments_reported_access_port"),
        "desired_assignments",
        "reported_access_port BETWEEN 1 AND 65535",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_desired_assignments_reported_access_port"), "desired_assignments", schema=SCHEMA, type_="check"
    )
    op.drop_column("desired_assignments", "reported_access_port", schema=SCHEMA)
