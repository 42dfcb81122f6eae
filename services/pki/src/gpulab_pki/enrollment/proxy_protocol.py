"""The PROXY protocol, version 2: how a TCP load balancer in front of the enrollment port names the
node it accepted the connection from (https://www.haproxy.org/download/3.0/doc/proxy-protocol.txt).

Behind a balancer (compose's HAProxy, a cloud's network load balancer) every connection comes from
the balancer, so pki would record one address for every node and the per-address limits would count
every node as one (limits.py). A peer in `GPULAB_ENROLL_TRUSTED_PROXIES` must open with this header,
before any TLS byte; front.py reads it with exact-size reads, so that the ClientHello behind it stays
on the socket for the TLS layer. Only version 2 (binary) is read: HAProxy's `send-proxy-v2`, AWS's
and Azure's network load balancers, Envoy and Traefik send it; version 1 (text) would need a read per
byte to stop at its line end.

Written here rather than taken from a package: the part pki needs is the 16-byte prefix and the
address block (a few dozen lines), and the packages on PyPI read from an asyncio stream, whose
buffer would swallow the ClientHello.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Awaitable, Callable

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PREFIX_BYTES = 16  # the signature, version and command, family and transport, length
# What may follow the prefix: the address block (at most 216 bytes, for Unix sockets) and TLVs (a
# balancer's unique id, TLS facts, ...). The specification asks a receiver to take 216 at least;
# HAProxy sends well under 1 KiB. More is refused, so a header never holds a place for long.
MAX_LENGTH = 1024

_VERSION = 0x2
_LOCAL, _PROXY = 0x0, 0x1
_INET, _INET6 = 0x1, 0x2
_UNSPEC_TRANSPORT, _STREAM = 0x0, 0x1
_ADDRESS_BYTES = {_INET: 12, _INET6: 36}  # source, destination, source port, destination port


class ProxyHeaderError(ValueError):
    """The bytes are not a PROXY v2 header this port accepts; the message says why."""


def header_length(prefix: bytes) -> int:
    """How many bytes follow the 16-byte prefix; raises ProxyHeaderError for anything but a v2 header."""
    if len(prefix) != PREFIX_BYTES or not prefix.startswith(SIGNATURE):
        raise ProxyHeaderError("no PROXY protocol v2 signature")
    version, command = prefix[12] >> 4, prefix[12] & 0x0F
    if version != _VERSION:
        raise ProxyHeaderError(f"PROXY protocol version {version}, not 2")
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"unknown PROXY command {command}")
    (length,) = struct.unpack("!H", prefix[14:16])
    if length > MAX_LENGTH:
        raise ProxyHeaderError(f"a {length}-byte PROXY header, over the {MAX_LENGTH} this port reads")
    return int(length)


def source_address(prefix: bytes, rest: bytes) -> str | None:
    """The client's address the header names; None when it names none (the balancer's own health
    check, LOCAL; or a family other than IPv4 and IPv6), so the connection's own peer stands."""
    if prefix[12] & 0x0F == _LOCAL:
        return None
    family, transport = prefix[13] >> 4, prefix[13] & 0x0F
    if family not in _ADDRESS_BYTES:
        return None
    if transport not in (_UNSPEC_TRANSPORT, _STREAM):
        raise ProxyHeaderError("a PROXY header for a datagram connection on a TCP port")
    if len(rest) < _ADDRESS_BYTES[family]:
        raise ProxyHeaderError("a PROXY header shorter than its addresses")
    if family == _INET:
        return str(ipaddress.IPv4Address(rest[:4]))
    ip = ipaddress.IPv6Address(rest[:16])
    return str(ip.ipv4_mapped or ip)


async def read_source(recv_exactly: Callable[[int], Awaitable[bytes]]) -> str | None:
    """Reads one header through recv_exactly(n), which returns exactly n bytes or raises, and returns
    source_address's answer. Nothing past the header is read."""
    prefix = await recv_exactly(PREFIX_BYTES)
    rest = await recv_exactly(header_length(prefix))
    return source_address(prefix, rest)
