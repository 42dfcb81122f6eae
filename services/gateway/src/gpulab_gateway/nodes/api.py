"""`/nodes` and `/enrollment/ca`: the admin adds, lists and deletes nodes; anyone may fetch the CA."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from gpulab_core.contracts import inventory as contract
from gpulab_core.contracts import operations as ops
from gpulab_core.contracts import pki
from gpulab_core.contracts.common import DEFAULT_LIMIT, MAX_LIMIT
from gpulab_gateway import sessions, upstream
from gpulab_gateway.openapi import problems_for

router = APIRouter(tags=["nodes"])

ADMIN_ONLY = {403: "`csrf_failed`: the `X-CSRF-Token` header is missing or wrong; `forbidden`: not an admin"}
ADMIN_READ = {403: "`forbidden`: not an admin"}
UNAVAILABLE = {503: "`service_unavailable`: inventory or pki did not answer; nothing was changed"}


class NodeList(BaseModel):
    items: list[contract.Node]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class CaCertificate(BaseModel):
    certificate_pem: str
    sha256_fingerprint: str = Field(description="SHA-256 of the certificate (DER), 64 lowercase hex digits")


@router.post(
    "/nodes",
    status_code=201,
    summary="Add a node: it stays `pending` until its agent enrolls with the token (shown this once)",
    responses=problems_for(ops.NODES_CREATE, 401, 403, 422, 503, meaning={**ADMIN_ONLY, **UNAVAILABLE}),
)
async def create_node(body: contract.NewNode, session: sessions.AdminWrite, request: Request) -> contract.NodeCreated:
    payload = contract.CreateNodeRequest(actor_id=session.user.id, **body.model_dump())
    return await upstream.ask(request, ops.NODES_CREATE, payload)


@router.get(
    "/nodes",
    summary="Nodes, a page at a time",
    responses=problems_for(ops.NODES_LIST, 401, 403, 422, meaning=ADMIN_READ),
)
async def list_nodes(
    _session: sessions.AdminRead,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
    status: Annotated[contract.NodeStatus | None, Query(description="only nodes in this state")] = None,
) -> NodeList:
    page = await upstream.ask(
        request, ops.NODES_LIST, contract.ListNodesRequest(limit=limit, cursor=cursor, status=status)
    )
    return NodeList(items=page.items, next_cursor=page.next_cursor)


@router.get("/nodes/{id}", summary="One node", responses=problems_for(ops.NODES_GET, 401, 403, 422, meaning=ADMIN_READ))
async def get_node(id: uuid.UUID, _session: sessions.AdminRead, request: Request) -> contract.Node:
    return await upstream.ask(request, ops.NODES_GET, contract.NodeIdRequest(id=id))


@router.delete(
    "/nodes/{id}",
    summary="Delete a node: its certificates are revoked, its agent is refused from then on (status `revoked`)",
    responses=problems_for(ops.NODES_DELETE, 401, 403, 422, 503, meaning={**ADMIN_ONLY, **UNAVAILABLE}),
)
async def delete_node(id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> contract.Node:
    payload = contract.NodeIdRequest(id=id, actor_id=session.user.id)
    return await upstream.ask(request, ops.NODES_DELETE, payload)


@router.post(
    "/nodes/{id}/enrollment-tokens",
    status_code=201,
    summary="A new one-time enrollment token for the node; its earlier tokens stop working",
    responses=problems_for(ops.NODES_NEW_TOKEN, 401, 403, 422, 503, meaning={**ADMIN_ONLY, **UNAVAILABLE}),
)
async def new_token(id: uuid.UUID, session: sessions.AdminWrite, request: Request) -> contract.Enrollment:
    payload = contract.NodeIdRequest(id=id, actor_id=session.user.id)
    return await upstream.ask(request, ops.NODES_NEW_TOKEN, payload)


@router.get(
    "/enrollment/ca",
    summary="The CA certificate agents trust, and its fingerprint (the install command pins it)",
    responses=problems_for(ops.CA_GET, 503, meaning={503: "`service_unavailable`: pki did not answer"}),
)
async def enrollment_ca(request: Request) -> CaCertificate:
    info = await upstream.ask(request, ops.CA_GET, pki.Empty())
    return CaCertificate(certificate_pem=info.certificate_pem, sha256_fingerprint=info.sha256_fingerprint)
