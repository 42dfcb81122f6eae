"""The gRPC `Enrollment` service: Enroll with a token, Renew with the presented certificate.

Domain errors become gRPC status codes in `_STATUS`, and only there; anything unexpected is logged
and answered INTERNAL with no detail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from gpulab.agent.v1 import enrollment_pb2 as pb
from gpulab.agent.v1 import enrollment_pb2_grpc as pb_grpc

from gpulab_core import telemetry
from gpulab_core.errors import GpulabError, InvalidRequest
from gpulab_pki.ca import CaKeyError
from gpulab_pki.certificates import service as certs
from gpulab_pki.context import Pki
from gpulab_pki.enrollment.front import Peer
from gpulab_pki.errors import CertificateRefused, RenewalTooEarly, TokenRefused

log = logging.getLogger(__name__)

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]

# Most specific first: InvalidCsr and KeyReused are InvalidRequest.
_STATUS: tuple[tuple[type[GpulabError], grpc.StatusCode], ...] = (
    (TokenRefused, grpc.StatusCode.UNAUTHENTICATED),
    (CertificateRefused, grpc.StatusCode.UNAUTHENTICATED),
    (RenewalTooEarly, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (CaKeyError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(exc: GpulabError) -> tuple[grpc.StatusCode, str]:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            if kind is CaKeyError:  # the operator's message stays in the log
                return code, "the CA is unavailable"
            return code, exc.message
    return grpc.StatusCode.INTERNAL, "internal error"


class EnrollmentServicer(pb_grpc.EnrollmentServicer):  # type: ignore[misc]
    def __init__(self, pki: Pki, peers: Mapping[int, Peer]) -> None:
        self._pki = pki
        self._peers = peers  # the TLS front's loopback port -> its TLS connection

    @telemetry.grpc_span("/gpulab.agent.v1.Enrollment/Enroll")
    async def Enroll(self, request: pb.EnrollRequest, context: Context) -> pb.EnrollResponse:  # noqa: N802
        pki = self._pki
        peer = self._peer(context)

        async def run() -> pb.EnrollResponse:
            async with pki.sessions() as session, session.begin():
                issued = await certs.enroll(
                    session, pki.authority, request.token, request.csr_pem, pki.node_cert_lifetime, peer.address
                )
            return pb.EnrollResponse(
                node_id=str(issued.node_id),
                certificate_pem=issued.pem,
                ca_certificate_pem=pki.authority.cert_pem.decode(),
                heartbeat_endpoint=pki.settings.heartbeat_target(),
            )

        return await _answer(context, "Enroll", run)

    @telemetry.grpc_span("/gpulab.agent.v1.Enrollment/Renew")
    async def Renew(self, request: pb.RenewRequest, context: Context) -> pb.RenewResponse:  # noqa: N802
        pki = self._pki
        peer = self._peer(context)

        async def run() -> pb.RenewResponse:
            async with pki.sessions() as session, session.begin():
                issued = await certs.renew(
                    session, pki.authority, peer.der, request.csr_pem, pki.node_cert_lifetime, peer.address
                )
            not_after = Timestamp()
            not_after.FromDatetime(issued.cert.not_valid_after_utc)
            return pb.RenewResponse(
                certificate_pem=issued.pem, ca_certificate_pem=pki.authority.cert_pem.decode(), not_after=not_after
            )

        return await _answer(context, "Renew", run)

    def _peer(self, context: Context) -> Peer:
        """This call's TLS connection, found by the loopback source port. A call that did not come
        through the front (a local process on the loopback port) has no certificate and no address."""
        peer = str(context.peer())  # "ipv4:127.0.0.1:54321"
        try:
            port = int(peer.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            return _NO_PEER
        return self._peers.get(port, _NO_PEER)


_NO_PEER = Peer(der=None, address="")


async def _answer(context: Context, method: str, run: Callable[[], Awaitable[T]]) -> T:
    try:
        return await run()
    except GpulabError as exc:
        code, message = status_for(exc)
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
            log.error("%s failed: %s", method, exc.message, extra={"code": exc.code})
        await context.abort(code, message)
    except Exception:
        log.exception("unhandled error in Enrollment/%s", method)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    raise AssertionError("unreachable: abort raises")


def server_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # The front already bounds connections; one process's port is never shared by replicas.
        ("grpc.so_reuseport", 0),
    ]
