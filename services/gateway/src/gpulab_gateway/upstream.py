"""Calls to the back-end services, each an operation of the table (gpulab_core.contracts.operations),
its reply checked against the table's reply model."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel

from gpulab_core.contracts.operations import Operation
from gpulab_core.rpc import RpcClient

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


async def ask(request: Request, op: Operation[Req, Rep], payload: Req) -> Rep:
    """Ask a service and return its reply as the operation's reply model; error replies raise
    `RemoteError`, a reply outside the contract `GpulabError` (our bug, never the caller's)."""
    rpc: RpcClient = request.app.state.rpc
    return await rpc.ask(op, payload)


async def command(request: Request, op: Operation[Req, Any], payload: Req) -> None:
    """Ask a service to do something that replies with nothing but success or an error."""
    rpc: RpcClient = request.app.state.rpc
    await rpc.request(op, payload)
