"""inventory's NATS endpoints: parse (the contract models), call the rules, one transaction each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core.contracts import operations as ops
from gpulab_core.rpc import Endpoint
from gpulab_inventory.config import Settings
from gpulab_inventory.nodes import service as nodes
from gpulab_inventory.pki_client import PkiClient

Req = TypeVar("Req", bound=BaseModel)


def endpoints(sessions: async_sessionmaker[AsyncSession], pki: PkiClient, settings: Settings) -> list[Endpoint[Any]]:
    def tx(fn: Callable[[AsyncSession, Req], Awaitable[Any]]) -> Callable[[Req], Awaitable[Any]]:
        """The edge owns the transaction: commit when the rule returns, roll back when it raises."""

        async def run(req: Req) -> Any:
            async with sessions() as session, session.begin():
                return await fn(session, req)

        return run

    return [
        Endpoint.of(ops.NODES_CREATE, tx(lambda s, r: nodes.create(s, r, pki, settings))),
        Endpoint.of(ops.NODES_LIST, tx(nodes.list_page)),
        Endpoint.of(ops.NODES_GET, tx(nodes.get)),
        Endpoint.of(ops.NODES_DELETE, tx(lambda s, r: nodes.delete(s, r, pki))),
        Endpoint.of(ops.NODES_NEW_TOKEN, tx(lambda s, r: nodes.new_token(s, r, pki, settings))),
    ]
