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
import socket
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gpulab_core.networks import Network, address, is_trusted
from gpulab_pki.enrollment.limits import DROPPED, Admission, Limits, peer_host, share_of
from gpulab_pki.enrollment.proxy_protocol import ProxyHeaderError, read_source

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
# After one side ends, how long the other may still deliver what is in flight.
DRAIN_S = 1.0
# How long a normal end waits for the client's close_notify.
SHUTDOWN_TIMEOUT_S = 1.0
# Connections the kernel holds for us while the loop is busy (capped by net.core.somaxconn).
BACKLOG = 1024
# After accept() fails (out of descriptors), as asyncio's own servers do.
ACCEPT_RETRY_S = 1.0


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
    _set_key_exchange(ctx)
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


def _set_key_exchange(ctx: ssl.SSLContext) -> None:
    try:
        ctx.set_ecdh_curve(ECDH_GROUP)
    except ssl.SSLError:
        # Some CPython builds name the group through EC_KEY_new_by_curve_name, which knows no X25519
        # (Debian bookworm's python3, 3.11.2: found by scripts/imagecheck). OpenSSL's default groups
        # stay: X25519 first among them, so every client of this port still gets it.
        log.warning("this Python cannot name %s as the only key exchange group; OpenSSL's defaults stay", ECDH_GROUP)


@dataclass(frozen=True)
class Peer:
    """What the front knows of the TLS connection behind one loopback port, for the servicer."""

    der: bytes | None  # the client certificate, DER; None when none was presented
    address: str  # the node's address as this port sees it (for the audit log)


class TlsFront:
    """Accepts TCP on (host, port), admits it under the Limits, reads a trusted proxy's PROXY header,
    does the TLS handshake itself, then pipes the connection to the gRPC server at backend_port until
    one side ends or it idles too long.

    It accepts on its own sockets rather than through asyncio's stream server: that one reads from a
    connection as soon as it is accepted, and the PROXY header must be read alone, exactly, so that
    the ClientHello behind it reaches the TLS layer. And that server's `ssl=` would handshake before
    it hands a connection over: a flood of peers that never say hello would hold places nobody counts.
    """

    def __init__(
        self,
        ctx: ssl.SSLContext,
        backend_port: int,
        peers: dict[int, Peer],
        limits: Limits,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self._ctx = ctx
        self._backend_port = backend_port
        self._limits = limits
        self._proxies = tuple(trusted_proxies)
        self._admission = Admission(limits)
        self._listeners: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._conns: set[asyncio.Task[None]] = set()
        # loopback source port -> the TLS connection behind it; the servicer reads it
        self._peers = peers

    @property
    def open_connections(self) -> int:
        return self._admission.total

    async def start(self, host: str, port: int) -> int:
        """Listens on every address host resolves to; returns the port (the first one's, for port 0)."""
        self._listeners = await _listen(host, port)
        self._accepting = [asyncio.create_task(self._accept(listener)) for listener in self._listeners]
        return int(self._listeners[0].getsockname()[1])

    async def stop(self) -> None:
        for task in self._accepting:  # no new connections
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for listener in self._listeners:
            listener.close()
        # Open connections end now (gRPC's own stop already gave calls in flight their grace period).
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peername = await loop.sock_accept(listener)
            except OSError as exc:  # out of descriptors or buffers: the backlog keeps the rest waiting
                log.warning("enrollment port: accept failed (%s); trying again in %.0f s", exc, ACCEPT_RETRY_S)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            task = asyncio.create_task(self._serve(conn, peer_host(peername)))
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        admission = self._admission
        proxied = is_trusted(address(peer), self._proxies)
        host, share = peer, share_of(peer)
        # A trusted proxy's connection counts in all at once, and against its node's share once its
        # header has named the node.
        if not admission.admit(share, capped=not proxied):
            conn.close()  # no handshake, no close_notify: the cheapest refusal there is
            return
        counted = True
        writer: asyncio.StreamWriter | None = None
        graceful = False
        try:
            if proxied:
                named = await self._proxy_source(conn, peer)
                if named is _DROPPED:
                    return
                if named is not None:
                    host = named
                    counted = admission.transfer(share, share_of(host))
                    share = share_of(host)
                    if not counted:
                        return
            streams = await self._handshake(conn)
            if streams is not None:
                reader, writer = streams
                graceful = await self._pipe(reader, writer, host)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): the connection ends below
        finally:
            if counted:
                admission.release(share)
            if writer is not None:
                await _close(writer, graceful)
            else:
                conn.close()

    async def _proxy_source(self, conn: socket.socket, peer: str) -> str | None:
        """The node a trusted proxy's header names (None: it names none, the peer stands), or _DROPPED
        when the header is missing, malformed, or not all there within the handshake timeout."""
        loop = asyncio.get_running_loop()

        async def recv_exactly(n: int) -> bytes:
            data = b""
            while len(data) < n:
                chunk = await loop.sock_recv(conn, n - len(data))
                if not chunk:
                    raise EOFError
                data += chunk
            return data

        try:
            return await asyncio.wait_for(read_source(recv_exactly), self._limits.handshake_timeout_s)
        except ProxyHeaderError as exc:
            # Worth a line: a proxy that sends no header (or a client let into the proxies' network)
            # means no node gets through that way.
            log.warning("enrollment port: dropped a connection from trusted proxy %s: %s", peer, exc)
        except (EOFError, TimeoutError, OSError):
            pass  # a balancer's health check connects and hangs up; a stall is the timeout's to end
        DROPPED.labels("proxy").inc()
        return _DROPPED

    async def _handshake(self, conn: socket.socket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The TLS handshake on the accepted socket, bounded by the handshake timeout; None if it fails."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self._ctx, ssl_handshake_timeout=self._limits.handshake_timeout_s
            )
        except (ConnectionError, ssl.SSLError, OSError):
            # Too slow (the timeout), or refused: another CA's certificate, no TLS at all.
            DROPPED.labels("handshake").inc()
            return None
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

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


_DROPPED = "dropped"  # _proxy_source's answer for a connection it dropped (never an address)


async def _listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address host resolves to, shared with other replicas on this host
    (SO_REUSEPORT, as gRPC's own listeners do by default)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners


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
