"""nodes.ssh_port: the port of the node's sshd (inventory's node_created), which the generated SSH
config names when it is not 22. Nodes projected before it keep 22, what they were reached on.

Revision ID: scheduler_0007_node_ssh_port
Revises: scheduler_0006_netbird_access
Create Date: 2026-12-16 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scheduler_0007_node_ssh_port"
down_revision: str | None = "scheduler_0006_netbird_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "scheduler"


def upgrade() -> None:
    op.add_column(
        "nodes", sa.Column("ssh_port", sa.Integer(), server_default=sa.text("22"), nullable=False), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("nodes", "ssh_port", schema=SCHEMA)
