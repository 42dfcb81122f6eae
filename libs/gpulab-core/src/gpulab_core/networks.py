"""Addresses and the networks of trusted proxies, one spelling for every service.

The gateway believes `X-Forwarded-For` from `GPULAB_TRUSTED_PROXIES`; pki's enrollment port believes
a PROXY protocol header from `GPULAB_ENROLL_TRUSTED_PROXIES`. Both name their proxies the same way
and compare addresses the same way: here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (or single addresses) as networks; an empty string trusts no proxy.

    A prefix of length 0 is refused: trusting every address would let anyone pick its own address.
    """
    networks: list[Network] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a CIDR such as 10.0.0.0/24 or an address: {exc}") from None
        if network.prefixlen == 0:
            raise ValueError(f"{item!r} trusts every address, so anyone could name its own; list the proxies' networks")
        networks.append(network)
    return tuple(networks)


def address(value: str | None) -> IPAddress | None:
    """An address in its one spelling (an IPv4 client of a dual-stack socket, ::ffff:a.b.c.d, as
    IPv4; no IPv6 scope id); None for what is not an address."""
    if not value:
        return None
    try:
        ip = ipaddress.ip_address(value.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_trusted(ip: IPAddress | None, trusted: Sequence[Network]) -> bool:
    return ip is not None and any(ip in network for network in trusted)


def _checked(raw: str) -> str:
    parse_networks(raw)
    return raw


# A setting that names trusted proxies: kept as written, refused at start when parse_networks refuses it.
NetworksSetting = Annotated[str, AfterValidator(_checked)]
