"""users.ssh_keys_version: the version carried by `identity.ssh_keys_changed`.

It grows by one with every change of the user's SSH keys, in the transaction of the change and
under the user's row lock, so consumers can tell the newest full list of a user's keys from an
older one whatever order the events reach them in. Existing users start at 0: no event of theirs
has been emitted yet, and the first change makes it 1.

Revision ID: identity_0003
Revises: identity_0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0003"
down_revision = "identity_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "users",
        sa.Column("ssh_keys_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        schema="identity",
    )


def downgrade() -> None:
    op.drop_column("users", "ssh_keys_version", schema="identity")
