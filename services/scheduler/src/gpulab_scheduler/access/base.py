"""What every access provider receives and returns, and the one error they raise."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gpulab_core.contracts.scheduler import ACCESS_PROVIDER_FAILED, Access
from gpulab_core.errors import Unavailable


@dataclass(frozen=True, slots=True)
class AccessTarget:
    """One active assignment, as far as reaching its node is concerned."""

    assignment_id: uuid.UUID
    user_email: str
    linux_username: str
    node_hostname: str
    management_ip: str
    ssh_port: int  # the node's sshd's port at management_ip
    expires_at: datetime | None  # None: the assignment does not expire
    # Container mode: the port on the node's 127.0.0.1 where the assignment's container accepts SSH (as
    # root), reached through the node's account; None: the user logs in to the node itself.
    container_port: int | None = None


class TunnelProvider(Protocol):
    """Tells a user how to reach an assignment's node.

    `access` has no effect on gpulab's own state or anywhere else (NetBird, which keeps a key per
    assignment, is netbird_keys.view). It raises `AccessUnavailable` (`access_provider_unavailable`) when
    the provider is not configured, cannot be reached, refuses, or would have to emit a value it cannot
    make safe.
    """

    async def access(self, target: AccessTarget) -> Access: ...


class AccessUnavailable(Unavailable):
    """The provider cannot produce access now; the message says why, for an admin to fix."""

    code = ACCESS_PROVIDER_FAILED

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
