"""The NATS RPC path (every REST call crosses it) against a bare NATS request/reply echo.

Both sides run on the same embedded nats-server in the same process and event loop, so the ratio
isolates what gpulab's layer adds: pydantic validation, the reply envelope, trace propagation,
per-request tasks and metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.msg import Msg
from pydantic import BaseModel

from gpulab_core import telemetry
from gpulab_core.rpc import Endpoint, RpcClient, RpcServer
from gpulab_devstack.servers import EmbeddedNats, free_port


class Echo(BaseModel):
    text: str


async def echo(req: Echo) -> Echo:
    return req


async def measure(call: Callable[[], Awaitable[object]], n: int, concurrency: int) -> tuple[float, float]:
    """(requests per second, p50 latency in ms) for n calls, `concurrency` in flight at a time."""
    latencies: list[float] = []
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            t = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return n / elapsed, statistics.median(latencies) * 1000


def print_header(title: str) -> None:
    print(title)  # noqa: T201
    print("| concurrency | bare req/s | gpulab req/s | ratio (gpulab/bare) | bare p50 ms | gpulab p50 ms |")  # noqa: T201
    print("|---|---|---|---|---|---|")  # noqa: T201


async def compare_row(
    bare: Callable[[], Awaitable[object]], gpulab: Callable[[], Awaitable[object]], n: int, concurrency: int
) -> None:
    """One table row: both sides warmed up, then measured back to back."""
    await measure(bare, max(n // 20, 50), concurrency)
    await measure(gpulab, max(n // 20, 50), concurrency)
    b_rps, b_p50 = await measure(bare, n, concurrency)
    g_rps, g_p50 = await measure(gpulab, n, concurrency)
    print(  # noqa: T201
        f"| {concurrency} | {b_rps:,.0f} | {g_rps:,.0f} | {g_rps / b_rps:.2f} | {b_p50:.3f} | {g_p50:.3f} |"
    )


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench rpc")
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args(argv)
    telemetry.setup_tracing("bench")
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(Path(tmp), free_port())
        server.start()
        try:
            nc = await nats.connect(server.url)

            async def bare_handler(msg: Msg) -> None:
                await msg.respond(msg.data)

            await nc.subscribe("bench.bare", queue="bench", cb=bare_handler)
            rpc = RpcServer(nc, "bench", "1.0.0")
            rpc.add(Endpoint("echo", Echo, echo))
            await rpc.start()
            client = RpcClient(nc)
            payload = b'{"text":"hello"}'

            async def bare() -> object:
                return await nc.request("bench.bare", payload, timeout=5)

            async def gpulab() -> object:
                return await client.call("bench", "echo", {"text": "hello"})

            print_header(f"NATS RPC echo, n={args.n}, nats-server {server.url}")
            for concurrency in (1, 16, 64):
                await compare_row(bare, gpulab, args.n, concurrency)
            await rpc.stop()
            await nc.drain()
        finally:
            server.stop()
