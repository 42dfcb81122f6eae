"""pki's NATS endpoints: parse (the contract models), call the rules, one transaction each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import pki as c
from gpulab_core.rpc import Endpoint
from gpulab_pki.certificates import service as certs
from gpulab_pki.context import Pki
from gpulab_pki.tokens import service as tokens

Req = TypeVar("Req", bound=BaseModel)


def endpoints(pki: Pki) -> list[Endpoint[Any]]:
    def tx(fn: Callable[[AsyncSession, Req], Awaitable[Any]]) -> Callable[[Req], Awaitable[Any]]:
        """The edge owns the transaction: commit when the rule returns, roll back when it raises."""

        async def run(req: Req) -> Any:
            async with pki.sessions() as session, session.begin():
                return await fn(session, req)

        return run

    ca = pki.authority

    async def ca_get(_req: c.Empty) -> c.CaInfo:
        return c.CaInfo(certificate_pem=ca.cert_pem.decode(), sha256_fingerprint=ca.fingerprint)

    async def revoke_tokens(session: AsyncSession, req: c.NodeRequest) -> dict[str, str]:
        await tokens.revoke(session, req.node_id)
        return {}

    return [
        Endpoint.of(ops.CA_GET, ca_get),
        Endpoint.of(ops.TOKENS_ISSUE, tx(lambda s, r: tokens.issue(s, r, pki.token_ttl))),
        Endpoint.of(ops.TOKENS_REVOKE, tx(revoke_tokens)),
        Endpoint.of(ops.CERTS_REVOKE_NODE, tx(certs.revoke_node)),
        Endpoint.of(ops.CERTS_REVOKED, tx(lambda s, _r: certs.revoked(s))),
        Endpoint.of(ops.CERTS_SIGN_SERVER, tx(lambda s, r: certs.sign_server(s, ca, r))),
    ]
