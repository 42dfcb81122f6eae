"""Who may hold a connection to the enrollment port: the caps that keep a flood of idle connections
from one address from taking the port from every node (issue 12, finding 5).

A connection counts from the moment it is accepted, before its TLS handshake, so that a peer which
never says hello uses up its own share and nobody else's; the handshake and idle timeouts (front.py)
bound how long it may hold a place.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter as Metric

from gpulab_core.networks import address

log = logging.getLogger(__name__)

Dropped = Literal["capacity", "address", "proxy", "handshake", "idle"]
DROPPED = Metric(
    "gpulab_pki_enroll_connections_dropped_total",
    "Enrollment-port connections refused at accept (capacity: the port is full; address: that address "
    "holds its share) or closed by the front (proxy: a trusted proxy's PROXY header missing, malformed or too "
    "slow; handshake: failed or too slow; idle: silent too long)",
    ["reason"],
)

# A host on IPv6 commonly holds a whole /64 (SLAAC, privacy addresses): counting single addresses would
# give it 2^64 shares.
IPV6_SHARE_PREFIX = 64


@dataclass(frozen=True)
class Limits:
    """The enrollment port's bounds, from the GPULAB_ENROLL_* settings of the same names."""

    max_connections: int
    max_connections_per_address: int
    handshake_timeout_s: float
    idle_timeout_s: float


def peer_host(peername: Any) -> str:
    """The address of a socket's peer, normalised (an IPv4-mapped IPv6 address as IPv4, no scope id);
    "" where there is none."""
    if not (isinstance(peername, tuple) and peername and isinstance(peername[0], str)):
        return ""
    ip = address(peername[0])
    return "" if ip is None else str(ip)


def share_of(host: str) -> str:
    """The share a peer's connections count against: its IPv4 address, or the /64 its IPv6 address
    lies in (host as peer_host gives it)."""
    if not host:
        return ""
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_SHARE_PREFIX), strict=False))
    return str(ip)


class Admission:
    """Counts the open connections in all and per share; refuses one over either cap. One event loop
    uses it, so it needs no lock."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._open: Counter[str] = Counter()
        self._total = 0
        # Shares refused since they were last under their cap, and whether the port is full: the
        # warning is logged once per burst, not per refused connection.
        self._refusing: set[str] = set()
        self._full = False

    @property
    def total(self) -> int:
        return self._total

    def admit(self, share: str, *, capped: bool = True) -> bool:
        """Counts one more connection of `share`, or refuses it. `capped=False` counts it in all only:
        a trusted proxy's connection before its PROXY header names the node (then `transfer`)."""
        limits = self._limits
        if self._total >= limits.max_connections:
            DROPPED.labels("capacity").inc()
            if not self._full:
                self._full = True
                log.warning(
                    "enrollment port full: %d connections open, refusing more until some end "
                    "(GPULAB_ENROLL_MAX_CONNECTIONS=%d)",
                    self._total,
                    limits.max_connections,
                )
            return False
        if capped and self._open[share] >= limits.max_connections_per_address:
            DROPPED.labels("address").inc()
            if share not in self._refusing:
                self._refusing.add(share)
                log.warning(
                    "enrollment port: refusing connections from %s, which holds %d already, until some end "
                    "(GPULAB_ENROLL_MAX_CONNECTIONS_PER_ADDRESS=%d)",
                    share,
                    self._open[share],
                    limits.max_connections_per_address,
                )
            return False
        self._open[share] += 1
        self._total += 1
        return True

    def transfer(self, old: str, new: str) -> bool:
        """Moves one counted connection from share `old` to share `new` if `new` holds less than its
        cap; otherwise releases it (the caller closes it) and returns False."""
        self.release(old)
        return self.admit(new)

    def release(self, share: str) -> None:
        self._total -= 1
        self._open[share] -= 1
        if self._open[share] <= 0:
            del self._open[share]
        if self._open[share] < self._limits.max_connections_per_address:
            self._refusing.discard(share)
        if self._total < self._limits.max_connections:
            self._full = False
