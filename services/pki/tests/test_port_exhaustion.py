"""The enrollment port under a connection flood: idle connections (before or after the TLS handshake)
from one address cannot take the port from everyone else, and every limit holds at its edge.

The attacker's connections come from 127.0.0.2 and the node's from 127.0.0.1: Linux routes the whole
of 127.0.0.0/8 to the loopback device, so one machine can play two addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gpulab.agent.v1 import enrollment_pb2 as pb
from gpulab.agent.v1 import enrollment_pb2_grpc as pb_grpc

from gpulab_devstack.testing import Stack
from gpulab_pki.enrollment import front

from .conftest import SHORT_LIFETIME_HOURS, PkiService, key_pem, make_csr, new_key, start_pki
from .test_renewal import cn, enrolled

ATTACKER = "127.0.0.2"
FLOOD = 1100  # the number: more than the 1,024 connections the port used to allow in all
# Per flooded connection this process holds the attacker's socket, the front's, and (once the handshake
# is done) the front's loopback pair to gRPC: 4 descriptors, plus headroom for the rest of the session.
FILES_NEEDED = 4 * FLOOD + 1024


def raise_open_file_limit(needed: int) -> None:
    """The attacker and the server share this process: lift its soft RLIMIT_NOFILE (often 1,024) up to
    what the flood needs, as far as the hard limit allows; fail, saying so, where that is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"this attack test needs {needed} open files and the hard RLIMIT_NOFILE is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@contextlib.asynccontextmanager
async def running(stack: Stack, folder: Path, **overrides: Any) -> AsyncIterator[PkiService]:
    """A pki replica of its own (its own enrollment port and limits), renewing at once."""
    service = await start_pki(stack, folder, node_cert_lifetime_hours=SHORT_LIFETIME_HOURS, **overrides)
    try:
        yield service
    finally:
        await service.runtime.stop()


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.check_hostname = False  # the attacker does not care who answers; the chain is still checked
    return ctx


async def tls_connect(
    service: PkiService, source: str, timeout_s: float = 30.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection from source, handshake done; it then says nothing."""
    return await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1",
            service.port,
            ssl=client_context(service.ca_pem),
            server_hostname="127.0.0.1",
            local_addr=(source, 0),
            ssl_handshake_timeout=timeout_s,
        ),
        timeout_s,
    )


async def tcp_connect(service: PkiService, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare TCP connection from source that never starts its handshake."""
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", service.port, local_addr=(source, 0)), timeout=30
    )


async def closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    """Whether the server ends the connection within within_s (EOF or reset). What it sends before
    (gRPC's HTTP/2 settings) is read and dropped."""

    async def until_eof() -> None:
        while await reader.read(4096):
            pass

    try:
        await asyncio.wait_for(until_eof(), within_s)
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    return True


def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.transport.abort()


async def flood(service: PkiService, count: int) -> list[asyncio.StreamWriter]:
    """count connections from ATTACKER, each handshaking TLS and then idling; those the server let in."""

    async def one() -> asyncio.StreamWriter | None:
        try:
            reader, writer = await tls_connect(service, ATTACKER)
        except (ConnectionError, ssl.SSLError, OSError, TimeoutError):
            return None
        if await closed_by_server(reader, 0.5):  # let in by TLS, then shut by the front
            writer.transport.abort()
            return None
        return writer

    # In waves, as a real flood arrives: the 2-core test machine's one process plays both sides.
    held: list[asyncio.StreamWriter] = []
    for start in range(0, count, 100):
        got = await asyncio.gather(*(one() for _ in range(min(100, count - start))))
        held.extend(w for w in got if w is not None)
    return held


async def eventually(attempt: Any, within_s: float = 10.0) -> Any:
    """attempt() once it succeeds: the server counts a closed connection out when its side of the
    close has run, which a loaded machine delays (a freed place is not free at the same instant)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await attempt()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def renew_once(service: PkiService) -> str:
    """A node enrolls, then renews as its agent does (a new key, the current certificate in the
    handshake), both from 127.0.0.1; the renewed certificate's CN."""
    node_id, key, cert = await enrolled(service)
    async with service.channel(key_pem(key), cert) as channel:
        reply = await pb_grpc.EnrollmentStub(channel).Renew(pb.RenewRequest(csr_pem=make_csr(new_key())), timeout=30)
    assert cn(reply.certificate_pem) == str(node_id)
    return str(node_id)


