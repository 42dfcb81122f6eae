"""`GET /api/v1/healthz`: each back-end service's state, asked over NATS at request time.

A service is `ok` or `down` (API.md). One that answers but is not whole (its `health` says `degraded`,
e.g. events it set aside because the bus can never take them) stays `ok` in `services`, makes the
overall `status` `degraded`, and lists what is wrong under `problems` (an addition to API.md)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gpulab_core.contracts import operations as ops
from gpulab_core.rpc import RpcClient

BACKEND_SERVICES = ops.BACKEND

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
    problems: dict[str, list[str]] = Field(
        default_factory=dict,
        description="added: for each service that answers but reports itself degraded, what is wrong "
        "(e.g. events it could never publish); such a service is `ok` in `services` and makes `status` "
        "`degraded`",
    )


router = APIRouter(tags=["health"])


async def service_state(client: RpcClient, service: str, timeout_s: float) -> tuple[State, list[str]]:
    """`ok` when a replica answers its `health` operation in time and says it is ready, with the
    problems it reports (none unless it says `degraded`)."""
    try:
        reply = await client.request(ops.HEALTH[service], ops.NoRequest(), timeout_s=timeout_s)
    except Exception:
        return "down", []
    problems = reply.get("problems") if isinstance(reply, dict) else None
    if not isinstance(problems, list):
        return "ok", []
    return "ok", [str(p)[:500] for p in problems]


@router.get("/healthz", response_model=Health, summary="State of every back-end service")
async def healthz(request: Request) -> JSONResponse:
    client: RpcClient = request.app.state.rpc
    timeout: float = request.app.state.settings.health_timeout_s
    answers = await asyncio.gather(*(service_state(client, s, timeout) for s in BACKEND_SERVICES))
    services = {name: state for name, (state, _) in zip(BACKEND_SERVICES, answers, strict=True)}
    problems = {name: found for name, (_, found) in zip(BACKEND_SERVICES, answers, strict=True) if found}
    whole = all(state == "ok" for state in services.values()) and not problems
    body = Health(
        status="ok" if whole else "degraded",
        services=ServiceStates.model_validate(services),
        problems=problems,
    )
    # 200 either way: the gateway answered; `status` says whether the system is whole.
    return JSONResponse(body.model_dump())
