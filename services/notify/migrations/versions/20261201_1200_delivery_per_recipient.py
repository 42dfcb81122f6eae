"""One delivery per event and recipient: an admin notification is one event mailed to every admin.

The key was the event id alone (one invite, one mail); it becomes (event id, recipient), which is
still what makes a redelivered event record nothing new. The unique index on (event_id, recipient)
also serves every lookup by event id, so no index of its own is needed.

Revision ID: notify_0003
Revises: notify_0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "notify_0003"
down_revision = "notify_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint(
        "uq_deliveries_event_id_recipient", "deliveries", ["event_id", "recipient"], schema="notify"
    )
    op.drop_constraint("uq_deliveries_event_id", "deliveries", schema="notify", type_="unique")


def downgrade() -> None:
    # Fails while an event has mails to several recipients (admin notifications): delete those rows first.
    op.create_unique_constraint("uq_deliveries_event_id", "deliveries", ["event_id"], schema="notify")
    op.drop_constraint("uq_deliveries_event_id_recipient", "deliveries", schema="notify", type_="unique")