async def test_1100_idle_tls_connections_to_the_enrollment_port_and_a_renewal_still_succeeds(
    migrated: Stack, tmp_path: Path
) -> None:
    raise_open_file_limit(FILES_NEEDED)
    async with running(migrated, tmp_path) as service:
        held = await flood(service, FLOOD)
        try:
            # The node renews while the flood holds every connection the port let it open.
            await renew_once(service)
            # One address got no more than its share; the rest were turned away before any handshake.
            assert len(held) <= service_settings(service).enroll_max_connections_per_address
        finally:
            close_all(held)


def service_settings(service: PkiService) -> Any:
    return service.runtime.settings


# ---- each limit at its edge ----


async def test_the_per_address_cap_admits_its_last_connection_and_refuses_the_next_before_any_handshake(
    migrated: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cap = 4
    async with running(migrated, tmp_path, enroll_max_connections_per_address=cap) as service:
        # At the cap: every one of them is let in and handshakes (the first as bare TCP, still
        # counted while it has not said hello).
        bare_reader, bare = await tcp_connect(service, ATTACKER)
        held = [bare]
        for _ in range(cap - 1):
            reader, writer = await tls_connect(service, ATTACKER)
            held.append(writer)
            assert not await closed_by_server(reader, 0.2)
        try:
            # One over: shut before the handshake, and said so in the log with the setting to change.
            with caplog.at_level(logging.WARNING, logger=front.__name__):
                with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
                    await tls_connect(service, ATTACKER)
            assert "GPULAB_ENROLL_MAX_CONNECTIONS_PER_ADDRESS" in caplog.text
            assert ATTACKER in caplog.text
            # Nothing changed for the connections already in, nor for another address.
            assert not await closed_by_server(bare_reader, 0.2)
            await renew_once(service)
            # A place that frees up is taken again.
            held.pop().transport.abort()
            _reader, again = await eventually(lambda: tls_connect(service, ATTACKER))
            held.append(again)
        finally:
            close_all(held)


async def test_a_connection_idle_past_the_idle_timeout_is_closed_and_a_talking_one_is_not(
    migrated: Stack, tmp_path: Path
) -> None:
    idle_s = 1.0
    async with running(migrated, tmp_path, enroll_idle_timeout_s=idle_s) as service:
        reader, writer = await tls_connect(service, ATTACKER)
        started = time.monotonic()
        try:
            assert await closed_by_server(reader, idle_s + 5)
            assert time.monotonic() - started >= idle_s * 0.9
        finally:
            writer.transport.abort()
        # A channel that makes a call more often than the timeout keeps its connection.
        node_id, key, cert = await enrolled(service)
        async with service.channel(key_pem(key), cert) as channel:
            stub = pb_grpc.EnrollmentStub(channel)
            for _ in range(4):
                await stub.Renew(pb.RenewRequest(csr_pem=make_csr(new_key())), timeout=30)
                await asyncio.sleep(idle_s / 2)
        assert node_id


async def test_a_connection_that_never_finishes_its_handshake_is_closed_after_the_handshake_timeout(
    migrated: Stack, tmp_path: Path
) -> None:
    handshake_s = 1.0
    async with running(migrated, tmp_path, enroll_handshake_timeout_s=handshake_s) as service:
        reader, writer = await tcp_connect(service, ATTACKER)
        started = time.monotonic()
        try:
            assert await closed_by_server(reader, handshake_s + 5)
            assert time.monotonic() - started >= handshake_s * 0.9
        finally:
            writer.transport.abort()


async def test_the_whole_port_admits_its_last_connection_and_refuses_the_next_from_any_address(
    migrated: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cap = 3
    async with running(migrated, tmp_path, enroll_max_connections=cap) as service:
        held = []
        for source in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):  # each well under its own share
            reader, writer = await tls_connect(service, source)
            held.append(writer)
            assert not await closed_by_server(reader, 0.2)
        try:
            with caplog.at_level(logging.WARNING, logger=front.__name__):
                with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
                    await tls_connect(service, "127.0.0.6")
            assert "GPULAB_ENROLL_MAX_CONNECTIONS=3" in caplog.text
            held.pop().transport.abort()
            await eventually(lambda: renew_once(service))  # a place freed: the next one gets it
        finally:
            close_all(held)
