"""outbox_dead_letters: events the outbox relay can never publish, set aside with their reason.

The relay moves such a row here instead of retrying it forever, so it never blocks the events after
it; the service's health answers `degraded` while the table holds a row (gpulab_core.outbox).

Revision ID: identity_0005_dead_letters
Revises: identity_0004_login_by_address
Create Date: 2026-12-15
"""

from alembic import op

from gpulab_core.migrations import create_outbox_dead_letters_v1

revision = "identity_0005_dead_letters"
down_revision = "identity_0004_login_by_address"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_dead_letters_v1(op, "identity")


def downgrade() -> None:
    op.drop_table("outbox_dead_letters", schema="identity")
