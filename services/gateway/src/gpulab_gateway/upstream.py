"""Calls to the back-end services whose replies the gateway reads, checked against their contract."""

from __future__ import annotations

import logging
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from gpulab_core import errors
from gpulab_core.contracts import identity as contract
from gpulab_core.rpc import RpcClient

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


async def identity(request: Request, operation: str, payload: BaseModel, reply: type[M]) -> M:
    """Ask identity and return its reply as `reply`; its error replies raise `RemoteError`."""
    return await ask(request, contract.SERVICE, operation, payload, reply)


async def ask(request: Request, service: str, operation: str, payload: BaseModel, reply: type[M]) -> M:
    """Ask a service and return its reply as `reply`; its error replies raise `RemoteError`."""
    rpc: RpcClient = request.app.state.rpc
    data = await rpc.call(service, operation, payload)
    try:
        return reply.model_validate(data)
    except ValidationError as exc:
        # A reply that breaks the contract is our bug (versions out of step), never the caller's.
        log.error("%s %s replied outside its contract: %s", service, operation, exc.errors(include_input=False))
        raise errors.GpulabError("internal error") from None


async def identity_command(request: Request, operation: str, payload: BaseModel) -> None:
    """Ask identity to do something that replies with nothing but success or an error."""
    await command(request, contract.SERVICE, operation, payload)


async def command(request: Request, service: str, operation: str, payload: BaseModel) -> None:
    """Ask a service to do something that replies with nothing but success or an error."""
    rpc: RpcClient = request.app.state.rpc
    await rpc.call(service, operation, payload)
