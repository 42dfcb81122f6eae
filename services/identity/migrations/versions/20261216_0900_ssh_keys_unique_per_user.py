"""ssh_keys: a key is unique per user, not across users.

A public key is public (GitHub serves everyone's), so a global unique fingerprint let anyone who
registered a colleague's key first keep the colleague from ever adding it. Two users may now hold
the same key; each user still holds a key once. The unique index on (user_id, fingerprint) is led
by user_id, so it also serves the per-user lookups ix_ssh_keys_user_id served.

Revision ID: identity_0006_keys_per_user
Revises: identity_0005_dead_letters
Create Date: 2026-12-10
"""

from alembic import op

revision = "identity_0006_keys_per_user"
down_revision = "identity_0005_dead_letters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint(
        op.f("uq_ssh_keys_user_id_fingerprint"), "ssh_keys", ["user_id", "fingerprint"], schema="identity"
    )
    op.drop_constraint(op.f("uq_ssh_keys_fingerprint"), "ssh_keys", type_="unique", schema="identity")
    op.drop_index("ix_ssh_keys_user_id", table_name="ssh_keys", schema="identity")


def downgrade() -> None:
    # Fails while two users hold one key: which of them should lose it is not the migration's call.
    op.create_index("ix_ssh_keys_user_id", "ssh_keys", ["user_id"], unique=False, schema="identity")
    op.create_unique_constraint(op.f("uq_ssh_keys_fingerprint"), "ssh_keys", ["fingerprint"], schema="identity")
    op.drop_constraint(op.f("uq_ssh_keys_user_id_fingerprint"), "ssh_keys", type_="unique", schema="identity")
