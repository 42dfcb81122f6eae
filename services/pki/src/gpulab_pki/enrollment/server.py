"""The enrollment port's life: its own server certificate, the TLS front, the gRPC server behind it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc
from gpulab.agent.v1 import enrollment_pb2_grpc as pb_grpc

from gpulab_pki.ca import certificate_pem, issue_server_cert
from gpulab_pki.certificates import repository as certs_repo
from gpulab_pki.context import Pki
from gpulab_pki.enrollment.front import Peer, TlsFront, server_context
from gpulab_pki.enrollment.limits import Limits
from gpulab_pki.enrollment.servicer import EnrollmentServicer, server_options

log = logging.getLogger(__name__)
GRACE_S = 5.0  # calls in flight at shutdown get this long to finish


@dataclass
class EnrollmentServer:
    pki: Pki
    port: int = 0  # the TLS port actually bound, once started
    _grpc: grpc.aio.Server | None = field(default=None, init=False)
    _front: TlsFront | None = field(default=None, init=False)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def start(self) -> None:
        pki, settings = self.pki, self.pki.settings
        dns, ips = settings.server_names()
        # A fresh key and certificate at each start: the key lives in this process's memory only.
        key, cert = issue_server_cert(pki.authority.key, pki.authority.cert, dns, ips)
        async with pki.sessions() as session, session.begin():
            await certs_repo.record_server(session, cert, "enrollment", dns, ips)
        server = grpc.aio.server(
            options=server_options(settings.enroll_max_message_bytes),
            maximum_concurrent_rpcs=settings.enroll_max_concurrent_rpcs,
        )
        peers: dict[int, Peer] = {}
        pb_grpc.add_EnrollmentServicer_to_server(EnrollmentServicer(pki, peers), server)
        # Plain HTTP/2 on loopback only, reached through the front; a local process that dials it
        # directly presents no certificate, so Renew refuses it and Enroll still needs a token.
        backend_port = server.add_insecure_port("127.0.0.1:0")
        front = TlsFront(
            server_context(pki.authority.cert_pem, key, certificate_pem(cert)),
            backend_port,
            peers,
            Limits(
                max_connections=settings.enroll_max_connections,
                max_connections_per_address=settings.enroll_max_connections_per_address,
                handshake_timeout_s=settings.enroll_handshake_timeout_s,
                idle_timeout_s=settings.enroll_idle_timeout_s,
            ),
            settings.enroll_trusted_networks,
        )
        await server.start()
        self._grpc = server
        self.port = await front.start(settings.enroll_host, settings.enroll_port)
        self._front = front
        log.info(
            "enrollment listening",
            extra={"host": settings.enroll_host, "port": self.port, "dns_names": dns, "ip_addresses": ips},
        )

    async def run(self) -> None:
        """The Runtime's background task: the servers run on their own; this only waits for stop()."""
        await self._stopped.wait()

    async def stop(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(GRACE_S)  # refuses new calls, lets those in flight finish
        if self._front is not None:
            await self._front.stop()
        self._stopped.set()
