"""Wiring only: the gateway's process, its HTTP server and its command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from gpulab_core import cli as core_cli
from gpulab_core.runtime import Runtime, ServiceSpec
from gpulab_gateway import __version__
from gpulab_gateway.app import create_app
from gpulab_gateway.config import Settings

log = logging.getLogger(__name__)

# Longer than any request should take; shorter than the 15 s the local run and compose allow a stop.
DRAIN_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the shared runtime owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """The HTTP port, shared with the other replicas on this host (SO_REUSEPORT: the kernel spreads
    connections over them, as for pki's and inventory's gRPC ports; docs/adr/0022)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    app = create_app(settings, runtime.rpc_client)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        # The app decides the client's address itself (client_address.py, GPULAB_TRUSTED_PROXIES):
        # uvicorn's would also believe X-Forwarded-For from its own FORWARDED_ALLOW_IPS.
        proxy_headers=False,
    )
    server = _Server(config)
    stopped = asyncio.Event()
    sock = listen(settings.http_host, settings.http_port)

    async def serve_http() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            stopped.set()

    async def drain_http() -> None:
        # Stop accepting, let requests in flight finish (they may still need NATS, closed after this).
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), DRAIN_TIMEOUT_S)

    runtime.add_task(serve_http)
    runtime.on_stop(drain_http)
    log.info("gateway listening on http://%s:%d", settings.http_host, settings.http_port)


spec = ServiceSpec(name="gateway", version=__version__, settings_cls=Settings, tables=None, setup=setup)


def cli() -> int:
    return core_cli.main(spec, None)
