"""Connecting to NATS the same way everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NATS

from gpulab_core.settings import redact


async def connect_nats(
    url: str,
    name: str,
    *,
    wait_s: float = 60.0,
    user: str | None = None,
    password: str | None = None,
    inbox_prefix: str | None = None,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
) -> NATS:
    """Connect, waiting up to `wait_s` for NATS to come up; later outages are ridden out by reconnects.

    `user`/`password`: the process's own identity (else the URL's credentials, if any);
    `inbox_prefix`: where its replies arrive, the only inboxes its identity may read (natsauth);
    `on_reconnected`: awaited after each reconnect (core-NATS messages of the gap are lost)."""
    extra: dict[str, Any] = {}
    if user is not None:
        extra["user"] = user
        extra["password"] = password or ""
    if inbox_prefix is not None:
        extra["inbox_prefix"] = inbox_prefix
    if on_reconnected is not None:
        extra["reconnected_cb"] = on_reconnected
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.2
    while True:
        try:
            # Bounded: with max_reconnect_attempts=-1 nats.connect itself retries a first connection
            # forever, and `wait_s` would never end.
            async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                return await nats.connect(
                    servers=url.split(","),
                    name=name,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    connect_timeout=2,
                    allow_reconnect=True,
                    **extra,
                )
        except Exception as exc:
            if loop.time() + delay > deadline:
                # The URL may carry the password (nats://user:password@host): never in a message.
                why = str(exc) or f"no connection within {wait_s:g} s"
                if password:
                    why = why.replace(password, "***")
                raise ConnectionError(f"cannot reach NATS at {redact(url)}: {redact(why)}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
