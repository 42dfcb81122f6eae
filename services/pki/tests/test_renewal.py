"""Renew: the node is whoever its presented certificate says, from 2/3 of the lifetime on, for a new key."""

from __future__ import annotations

import uuid

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gpulab.agent.v1 import enrollment_pb2 as pb
from gpulab.agent.v1 import enrollment_pb2_grpc as pb_grpc

from gpulab_pki.ca import certificate_pem, create_root, issue_client_cert, serial_hex, validate_node_csr

from .conftest import PkiService, key_pem, make_csr, new_key


async def enrolled(pki: PkiService) -> tuple[uuid.UUID, ec.EllipticCurvePrivateKey, bytes]:
    node_id = uuid.uuid4()
    token = (await pki.call("tokens.issue", {"node_id": str(node_id)}))["token"]
    key = new_key()
    async with pki.channel() as channel:
        reply = await pb_grpc.EnrollmentStub(channel).Enroll(pb.EnrollRequest(token=token, csr_pem=make_csr(key)))
    return node_id, key, reply.certificate_pem.encode()


async def renew(
    pki: PkiService, key: ec.EllipticCurvePrivateKey | None, cert: bytes | None, csr: str
) -> pb.RenewResponse:
    async with pki.channel(key_pem(key) if key else None, cert) as channel:
        reply: pb.RenewResponse = await pb_grpc.EnrollmentStub(channel).Renew(pb.RenewRequest(csr_pem=csr), timeout=30)
        return reply


async def renew_refused(
    pki: PkiService, key: ec.EllipticCurvePrivateKey | None, cert: bytes | None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await renew(pki, key, cert, make_csr(new_key()))
    return info.value


def cn(pem: bytes | str) -> str:
    data = pem.encode() if isinstance(pem, str) else pem
    return str(x509.load_pem_x509_certificate(data).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def test_renewal_before_two_thirds_of_the_lifetime_is_refused(pki: PkiService) -> None:
    _node, key, cert = await enrolled(pki)
    err = await renew_refused(pki, key, cert)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "renewed from" in (err.details() or "")


async def test_renewal_in_the_window_gives_the_same_node_a_new_certificate(pki_short: PkiService) -> None:
    node_id, key, cert = await enrolled(pki_short)
    new = new_key()
    reply = await renew(pki_short, key, cert, make_csr(new, common_name="another-node"))
    renewed = x509.load_pem_x509_certificate(reply.certificate_pem.encode())
    old = x509.load_pem_x509_certificate(cert)
    assert cn(reply.certificate_pem) == str(node_id)
    assert serial_hex(renewed) != serial_hex(old)
    assert renewed.public_key() == new.public_key()
    assert (
        reply.not_after.ToDatetime().replace(tzinfo=renewed.not_valid_after_utc.tzinfo) == renewed.not_valid_after_utc
    )
    assert reply.ca_certificate_pem.encode() == pki_short.ca_pem
    # The renewed certificate renews in its turn.
    again = await renew(pki_short, new, reply.certificate_pem.encode(), make_csr(new_key()))
    assert cn(again.certificate_pem) == str(node_id)


async def test_renewal_with_the_same_key_is_invalid_argument(pki_short: PkiService) -> None:
    _node, key, cert = await enrolled(pki_short)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await renew(pki_short, key, cert, make_csr(key))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_renewal_with_a_revoked_certificate_is_unauthenticated(pki_short: PkiService) -> None:
    node_id, key, cert = await enrolled(pki_short)
    revoked = await pki_short.call("certs.revoke_node", {"node_id": str(node_id)})
    assert revoked["revoked_serials"] == [serial_hex(x509.load_pem_x509_certificate(cert))]
    err = await renew_refused(pki_short, key, cert)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_renewal_without_a_client_certificate_is_unauthenticated(pki_short: PkiService) -> None:
    err = await renew_refused(pki_short, None, None)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_renewal_with_another_cas_certificate_is_refused(pki_short: PkiService) -> None:
    ca_key, ca_cert = create_root()
    key = new_key()
    node_id = uuid.uuid4()
    forged = issue_client_cert(ca_key, ca_cert, validate_node_csr(make_csr(key)), node_id)
    err = await renew_refused(pki_short, key, certificate_pem(forged))
    # The TLS handshake refuses it (UNAVAILABLE); the servicer would answer UNAUTHENTICATED.
    assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
