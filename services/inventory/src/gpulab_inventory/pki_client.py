"""What inventory asks of pki, over NATS RPC: tokens, revocation, the CA and the heartbeat port's certificate."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import pki as c
from gpulab_core.rpc import RpcClient

M = TypeVar("M", bound=BaseModel)


@dataclass
class PkiClient:
    rpc: RpcClient
    _ca: c.CaInfo | None = field(default=None, init=False)

    async def _call(self, op: ops.Operation[Any, M], payload: BaseModel) -> M:
        return await self.rpc.ask(op, payload)

    async def ca(self) -> c.CaInfo:
        """The CA certificate and its fingerprint; asked once per process (the root does not change)."""
        if self._ca is None:
            self._ca = await self._call(ops.CA_GET, c.Empty())
        return self._ca

    async def issue_token(self, node_id: uuid.UUID, actor_id: uuid.UUID | None) -> c.EnrollmentToken:
        token = await self._call(ops.TOKENS_ISSUE, c.IssueTokenRequest(node_id=node_id, actor_id=actor_id))
        return token

    async def revoke_node(self, node_id: uuid.UUID, actor_id: uuid.UUID | None) -> list[str]:
        reply = await self._call(ops.CERTS_REVOKE_NODE, c.NodeRequest(node_id=node_id, actor_id=actor_id))
        return reply.revoked_serials

    async def revoked(self) -> list[str]:
        reply = await self._call(ops.CERTS_REVOKED, c.Empty())
        return reply.serials

    async def sign_server(self, csr_pem: str, dns: list[str], ips: list[str]) -> c.SignedCertificate:
        request = c.SignServerRequest(csr_pem=csr_pem, dns_names=dns, ip_addresses=ips)
        return await self._call(ops.CERTS_SIGN_SERVER, request)
