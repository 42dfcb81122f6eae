"""The TLS side of the enrollment port: terminates TLS and hands the plain HTTP/2 stream to gRPC.

Why not gRPC's own TLS: grpcio's Python API either requires a client certificate or never asks for
one (`require_client_auth`), and this port must do neither: Enroll has no certificate yet, Renew
authenticates with one in the handshake (enrollment.proto). OpenSSL through Python's `ssl` can ask
without requiring (CERT_OPTIONAL), so this front does the handshake, verifies any presented
certificate against our CA only, and forwards the bytes to the gRPC server on a loopback port. The
servicer learns which certificate (and which address) came with a call from the loopback connection's
source port. limits.py says how many connections it holds and for how long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gpulab_pki.enrollment.limits import DROPPED, Admission, Limits, peer_host, share_of

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
# After one side ends, how long the other may still deliver what is in flight.
DRAIN_S = 1.0
# How long a normal end waits for the client's close_notify.
SHUTDOWN_TIMEOUT_S = 1.0


# Mozilla's "intermediate" TLS configuration (v5.7, the profile sslyze checks against in
# services/inventory/tests/test_tls_ports.py), for this port's ECDSA certificate. TLS 1.2: only the
# forward-secret AEAD suites (OpenSSL's default list also offers two ECDHE-ECDSA CBC suites); TLS 1.3's
# three suites are OpenSSL's default and all allowed.
TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
# Key exchange: OpenSSL's default groups also include X448 and secp521r1, which the profile leaves
# out. Python's ssl (before 3.15's set_groups) can name exactly one group: X25519, the profile's
# first, which every client of this port offers a key share for (the Go agent, gRPC's BoringSSL), so
# no TLS 1.3 handshake needs a second round trip.
ECDH_GROUP = "X25519"


def server_context(ca_pem: bytes, key: ec.EllipticCurvePrivateKey, cert_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.set_ecdh_curve(ECDH_GROUP)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # asked for, checked when sent, not required
    ctx.load_verify_locations(cadata=ca_pem.decode())  # our CA is the only trust anchor
    ctx.set_alpn_protocols(["h2"])  # gRPC clients insist on ALPN h2
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # ssl loads a key only from a file: a private temporary one, removed at once (0600 by mkstemp).
    fd, path = tempfile.mkstemp(prefix="gpulab-enroll-", suffix=".pem")
    try:
        # The CA follows the leaf in the chain: an agent pins the CA by its fingerprint from what this
        # handshake presents, before it sends its token (issue 6).
        os.write(fd, cert_pem + ca_pem + key_pem)
        os.close(fd)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
    return ctx


@dataclass(frozen=True)
class Peer:
    """What the front knows of the TLS connection behind one loopback port, for the servicer."""

    der: bytes | None  # the client certificate, DER; None when none was presented
    address: str  # the node's address as this port sees it (for the audit log)


class TlsFront:
    """Accepts TCP on (host, port), admits it under the Limits, does the TLS handshake itself, then
    pipes the connection to the gRPC server at backend_port until one side ends or it idles too long.

    The handshake is done here, not by asyncio's server (start_server(ssl=...)), because that one
    handshakes before it hands a connection over: a flood of peers that never say hello would hold
    places nobody counts.
    """

    def __init__(self, ctx: ssl.SSLContext, backend_port: int, peers: dict[int, Peer], limits: Limits) -> None:
        self._ctx = ctx
        self._backend_port = backend_port
        self._limits = limits
        self._admission = Admission(limits)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        # loopback source port -> the TLS connection behind it; the servicer reads it
        self._peers = peers

    @property
    def open_connections(self) -> int:
        return self._admission.total

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(
            self._accept,
            host,
            port,
            # Replicas on one host share the port, as gRPC's own listeners do by default.
            reuse_port=True,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections
        # Open connections end now (gRPC's own stop already gave calls in flight their grace period),
        # before wait_closed, which waits for them.
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Nothing is awaited before start_tls: the ClientHello must reach the TLS layer, not this
        # reader's buffer (asyncio runs this task before it reads from the new socket).
        host = peer_host(writer.get_extra_info("peername"))
        share = share_of(host)
        if not self._admission.admit(share):
            writer.transport.abort()  # no handshake, no close_notify: the cheapest refusal there is
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        graceful = False
        try:
            try:
                await writer.start_tls(self._ctx, ssl_handshake_timeout=self._limits.handshake_timeout_s)
            except (ConnectionError, ssl.SSLError, OSError):
                # Too slow (the timeout), or refused: another CA's certificate, no TLS at all.
                DROPPED.labels("handshake").inc()
                return
            graceful = await self._pipe(reader, writer, host)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            # stop() cancels open connections; this task belongs to the stream server, which logs a
            # cancelled connection task as an error, so the cancellation ends here.
            pass
        finally:
            self._conns.discard(task)
            self._admission.release(share)
            await _close(writer, graceful)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> bool:
        """Pipes until one side ends (True) or the connection idles past the idle timeout (False)."""
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", self._backend_port)
        local_port = int(b_writer.get_extra_info("sockname")[1])
        # Registered before any byte reaches gRPC, so no call can look before it is there.
        self._peers[local_port] = Peer(der, host)
        activity = _Activity()
        up = asyncio.create_task(_copy(reader, b_writer, activity))
        down = asyncio.create_task(_copy(b_reader, writer, activity))
        idle = asyncio.create_task(activity.idle_for(self._limits.idle_timeout_s))
        try:
            done, pending = await asyncio.wait({up, down, idle}, return_when=asyncio.FIRST_COMPLETED)
            if idle in done:
                DROPPED.labels("idle").inc()
                return False
            pending.discard(idle)
            if pending:  # one side finished: let the other deliver what is in flight, briefly
                await asyncio.wait(pending, timeout=DRAIN_S)
            return True
        finally:
            # What must happen is done before the first await: stop() may cancel this task again
            # while it waits below.
            for task in (up, down, idle):
                task.cancel()
            self._peers.pop(local_port, None)
            b_writer.close()
            # All collected, finished ones too: a peer's reset is an outcome here, not an error to
            # be reported by asyncio as "Task exception was never retrieved".
            await asyncio.gather(up, down, idle, return_exceptions=True)
            with contextlib.suppress(Exception):
                await b_writer.wait_closed()


class _Activity:
    """When a byte last went either way on one connection."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.last = self._loop.time()

    def touch(self) -> None:
        self.last = self._loop.time()

    async def idle_for(self, seconds: float) -> None:
        """Returns once nothing has moved for `seconds`."""
        while (left := self.last + seconds - self._loop.time()) > 0:
            await asyncio.sleep(left)


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, activity: _Activity) -> None:
    try:
        while data := await src.read(_CHUNK):
            activity.touch()
            dst.write(data)
            await dst.drain()
            activity.touch()  # a slow reader on the other side is not idleness
    finally:
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()


async def _close(writer: asyncio.StreamWriter, graceful: bool) -> None:
    """Ends the client's connection: with TLS's close_notify when it ended normally, bounded by
    SHUTDOWN_TIMEOUT_S (gone clients never answer it, and asyncio would wait 30 s); at once otherwise."""
    try:
        if graceful:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), SHUTDOWN_TIMEOUT_S)
    finally:
        writer.transport.abort()  # also when stop() cancels the wait
