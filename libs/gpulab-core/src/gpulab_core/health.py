"""A tiny HTTP server per service: `/healthz` (alive), `/readyz` (can serve), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]  # raises when not ready


async def run_checks(checks: dict[str, ReadinessCheck], timeout_s: float = 2.0) -> dict[str, str]:
    async def one(check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), timeout_s)
            return "ok"
        except Exception as exc:
            return f"down: {type(exc).__name__}"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))


class HealthServer:
    def __init__(self, service: str, checks: dict[str, ReadinessCheck], host: str, port: int) -> None:
        self._service = service
        self._checks = checks
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("health server listening", extra={"port": self.bound_port})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": self._service})

    async def _readyz(self, _request: web.Request) -> web.Response:
        results = await run_checks(self._checks)
        ready = all(v == "ok" for v in results.values())
        body = {"status": "ok" if ready else "not_ready", "service": self._service, "checks": results}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
