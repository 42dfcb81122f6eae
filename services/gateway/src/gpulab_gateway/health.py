"""`GET /api/v1/healthz`: each back-end service's state, asked over NATS at request time."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gpulab_core.rpc import RpcClient

BACKEND_SERVICES = ("identity", "pki", "inventory", "scheduler", "notify")

State = Literal["ok", "down"]


class ServiceStates(BaseModel):
    identity: State
    pki: State
    inventory: State
    scheduler: State
    notify: State


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    services: ServiceStates


router = APIRouter(tags=["health"])


async def service_state(client: RpcClient, service: str, timeout_s: float) -> State:
    """`ok` when a replica answers its `health` operation in time and says it is ready."""
    try:
        await client.call(service, "health", timeout_s=timeout_s)
    except Exception:
        return "down"
    return "ok"


@router.get("/healthz", response_model=Health, summary="State of every back-end service")
async def healthz(request: Request) -> JSONResponse:
    client: RpcClient = request.app.state.rpc
    timeout: float = request.app.state.settings.health_timeout_s
    states = await asyncio.gather(*(service_state(client, s, timeout) for s in BACKEND_SERVICES))
    services = dict(zip(BACKEND_SERVICES, states, strict=True))
    body = Health(
        status="ok" if all(s == "ok" for s in states) else "degraded",
        services=ServiceStates.model_validate(services),
    )
    # 200 either way: the gateway answered; `status` says whether the system is whole.
    return JSONResponse(body.model_dump())
