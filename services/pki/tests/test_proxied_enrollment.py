"""The enrollment port behind a TCP balancer: a trusted proxy's PROXY v2 header names the node (in the
audit events and in the per-address limit), TLS passes through it untouched, and nobody else can name
an address.

The balancer is played by a relay in this process that dials pki from 127.0.0.3 (the trusted proxy);
nodes dial from 127.0.0.1. test_haproxy_front.py does the same with the real HAProxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from gpulab.agent.v1 import enrollment_pb2 as pb
from gpulab.agent.v1 import enrollment_pb2_grpc as pb_grpc

from gpulab_core.contracts import pki as c
from gpulab_devstack.testing import Stack
from gpulab_pki.enrollment.limits import DROPPED

from .conftest import PkiService, key_pem, make_csr, new_key
from .test_port_exhaustion import closed_by_server, running
from .test_proxy_protocol import v2_header
from .test_reenrollment import Events
from .test_renewal import cn

PROXY = "127.0.0.3"
NODE = "198.51.100.7"


@contextlib.asynccontextmanager
async def relay(target: PkiService, source: str, header: bytes | None) -> AsyncIterator[PkiService]:
    """A TCP balancer on a port of its own: each connection is dialled on from `source` to target's
    port, opening with `header` (None: none), then piped both ways. Yields target as seen through it."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target.port, local_addr=(source, 0))
        if header is not None:
            up_writer.write(header)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield dataclasses.replace(target, port=int(server.sockets[0].getsockname()[1]))
    finally:
        server.close()


@contextlib.asynccontextmanager
async def proxied_pki(stack: Stack, folder: Path, **overrides: Any) -> AsyncIterator[PkiService]:
    async with running(stack, folder, enroll_trusted_proxies=f"{PROXY}/32", **overrides) as service:
        yield service


async def enroll(service: PkiService, events: Events) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    token = (await service.call("tokens.issue", {"node_id": events.node_id}))["token"]
    key = new_key()
    async with service.channel() as channel:
        reply = await pb_grpc.EnrollmentStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=make_csr(key)), timeout=30
        )
    return key, reply.certificate_pem.encode()


@contextlib.asynccontextmanager
async def watching(service: PkiService) -> AsyncIterator[Events]:
    seen = Events(uuid.uuid4())
    sub = await service.runtime.nc.subscribe("gpulab.events.pki.>", cb=seen.on_message)
    try:
        yield seen
    finally:
        await sub.unsubscribe()


def dropped(reason: str) -> float:
    return float(DROPPED.labels(reason)._value.get())


async def test_a_node_behind_the_trusted_proxy_enrolls_and_renews_under_its_own_address(
    migrated: Stack, tmp_path: Path
) -> None:
    async with proxied_pki(migrated, tmp_path) as service, watching(service) as events:
        async with relay(service, PROXY, v2_header(NODE)) as balanced:
            key, cert = await enroll(balanced, events)
            # Renew authenticates with the certificate in the TLS handshake: it passes the proxy intact.
            async with balanced.channel(key_pem(key), cert) as channel:
                reply = await pb_grpc.EnrollmentStub(channel).Renew(
                    pb.RenewRequest(csr_pem=make_csr(new_key())), timeout=30
                )
        assert cn(reply.certificate_pem) == events.node_id
        (enrolled,) = await events.of_type(c.NODE_ENROLLED)
        (renewed,) = await events.of_type(c.CERTIFICATE_RENEWED)
        assert (enrolled["address"], renewed["address"]) == (NODE, NODE)


async def test_a_direct_node_is_its_own_address_and_its_header_is_not_believed(migrated: Stack, tmp_path: Path) -> None:
    async with proxied_pki(migrated, tmp_path) as service, watching(service) as events:
        await enroll(service, events)  # straight from 127.0.0.1, no header: as before any proxy
        (enrolled,) = await events.of_type(c.NODE_ENROLLED)
        assert enrolled["address"] == "127.0.0.1"
        # Someone who is not the proxy opens with a header naming another address: it is not read as
        # one, and as TLS it is garbage, so the connection ends in the handshake; nothing is issued.
        before = dropped("handshake")
        async with relay(service, "127.0.0.1", v2_header("203.0.113.66")) as forged:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await enroll(forged, events)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert dropped("handshake") > before
        assert len(await events.of_type(c.NODE_ENROLLED)) == 1


async def test_the_trusted_proxy_must_send_the_header(migrated: Stack, tmp_path: Path) -> None:
    async with proxied_pki(migrated, tmp_path) as service, watching(service) as events:
        before = dropped("proxy")
        async with relay(service, PROXY, None) as headerless:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await enroll(headerless, events)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert dropped("proxy") > before
        assert not [e for e in events.seen if e.type == c.NODE_ENROLLED]


async def raw_from_proxy(service: PkiService, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port, local_addr=(PROXY, 0))
    writer.write(data)
    await writer.drain()
    return reader, writer


async def test_the_per_address_cap_counts_the_node_the_header_names_not_the_proxy(
    migrated: Stack, tmp_path: Path
) -> None:
    cap = 2
    async with proxied_pki(migrated, tmp_path, enroll_max_connections_per_address=cap) as service:
        held = [await raw_from_proxy(service, v2_header(NODE)) for _ in range(cap)]
        try:
            for reader, _ in held:  # in, waiting for their ClientHello
                assert not await closed_by_server(reader, 0.3)
            before = dropped("address")
            reader, writer = await raw_from_proxy(service, v2_header(NODE))
            held.append((reader, writer))
            assert await closed_by_server(reader, 5), "one over the node's share"
            assert dropped("address") == before + 1
            # Another node behind the same proxy has its own share.
            other = await raw_from_proxy(service, v2_header("198.51.100.8"))
            held.append(other)
            assert not await closed_by_server(other[0], 0.3)
        finally:
            for _, writer in held:
                writer.transport.abort()


async def test_a_header_not_all_there_within_the_handshake_timeout_is_dropped(migrated: Stack, tmp_path: Path) -> None:
    async with proxied_pki(migrated, tmp_path, enroll_handshake_timeout_s=1.0) as service:
        before = dropped("proxy")
        reader, writer = await raw_from_proxy(service, v2_header(NODE)[:10])
        try:
            assert not await closed_by_server(reader, 0.5)
            assert await closed_by_server(reader, 5)
            assert dropped("proxy") == before + 1
        finally:
            writer.transport.abort()


async def test_a_proxys_connections_waiting_for_their_header_count_against_the_port(
    migrated: Stack, tmp_path: Path
) -> None:
    async with proxied_pki(migrated, tmp_path, enroll_max_connections=3) as service:
        held = [await raw_from_proxy(service, b"") for _ in range(3)]
        try:
            for reader, _ in held:
                assert not await closed_by_server(reader, 0.3)
            before = dropped("capacity")
            reader, writer = await raw_from_proxy(service, b"")
            held.append((reader, writer))
            assert await closed_by_server(reader, 5), "one over the port"
            assert dropped("capacity") == before + 1
        finally:
            for _, writer in held:
                writer.transport.abort()
