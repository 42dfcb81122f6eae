"""The PROXY protocol v2 header a trusted balancer puts before the TLS bytes: what is believed, what
is refused, and that nothing past the header is read."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from pydantic import ValidationError

from gpulab_pki.config import Settings
from gpulab_pki.enrollment.proxy_protocol import (
    MAX_LENGTH,
    SIGNATURE,
    ProxyHeaderError,
    header_length,
    read_source,
    source_address,
)

LOCAL, PROXY = 0x20, 0x21  # version 2 with each command
INET_STREAM, INET6_STREAM, UNIX_STREAM, INET_DGRAM = 0x11, 0x21, 0x31, 0x12


def v2_header(source: str = "198.51.100.7", *, command: int = PROXY, tlvs: bytes = b"") -> bytes:
    """The header HAProxy's `send-proxy-v2` writes for a TCP client at source (IPv4 or IPv6)."""
    ip = ipaddress.ip_address(source)
    if ip.version == 4:
        family, addresses = INET_STREAM, ip.packed + ipaddress.IPv4Address("192.0.2.1").packed
    else:
        family, addresses = INET6_STREAM, ip.packed + ipaddress.IPv6Address("2001:db8::1").packed
    body = addresses + struct.pack("!HH", 50123, 50051) + tlvs
    return SIGNATURE + bytes([command, family]) + struct.pack("!H", len(body)) + body


def raw_header(command: int, family: int, body: bytes, length: int | None = None) -> bytes:
    return SIGNATURE + bytes([command, family]) + struct.pack("!H", len(body) if length is None else length) + body


async def parse(data: bytes) -> tuple[str | None, bytes]:
    """read_source over data; also what it left unread."""
    view = memoryview(data)
    at = 0

    async def recv_exactly(n: int) -> bytes:
        nonlocal at
        if at + n > len(view):
            raise EOFError
        at += n
        return bytes(view[at - n : at])

    source = await read_source(recv_exactly)
    return source, data[at:]


@pytest.mark.parametrize(
    ("header", "source"),
    [
        (v2_header("198.51.100.7"), "198.51.100.7"),
        (v2_header("2001:db8:1:2::7"), "2001:db8:1:2::7"),
        # An IPv4 client of a dual-stack balancer: one spelling.
        (v2_header("::ffff:198.51.100.7"), "198.51.100.7"),
        # TLVs after the addresses (a unique id, an SSL flag) are read past and ignored.
        (v2_header("198.51.100.7", tlvs=b"\x05\x00\x04abcd" + b"\x20\x00\x05\x00\x00\x00\x00\x00"), "198.51.100.7"),
        # The balancer's own health check: LOCAL names nobody, the peer stands.
        (v2_header("198.51.100.7", command=LOCAL), None),
        (raw_header(LOCAL, 0x00, b""), None),
        # A family with no IP address (a Unix socket behind the balancer): the peer stands.
        (raw_header(PROXY, UNIX_STREAM, b"\x00" * 216), None),
    ],
)
async def test_the_header_names_the_client_and_nothing_after_it_is_read(header: bytes, source: str | None) -> None:
    client_hello = b"\x16\x03\x01\x02\x00" + b"\x01" * 16
    assert await parse(header + client_hello) == (source, client_hello)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        # A direct TLS client (or a proxy that sends no header) from a trusted address.
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 5, "no PROXY protocol v2 signature"),
        # Version 1, the text form.
        (b"PROXY TCP4 198.51.100.7 192.0.2.1 50123 50051\r\n", "no PROXY protocol v2 signature"),
        (SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "version 1, not 2"),
        (SIGNATURE + b"\x22\x11\x00\x0c" + b"\x00" * 12, "unknown PROXY command 2"),
        (raw_header(PROXY, INET_DGRAM, b"\x00" * 12), "datagram"),
        (raw_header(PROXY, INET_STREAM, b"\x00" * 8), "shorter than its addresses"),
        (raw_header(PROXY, INET6_STREAM, b"\x00" * 12), "shorter than its addresses"),
    ],
)
async def test_anything_but_a_v2_header_is_refused_and_says_why(data: bytes, says: str) -> None:
    with pytest.raises(ProxyHeaderError, match=says):
        await parse(data)


def test_the_header_length_is_capped_at_its_edge() -> None:
    prefix = SIGNATURE + bytes([PROXY, INET_STREAM])
    assert header_length(prefix + struct.pack("!H", MAX_LENGTH)) == MAX_LENGTH
    with pytest.raises(ProxyHeaderError, match=f"a {MAX_LENGTH + 1}-byte PROXY header"):
        header_length(prefix + struct.pack("!H", MAX_LENGTH + 1))
    with pytest.raises(ProxyHeaderError):
        header_length(prefix + b"\x00")  # short: not a prefix at all


def test_source_address_of_a_complete_header() -> None:
    header = v2_header("203.0.113.9")
    assert source_address(header[:16], header[16:]) == "203.0.113.9"


def test_trusted_proxies_default_to_none_and_refuse_what_is_not_a_network() -> None:
    assert Settings().enroll_trusted_networks == ()
    assert [str(n) for n in Settings(enroll_trusted_proxies="172.30.251.0/26, 10.0.0.5").enroll_trusted_networks] == [
        "172.30.251.0/26",
        "10.0.0.5/32",
    ]
    for bad in ("0.0.0.0/0", "::/0", "haproxy", "10.0.0.1/8"):
        with pytest.raises(ValidationError):
            Settings(enroll_trusted_proxies=bad)
