"""Groups: named sets of users that requests and assignments are charged to (issue 13).

A group is soft-deleted (`deleted_at`): usage reports and the audit log keep naming it. Only a live
group's name is unique (case-insensitive).

Revision ID: identity_0007_groups
Revises: identity_0006_keys_per_user
Create Date: 2026-12-19
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0007_groups"
down_revision = "identity_0006_keys_per_user"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        schema="identity",
    )
    op.create_index(
        "uq_groups_name_live",
        "groups",
        [sa.text("lower(name)")],
        unique=True,
        schema="identity",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["identity.groups.id"], name=op.f("fk_group_members_group_id_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["identity.users.id"], name=op.f("fk_group_members_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
        schema="identity",
    )
    op.create_index("ix_group_members_user_id", "group_members", ["user_id"], unique=False, schema="identity")


def downgrade() -> None:
    op.drop_index("ix_group_members_user_id", table_name="group_members", schema="identity")
    op.drop_table("group_members", schema="identity")
    op.drop_index("uq_groups_name_live", table_name="groups", schema="identity")
    op.drop_table("groups", schema="identity")
