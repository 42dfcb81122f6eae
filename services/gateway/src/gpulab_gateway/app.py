"""create_app(settings, rpc): the FastAPI application, without any process or NATS wiring."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gpulab_core.rpc import RpcClient
from gpulab_gateway import __version__, frontend, health, openapi, problems
from gpulab_gateway.audit import api as audit_api
from gpulab_gateway.auth import api as auth_api
from gpulab_gateway.client_address import ClientAddress
from gpulab_gateway.config import Settings
from gpulab_gateway.groups import api as groups_api
from gpulab_gateway.install import api as install_api
from gpulab_gateway.middleware import BodySizeLimit, TraceContext
from gpulab_gateway.nodes import api as nodes_api
from gpulab_gateway.refusals import RefusalReporter
from gpulab_gateway.scheduling import api as scheduling_api
from gpulab_gateway.selfservice import quotas_api, requests_api
from gpulab_gateway.sessions import SessionCache
from gpulab_gateway.ssh_keys import api as ssh_keys_api
from gpulab_gateway.usage import api as usage_api
from gpulab_gateway.users import api as users_api

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
    app.state.refusals = RefusalReporter(rpc, settings.audit_refusal_reports_per_minute)
    # A session ended here stays refused for longer than a lookup already in flight can take.
    app.state.session_cache = SessionCache(
        settings.session_cache_s, settings.session_cache_size, grace_s=settings.rpc_timeout_s
    )
    problems.install(app)
    openapi.install(app)
    app.include_router(health.router, prefix=API_PREFIX)
    for router in (
        auth_api.router,
        users_api.router,
        ssh_keys_api.router,
        nodes_api.router,
        scheduling_api.router,
        audit_api.router,
        usage_api.router,
        groups_api.router,
        requests_api.router,
        quotas_api.router,
    ):
        app.include_router(router, prefix=API_PREFIX)

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

    app.include_router(install_api.router)
    # Last: everything not matched above is the web app.
    app.include_router(frontend.router)
    # Added innermost first: the client's address is settled before anything else runs, the trace
    # wraps everything after it, and the size limit runs before any body is read.
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(TraceContext)
    app.add_middleware(ClientAddress, trusted=settings.trusted_networks)
    return app
