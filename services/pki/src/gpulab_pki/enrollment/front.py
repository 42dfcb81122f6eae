"""The TLS side of the enrollment port: terminates TLS and hands the plain HTTP/2 stream to gRPC.

Why not gRPC's own TLS: grpcio's Python API either requires a client certificate or never asks for
one (`require_client_auth`), and this port must do neither: Enroll has no certificate yet, Renew
authenticates with one in the handshake (enrollment.proto). OpenSSL through Python's `ssl` can ask
without requiring (CERT_OPTIONAL), so this front does the handshake, verifies any presented
certificate against our CA only, and forwards the bytes to the gRPC server on a loopback port. The
servicer learns which certificate came with a call from the loopback connection's source port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
HANDSHAKE_TIMEOUT_S = 10.0
DRAIN_S = 1.0
SHUTDOWN_TIMEOUT_S = 1.0


def server_context(ca_pem: bytes, key: ec.EllipticCurvePrivateKey, cert_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
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


class TlsFront:
    """Accepts TLS on (host, port) and pipes each connection to the gRPC server at backend_port."""

    def __init__(
        self, ctx: ssl.SSLContext, backend_port: int, peers: dict[int, bytes | None], *, max_connections: int
    ) -> None:
        self._ctx = ctx
        self._backend_port = backend_port
        self._slots = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        # loopback source port -> the DER client certificate of the TLS connection behind it (or None);
        # the servicer reads it
        self._peers = peers

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(
            self._accept,
            host,
            port,
            ssl=self._ctx,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            # asyncio waits 30 s by default for a peer's close_notify, which gone clients never send.
            ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S,
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
        if self._slots.locked():  # at the bound: refuse instead of queueing handshakes without limit
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        async with self._slots:
            try:
                await self._pipe(reader, writer)
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
                pass
            except asyncio.CancelledError:
                # stop() cancels open connections; this task belongs to the stream server, which
                # logs a cancelled connection task as an error, so the cancellation ends here.
                pass
            finally:
                self._conns.discard(task)
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), SHUTDOWN_TIMEOUT_S)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", self._backend_port)
        local_port = int(b_writer.get_extra_info("sockname")[1])
        # Registered before any byte reaches gRPC, so no call can look before it is there.
        self._peers[local_port] = der
        up = asyncio.create_task(_copy(reader, b_writer))
        down = asyncio.create_task(_copy(b_reader, writer))
        try:
            _done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if pending:  # one side finished: let the other deliver what is in flight, briefly
                await asyncio.wait(pending, timeout=DRAIN_S)
        finally:
            for task in (up, down):
                task.cancel()
            # Both collected, finished ones too: a peer's reset is an outcome here, not an error to
            # be reported by asyncio as "Task exception was never retrieved".
            await asyncio.gather(up, down, return_exceptions=True)
            self._peers.pop(local_port, None)
            b_writer.close()
            with contextlib.suppress(Exception):
                await b_writer.wait_closed()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
    finally:
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()
