"""Who is calling: the TCP peer, or the client a trusted reverse proxy says it saw.

Behind Caddy every connection comes from Caddy, so the peer alone would make every visitor one
address (and identity's per-address login limit a lock on everyone). A peer in
`GPULAB_TRUSTED_PROXIES` may name the client in `X-Forwarded-For`; anyone else's header is ignored.
Each proxy appends the address it saw, so the header is read from the right, and the first address
that is not a trusted proxy is the client (what is left of it was written by that client, who may
write anything). This is the one place the gateway decides a client's address: the middleware below
puts it in the ASGI scope, so `request.client` is that address everywhere, and uvicorn's own
`proxy_headers` is off (main.py).

Only `X-Forwarded-For` (and `X-Forwarded-Proto`) are read, the headers Caddy's `reverse_proxy`
sets; RFC 7239's `Forwarded` is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from gpulab_core.networks import Network, address, is_trusted

# The local run's gateway is reached on loopback only (the web app's dev server proxies to it).
LOOPBACK = "127.0.0.0/8,::1/128"


def resolve(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str | None:
    """The client's address given the TCP peer, the `X-Forwarded-For` values in order, and the trusted proxies."""
    peer_ip = address(peer)
    if peer_ip is None:
        return peer  # not an IP peer (a Unix socket, a test transport): nothing to believe it about
    if not is_trusted(peer_ip, trusted):
        return str(peer_ip)
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    client = peer_ip
    for hop in reversed(hops):
        ip = address(hop)
        if ip is None:
            # A trusted proxy passed on something that is not an address: believe nothing further
            # left, and keep the last address a trusted party vouched for.
            return str(client)
        client = ip
        if not is_trusted(ip, trusted):
            return str(ip)
    # Every hop is a trusted proxy (a request made on the proxy's own host): the left-most one.
    return str(client)


class ClientAddress:
    """Sets the ASGI scope's `client` (and `scheme`, from `X-Forwarded-Proto`) from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        host = peer[0] if peer else None
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        forwarded_for = [value.decode("latin-1") for name, value in headers if name == b"x-forwarded-for"]
        client = resolve(host, forwarded_for, self.trusted)
        if client != host and client is not None:
            scope["client"] = (client, 0)  # the proxy does not pass the client's port on
        if is_trusted(address(host), self.trusted):
            proto = next((value for name, value in headers if name == b"x-forwarded-proto"), b"").strip()
            if proto in (b"http", b"https"):
                scope["scheme"] = proto.decode()
        await self.app(scope, receive, send)
