"""The heartbeat port (:50052): mutual TLS with the internal CA, and the servicer behind it.

TLS refuses a client without a certificate, with one from another CA, or with an expired one, before
any of our code runs. The servicer then takes the node from the certificate's CN (never from the
request), and refuses a revoked serial, a node that is unknown or deleted, or a certificate that has
expired since the handshake (a connection lives on, and a resumed session skips the certificate
checks) with UNAUTHENTICATED.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.message import DecodeError
from gpulab.agent.v1 import assignment_pb2
from gpulab.agent.v1 import heartbeat_pb2 as pb
from gpulab.agent.v1 import heartbeat_pb2_grpc as pb_grpc

from gpulab_core import telemetry
from gpulab_core.errors import GpulabError
from gpulab_inventory.config import Settings
from gpulab_inventory.desired import fitting
from gpulab_inventory.heartbeat import wire as wire_format
from gpulab_inventory.heartbeat.directory import Directory, NodeRefused
from gpulab_inventory.heartbeat.metrics import ANSWERED, HEARTBEATS, TRIMMED
from gpulab_inventory.pki_client import PkiClient

log = logging.getLogger(__name__)
GRACE_S = 5.0  # calls in flight at shutdown get this long to finish
RETRY_S = 2.0  # waiting for pki to sign the port's certificate
SERVICE = "gpulab.agent.v1.Heartbeat"
PEER_CACHE_SIZE = 100_000  # parsed client certificates remembered (~200 bytes each)


@dataclass(frozen=True)
class Peer:
    node_id: uuid.UUID
    serial: str
    not_after: datetime


class Peers:
    """Client certificate (PEM, as gRPC hands it over) → node id and serial, parsed once per certificate."""

    def __init__(self, size: int = PEER_CACHE_SIZE) -> None:
        self._size = size
        self._known: OrderedDict[bytes, Peer | None] = OrderedDict()

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> Peer | None:
        auth = context.auth_context()
        pems = auth.get("x509_pem_cert")
        if not pems:
            return None
        pem = next(iter(pems))
        if pem in self._known:
            self._known.move_to_end(pem)
            return self._known[pem]
        peer = _parse(pem)
        self._known[pem] = peer
        if len(self._known) > self._size:
            self._known.popitem(last=False)
        return peer


def _parse(pem: bytes) -> Peer | None:
    try:
        cert = x509.load_pem_x509_certificate(pem)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return Peer(uuid.UUID(str(names[0].value)), format(cert.serial_number, "040x"), cert.not_valid_after_utc)
    except (ValueError, IndexError):
        return None


class HeartbeatServicer(pb_grpc.HeartbeatServicer):  # type: ignore[misc]
    def __init__(
        self,
        directory: Directory[assignment_pb2.Assignment],
        interval_s: int,
        peers: Peers,
        max_message_bytes: int,
        on_too_large: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        self._directory = directory
        self._interval = interval_s
        self._peers = peers
        self._max_bytes = max_message_bytes
        self._on_too_large = on_too_large

    @telemetry.grpc_span("/gpulab.agent.v1.Heartbeat/Heartbeat")
    async def Heartbeat(  # noqa: N802 (the gRPC method name)
        self, wire: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        """Takes the request's bytes and answers bytes (see `register`): the steady heartbeat, the same
        bytes as the node's last one that changed nothing, is answered with the same reply, unparsed."""
        peer = self._peers.identify(context)
        if peer is None:
            HEARTBEATS.labels("refused").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the client certificate does not name a node")
        assert peer is not None
        if datetime.now(UTC) >= peer.not_after:
            HEARTBEATS.labels("refused").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the client certificate has expired")
        replayed = self._directory.replay(peer.node_id, peer.serial, wire)
        if replayed is not None:
            ANSWERED.inc()
            return replayed
        try:
            request = pb.HeartbeatRequest.FromString(wire)
        except DecodeError:
            HEARTBEATS.labels("invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request is not a HeartbeatRequest")
        try:
            assignments = await self._directory.heartbeat(peer.node_id, peer.serial, wire_format.beat(request, wire))
        except NodeRefused as exc:
            HEARTBEATS.labels("refused").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except GpulabError as exc:  # a field out of bounds
            HEARTBEATS.labels("invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        ANSWERED.inc()
        reply = pb.HeartbeatResponse(assignments=assignments, heartbeat_interval_s=self._interval)
        if reply.ByteSize() > self._max_bytes:
            fitted: bytes = self._fitted(peer.node_id, assignments).SerializeToString()
            return fitted  # never kept for replay: the node is fitted soon
        answer: bytes = reply.SerializeToString()
        self._directory.keep_reply(peer.node_id, wire, answer)
        return answer

    def register(self, server: grpc.aio.Server) -> None:
        """As the generated `add_HeartbeatServicer_to_server`, but the method takes and answers bytes:
        the request is parsed, and the reply serialized, only when it is not a replay."""
        handlers = {"Heartbeat": grpc.unary_unary_rpc_method_handler(self.Heartbeat)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    def _fitted(self, node_id: uuid.UUID, assignments: list[Any]) -> pb.HeartbeatResponse:
        """The desired state is fitted to one reply where it changes (desired/fitting.py), so this is a
        net: a node whose state was never fitted, or fitted for a larger limit. gRPC would refuse the
        whole reply and the node would hear nothing, keeping every tenant's stale access; instead the
        node gets what fits now, and the node is fitted in the database (recorded as failed, shown in
        REST) off this path."""
        sizes = {a.assignment_id: fitting.reply_size(a) for a in assignments}
        plan = fitting.fit(sizes, self._max_bytes)
        TRIMMED.inc()
        log.error(
            "node %s: heartbeat reply over %d bytes; left out %s until the node is fitted",
            node_id,
            self._max_bytes,
            ", ".join(sorted(plan.withheld)),
        )
        if self._on_too_large is not None:
            self._on_too_large(node_id)
        kept = [a for a in assignments if a.assignment_id not in plan.withheld]
        return pb.HeartbeatResponse(assignments=kept, heartbeat_interval_s=self._interval)


def make_csr() -> tuple[bytes, str]:
    """A fresh P-384 key for the port (it never leaves this process) and a CSR for pki to sign."""
    key = ec.generate_private_key(ec.SECP384R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA384())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class HeartbeatServer:
    settings: Settings
    directory: Directory[assignment_pb2.Assignment]
    pki: PkiClient
    on_too_large: Callable[[uuid.UUID], None] | None = None  # a node's reply did not fit: fit the node
    port: int = 0  # the port actually bound, once started
    started: asyncio.Event = field(default_factory=asyncio.Event)
    _server: grpc.aio.Server | None = field(default=None, init=False)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def run(self) -> None:
        """The Runtime's background task: get a certificate from pki (waiting for it if need be),
        listen, then wait for stop(). Inventory's NATS endpoints work meanwhile."""
        while True:
            try:
                await self.start()
                break
            except GpulabError as exc:
                log.warning("heartbeat port waits for pki to sign its certificate: %s", exc.message)
                await asyncio.sleep(RETRY_S)
        await self._stopped.wait()

    async def start(self) -> None:
        s = self.settings
        dns, ips = s.server_names()
        key_pem, csr_pem = make_csr()
        signed = await self.pki.sign_server(csr_pem, dns, ips)
        ca_pem = signed.ca_certificate_pem.encode()
        credentials = grpc.ssl_server_credentials(
            [(key_pem, signed.certificate_pem.encode())], root_certificates=ca_pem, require_client_auth=True
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", s.heartbeat_max_message_bytes),
                ("grpc.max_send_message_length", s.heartbeat_max_message_bytes),
                # Replicas on one host share the port (the local run's GPULAB_DEV_REPLICAS, docs/adr/0022).
                ("grpc.so_reuseport", 1),
            ],
            maximum_concurrent_rpcs=s.heartbeat_max_concurrent_rpcs,
        )
        servicer = HeartbeatServicer(
            self.directory, s.heartbeat_interval_s, Peers(), s.heartbeat_max_message_bytes, self.on_too_large
        )
        servicer.register(server)
        self.port = server.add_secure_port(f"{s.heartbeat_host}:{s.heartbeat_port}", credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {s.heartbeat_host}:{s.heartbeat_port}")
        await server.start()
        self._server = server
        self.started.set()
        log.info("heartbeat listening", extra={"host": s.heartbeat_host, "port": self.port, "dns_names": dns})

    async def ready(self) -> None:
        if not self.started.is_set():
            raise ConnectionError("the heartbeat port is not listening yet")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(GRACE_S)
        self._stopped.set()
