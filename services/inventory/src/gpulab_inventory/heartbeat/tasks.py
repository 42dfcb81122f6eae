"""The heartbeat path's background loops: one shape for all of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def repeat(work: Callable[[], Awaitable[object]], every_s: float, what: str, *, first_after_s: float = 0) -> None:
    """Run `work` every `every_s`, first after `first_after_s`; a failure is logged and retried at the
    next turn, never ends the loop."""
    await asyncio.sleep(first_after_s)
    while True:
        try:
            await work()
        except Exception as exc:
            log.warning("%s failed, retrying: %s", what, exc)
        await asyncio.sleep(every_s)
