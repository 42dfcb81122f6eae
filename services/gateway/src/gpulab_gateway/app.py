"""create_app(settings, rpc): the FastAPI application, without any process or NATS wiring."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gpulab_core.rpc import RpcClient
from gpulab_gateway import __version__, frontend, health, problems
from gpulab_gateway.config import Settings
from gpulab_gateway.middleware import BodySizeLimit, TraceContext

API_PREFIX = "/api/v1"


def create_app(settings: Settings, rpc: RpcClient) -> FastAPI:
    app = FastAPI(
        title="gpulab API",
        version=__version__,
        description="The REST API of gpulab, a self-hosted control plane for sharing GPU machines.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.rpc = rpc
    problems.install(app)
    app.include_router(health.router, prefix=API_PREFIX)

    @app.get("/healthz", include_in_schema=False)
    async def alive() -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "gateway"})

    @app.get("/readyz", include_in_schema=False)
    async def ready() -> JSONResponse:
        """Ready when the gateway can reach NATS; the state of the services is /api/v1/healthz."""
        ok = rpc.connected
        body = {"status": "ok" if ok else "not_ready", "service": "gateway", "checks": {"nats": "ok" if ok else "down"}}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # Last: everything not matched above is the web app.
    app.include_router(frontend.router)
    # Outermost first: the trace wraps everything, the size limit runs before any body is read.
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(TraceContext)
    return app
