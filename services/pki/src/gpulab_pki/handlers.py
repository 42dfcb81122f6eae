"""pki's NATS endpoints: parse (the contract models), call the rules, one transaction each."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import db
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import pki as c
from gpulab_core.rpc import Endpoint
from gpulab_pki.certificates import service as certs
from gpulab_pki.context import Pki
from gpulab_pki.tokens import service as tokens


def endpoints(pki: Pki) -> list[Endpoint[Any]]:
    tx = db.transactional(pki.sessions)

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
