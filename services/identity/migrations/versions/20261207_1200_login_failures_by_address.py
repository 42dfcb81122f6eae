"""login_failures.client_net: failed logins are counted per address and per (account, address).

Before, they were counted per account and per `client_ip`, and behind a reverse proxy every
`client_ip` was the proxy's. `client_net` is what the limits now count by (the address, or its /64
for IPv6). The rows already there are deleted: they name the proxy rather than the client, and a
failure only counts for an hour anyway.

Revision ID: identity_0004_login_by_address
Revises: identity_0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0004_login_by_address"
down_revision = "identity_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM identity.login_failures")
    op.add_column("login_failures", sa.Column("client_net", sa.Text(), nullable=True), schema="identity")
    op.drop_index("ix_login_failures_account_at", table_name="login_failures", schema="identity")
    op.drop_index("ix_login_failures_client_ip_at", table_name="login_failures", schema="identity")
    op.create_index(
        "ix_login_failures_client_net_at", "login_failures", ["client_net", "at"], unique=False, schema="identity"
    )
    op.create_index(
        "ix_login_failures_account_client_net_at",
        "login_failures",
        ["account", "client_net", "at"],
        unique=False,
        schema="identity",
    )


def downgrade() -> None:
    op.drop_index("ix_login_failures_account_client_net_at", table_name="login_failures", schema="identity")
    op.drop_index("ix_login_failures_client_net_at", table_name="login_failures", schema="identity")
    op.create_index(
        "ix_login_failures_client_ip_at", "login_failures", ["client_ip", "at"], unique=False, schema="identity"
    )
    op.create_index(
        "ix_login_failures_account_at", "login_failures", ["account", "at"], unique=False, schema="identity"
    )
    op.drop_column("login_failures", "client_net", schema="identity")
