"""Connecting to NATS: a reconnect after a crash of the server runs the service's hook."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gpulab_core.natsconn import connect_nats
from gpulab_devstack.servers import EmbeddedNats, free_port


async def test_a_reconnect_after_the_server_crashed_runs_the_hook(tmp_path: Path) -> None:
    """Core-NATS notices published while a service was disconnected never reach it: the hook is where
    it relearns what they would have said (inventory drops every cached node)."""
    server = EmbeddedNats(tmp_path / "nats", free_port())
    await asyncio.to_thread(server.start)
    reconnected = asyncio.Event()

    async def hook() -> None:
        reconnected.set()

    nc = await connect_nats(server.url, "reconnect-test", on_reconnected=hook)
    try:
        await nc.flush()
        assert not reconnected.is_set()
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(0.5)
        assert not reconnected.is_set()  # not while the server is away
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(reconnected.wait(), 20)
        await nc.flush()  # and the connection works again
    finally:
        await nc.close()
        await asyncio.to_thread(server.stop)
