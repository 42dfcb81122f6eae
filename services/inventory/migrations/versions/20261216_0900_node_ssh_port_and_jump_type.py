"""nodes.ssh_port (the port of the node's sshd, 22 unless the admin says otherwise) and node type
`jump`: the SSH jump host, whose agent keeps one forwarding-only account per user holding an active
assignment (docs/adr/0017-managed-jump-host.md).

Revision ID: inventory_0007_ssh_port_jump
Revises: inventory_0006_withheld
Create Date: 2026-12-16 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "inventory_0007_ssh_port_jump"
down_revision: str | None = "inventory_0006_withheld"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "nodes", sa.Column("ssh_port", sa.Integer(), server_default=sa.text("22"), nullable=False), schema=SCHEMA
    )
    op.create_check_constraint(op.f("ck_nodes_ssh_port"), "nodes", "ssh_port BETWEEN 1 AND 65535", schema=SCHEMA)
    op.drop_constraint(op.f("ck_nodes_type"), "nodes", schema=SCHEMA, type_="check")
    op.create_check_constraint(op.f("ck_nodes_type"), "nodes", "type IN ('linux', 'proxmox', 'jump')", schema=SCHEMA)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_nodes_type"), "nodes", schema=SCHEMA, type_="check")
    op.create_check_constraint(op.f("ck_nodes_type"), "nodes", "type IN ('linux', 'proxmox')", schema=SCHEMA)
    op.drop_constraint(op.f("ck_nodes_ssh_port"), "nodes", schema=SCHEMA, type_="check")
    op.drop_column("nodes", "ssh_port", schema=SCHEMA)
