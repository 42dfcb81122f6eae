"""Event payloads (`Event.data`) on the stream GPULAB_EVENTS, by event type."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class EventPayload(BaseModel):
    """Lenient about unknown fields, unlike RPC requests: a producer may add a field before every
    consumer knows it, and an event stays in the stream for weeks."""

    model_config = ConfigDict(extra="ignore")


USER_INVITED = "identity.user_invited"
INVITE_DELIVERY = "notify.invite_delivery"


class UserInvited(EventPayload):
    """An invite to send. Carries the token sealed for notify (gpulab_core.sealing), never in clear:
    the stream keeps it 30 days and every service reads it (docs/adr/0007-invite-token-in-event.md)."""

    user_id: uuid.UUID
    invite_id: uuid.UUID
    email: str
    role: Literal["admin", "user"]
    sealed_token: str
    expires_at: datetime
    invited_by: uuid.UUID | None
    invited_by_name: str | None


class InviteDelivery(EventPayload):
    """notify's progress with one invite email, for the admin's user listing."""

    invite_id: uuid.UUID
    user_id: uuid.UUID
    state: Literal["pending", "sent", "retrying", "failed"]
    detail: str | None
    at: datetime


USER_STATUS_CHANGED = "identity.user_status_changed"
SSH_KEYS_CHANGED = "identity.ssh_keys_changed"


class UserStatusChanged(EventPayload):
    """A user was enabled or disabled (the scheduler ends a disabled user's assignments)."""

    user_id: uuid.UUID
    email: str
    status: Literal["invited", "active", "disabled"]
    actor_id: uuid.UUID | None = None


class SshKeysChanged(EventPayload):
    """A user's full set of SSH public keys after a key was added or removed: consumers replace what
    they hold, so events applied twice or out of order (by `version`) converge."""

    user_id: uuid.UUID
    public_keys: list[str]  # authorized_keys lines, "type base64 [comment]"
    version: int  # grows with every change of this user's keys
