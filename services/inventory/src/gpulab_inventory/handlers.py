"""inventory's NATS endpoints: parse (the contract models), call the rules, one transaction each."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gpulab_core import db
from gpulab_core.contracts import operations as ops
from gpulab_core.rpc import Endpoint
from gpulab_inventory.config import Settings
from gpulab_inventory.nodes import service as nodes
from gpulab_inventory.pki_client import PkiClient


def endpoints(sessions: async_sessionmaker[AsyncSession], pki: PkiClient, settings: Settings) -> list[Endpoint[Any]]:
    tx = db.transactional(sessions)

    return [
        Endpoint.of(ops.NODES_CREATE, tx(lambda s, r: nodes.create(s, r, pki, settings))),
        Endpoint.of(ops.NODES_LIST, tx(nodes.list_page)),
        Endpoint.of(ops.NODES_GET, tx(nodes.get)),
        Endpoint.of(ops.NODES_DELETE, tx(lambda s, r: nodes.delete(s, r, pki))),
        Endpoint.of(ops.NODES_NEW_TOKEN, tx(lambda s, r: nodes.new_token(s, r, pki, settings))),
    ]
