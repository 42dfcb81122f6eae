"""Connecting to NATS the same way everywhere."""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client as NATS


async def connect_nats(url: str, name: str, *, wait_s: float = 60.0) -> NATS:
    """Connect, waiting up to `wait_s` for NATS to come up; later outages are ridden out by reconnects."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.2
    while True:
        try:
            return await nats.connect(
                servers=url.split(","),
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                connect_timeout=2,
                allow_reconnect=True,
            )
        except Exception as exc:
            if loop.time() + delay > deadline:
                raise ConnectionError(f"cannot reach NATS at {url}: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
