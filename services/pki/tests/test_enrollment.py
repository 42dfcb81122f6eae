"""Enroll over real TLS with a gRPC client that pins our CA; openssl judges what comes back."""

from __future__ import annotations

import asyncio
import re
import uuid

import grpc
import pytest
from gpulab.agent.v1 import enrollment_pb2 as pb
from gpulab.agent.v1 import enrollment_pb2_grpc as pb_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import OpenSsl, PkiService, make_csr, new_key


async def issue_token(pki: PkiService, node_id: uuid.UUID | None = None) -> tuple[uuid.UUID, str]:
    node = node_id or uuid.uuid4()
    reply = await pki.call("tokens.issue", {"node_id": str(node)})
    return node, reply["token"]


async def enroll(pki: PkiService, token: str, csr: str) -> pb.EnrollResponse:
    async with pki.channel() as channel:
        reply: pb.EnrollResponse = await pb_grpc.EnrollmentStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=csr), timeout=30
        )
        return reply


async def refused(pki: PkiService, token: str, csr: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await enroll(pki, token, csr)
    return info.value


async def certificates_of(db: AsyncEngine, node_id: uuid.UUID) -> int:
    async with db.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM pki.certificates WHERE node_id = :n"), {"n": node_id})
    return int(count or 0)


async def test_enrolled_certificate_is_a_p384_client_cert_for_the_node(pki: PkiService, openssl: OpenSsl) -> None:
    node_id, token = await issue_token(pki)
    reply = await enroll(pki, token, make_csr(new_key(), common_name="someone-else"))

    assert reply.node_id == str(node_id)
    assert reply.heartbeat_endpoint == "nodes.example.org:50052"
    assert reply.ca_certificate_pem.encode() == pki.ca_pem
    ca = openssl.write("pki-ca.pem", pki.ca_pem)
    cert = openssl.write(f"node-{node_id}.pem", reply.certificate_pem.encode())
    done = openssl.verify(ca, cert, "sslclient")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout
    assert openssl.verify(ca, cert, "sslserver").returncode != 0, "a node certificate cannot serve TLS"
    dump = openssl.text(cert)
    assert "NIST CURVE: P-384" in dump or "secp384r1" in dump
    assert re.search(rf"Subject: CN ?= ?{node_id}\n", dump)
    assert "someone-else" not in dump
    assert "CA:FALSE" in dump
    assert "TLS Web Client Authentication" in dump
    assert "TLS Web Server Authentication" not in dump
    start, end = openssl.dates(cert)
    # 7 days (the default) from issue; notBefore is backdated by the CA's 5 minutes of clock skew.
    assert abs((end - start).total_seconds() - (7 * 24 * 3600 + 300)) <= 2


async def test_hundred_concurrent_enrolls_with_one_token_issue_one_certificate(
    pki: PkiService, db: AsyncEngine
) -> None:
    node_id, token = await issue_token(pki)
    csrs = [make_csr(new_key()) for _ in range(100)]
    async with pki.channel() as channel:
        stub = pb_grpc.EnrollmentStub(channel)
        results = await asyncio.gather(
            *(stub.Enroll(pb.EnrollRequest(token=token, csr_pem=csr), timeout=60) for csr in csrs),
            return_exceptions=True,
        )
    issued = [r for r in results if isinstance(r, pb.EnrollResponse)]
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(issued) == 1
    assert len(errors) == 99
    assert {e.code() for e in errors} == {grpc.StatusCode.UNAUTHENTICATED}
    assert await certificates_of(db, node_id) == 1


async def test_second_enroll_with_same_token_is_refused(pki: PkiService) -> None:
    _node, token = await issue_token(pki)
    await enroll(pki, token, make_csr(new_key()))
    err = await refused(pki, token, make_csr(new_key()))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_expired_unknown_and_replaced_tokens_are_refused_alike(pki: PkiService, db: AsyncEngine) -> None:
    node_id, old = await issue_token(pki)
    _same, new = await issue_token(pki, node_id)  # a new token replaces the old one
    _other, expired = await issue_token(pki)
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE pki.enrollment_tokens SET expires_at = now() - interval '1 second' WHERE node_id = :n"),
            {"n": _other},
        )
    messages = set()
    for token in (old, expired, "x" * 43, ""):
        err = await refused(pki, token, make_csr(new_key()))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        messages.add(err.details())
    assert len(messages) == 1, "one message: the caller learns nothing about why"
    assert (await enroll(pki, new, make_csr(new_key()))).node_id == str(node_id)


async def test_revoked_tokens_are_refused(pki: PkiService) -> None:
    node_id, token = await issue_token(pki)
    await pki.call("tokens.revoke", {"node_id": str(node_id)})
    assert (await refused(pki, token, make_csr(new_key()))).code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "csr",
    [
        "",
        "garbage",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ],
)
async def test_bad_csr_is_invalid_argument_and_keeps_the_token(pki: PkiService, db: AsyncEngine, csr: str) -> None:
    node_id, token = await issue_token(pki)
    err = await refused(pki, token, csr)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "CSR" in (err.details() or "")
    assert await certificates_of(db, node_id) == 0
    assert (await enroll(pki, token, make_csr(new_key()))).node_id == str(node_id)


async def test_csr_with_wrong_curve_is_refused_with_the_reason(pki: PkiService, openssl: OpenSsl) -> None:
    _node, token = await issue_token(pki)
    csr = openssl.csr(openssl.key("enroll-p256", "p256"), name="enroll-p256").decode()
    err = await refused(pki, token, csr)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "P-384" in (err.details() or "")


async def test_oversized_request_is_refused_without_reading_it(pki: PkiService) -> None:
    _node, token = await issue_token(pki)
    err = await refused(pki, token, "A" * (128 * 1024))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
