"""The `deliveries` table: one mail per event and recipient, its state and its retry schedule."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from gpulab_notify.models import Base

State = Literal["pending", "retrying", "sent", "failed"]
STATES: tuple[State, ...] = ("pending", "retrying", "sent", "failed")
# Still to be tried; the others are final.
OPEN_STATES: tuple[State, ...] = ("pending", "retrying")

# The invite's mail, whose progress identity is told (service.py); every kind is in kinds.py.
KIND_INVITE = "invite"


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'retrying', 'sent', 'failed')", name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # A redelivered event cannot make a second mail to anyone.
        UniqueConstraint("event_id", "recipient"),
        # The senders' "what is due" scan reads only open rows, in due order.
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("state IN ('pending', 'retrying')")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    # The event that asked for this mail. For an invite (one recipient) it is also the mail's
    # Message-ID; a mail to several recipients takes this row's id instead. Either way a copy sent
    # again after a crash is recognisably the same mail.
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(Text)
    invite_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    # The user the mail is for: the invited user, the admin told about a node, the assignment's user.
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    recipient: Mapped[str] = mapped_column(Text)
    # What the mail is rendered from (for an invite: its token). Cleared once the delivery is final,
    # so no usable invite token stays in this schema longer than needed.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
