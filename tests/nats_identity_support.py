"""Connecting to the test stack's NATS as one of gpulab's identities, and watching what it is refused."""

from __future__ import annotations

from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as NATS

from gpulab_core import natsauth
from gpulab_devstack.testing import Stack


@dataclass
class Connected:
    nc: NATS
    refusals: list[str] = field(default_factory=list)

    def refused(self, subject: str) -> bool:
        """Whether nats-server told this connection it may not publish to `subject`."""
        return any("permissions violation" in r.lower() and subject.lower() in r.lower() for r in self.refusals)


async def connect_as(stack: Stack, identity: str) -> Connected:
    """A connection with `identity`'s credentials, from the file the stack wrote for it, as that
    service would connect (its own inbox prefix included)."""
    env = stack.nats_env(identity)
    found = Connected(nc=NATS())

    async def on_error(exc: Exception) -> None:
        found.refusals.append(str(exc))

    found.nc = await nats.connect(
        env["GPULAB_NATS_URL"],
        user=env["GPULAB_NATS_USER"],
        password=env["GPULAB_NATS_PASSWORD"],
        inbox_prefix=natsauth.inbox_prefix(identity),
        error_cb=on_error,
        allow_reconnect=False,
    )
    return found
