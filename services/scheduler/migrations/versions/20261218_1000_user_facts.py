"""users: the scheduler's own copy of the user facts an assignment needs (email, status, SSH keys),
kept from identity's events (identity.user_status_changed, identity.ssh_keys_changed) and from its
answers, so that making an assignment or granting a request does not ask identity each time, and so
that an assignment made while its user is being disabled is ended by the same serialisation.

Revision ID: scheduler_0010_user_facts
Revises: scheduler_0009_self_service
Create Date: 2026-12-18 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "scheduler_0010_user_facts"
down_revision: str | None = "scheduler_0009_self_service"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scheduler"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("public_keys", pg.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("keys_version", sa.BigInteger(), nullable=False, server_default="-1"),
        sa.CheckConstraint("status IN ('invited', 'active', 'disabled')", name=op.f("ck_users_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("users", schema=S)
