"""The client's address: X-Forwarded-For believed from trusted proxies only, read from the right."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gpulab_core.networks import parse_networks
from gpulab_gateway.client_address import LOOPBACK, ClientAddress, resolve
from gpulab_gateway.config import Settings

CADDY = parse_networks("172.30.250.0/29")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # Caddy (trusted) names the client.
        ("172.30.250.2", ["198.51.100.7"], "198.51.100.7"),
        # The client's own header arrives to the left of what Caddy saw: the right-most untrusted wins.
        ("172.30.250.2", ["10.9.9.9, 203.0.113.5, 198.51.100.7"], "198.51.100.7"),
        ("172.30.250.2", ["10.9.9.9", "198.51.100.7"], "198.51.100.7"),  # two header lines, in order
        # A chain of trusted proxies is skipped.
        ("172.30.250.2", ["198.51.100.7, 172.30.250.3"], "198.51.100.7"),
        # Only trusted hops: the request came from a proxy's own host; the left-most.
        ("172.30.250.2", ["172.30.250.4, 172.30.250.3"], "172.30.250.4"),
        # Anyone else's header is ignored: the peer is the client.
        ("198.51.100.9", ["203.0.113.5"], "198.51.100.9"),
        # No header: the peer.
        ("172.30.250.2", [], "172.30.250.2"),
        # Something that is not an address: nothing further left is believed.
        ("172.30.250.2", ["203.0.113.5, unknown"], "172.30.250.2"),
        ("172.30.250.2", ["unknown, 172.30.250.3"], "172.30.250.3"),
        # One client, one spelling.
        ("172.30.250.2", ["2001:DB8:0:0::1"], "2001:db8::1"),
        ("172.30.250.2", ["::ffff:198.51.100.7"], "198.51.100.7"),
        ("::ffff:198.51.100.9", [], "198.51.100.9"),
        # Not an IP peer (a Unix socket): kept as it is.
        (None, ["203.0.113.5"], None),
    ],
)
def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy(
    peer: str | None, forwarded_for: list[str], client: str | None
) -> None:
    assert resolve(peer, forwarded_for, CADDY) == client


def test_trusted_proxies_default_to_loopback_and_refuse_what_is_not_a_network() -> None:
    assert Settings().trusted_networks == parse_networks(LOOPBACK)
    assert Settings(trusted_proxies="").trusted_networks == ()
    assert [str(n) for n in Settings(trusted_proxies=" 10.0.0.0/8 , fd00::/8,192.0.2.1").trusted_networks] == [
        "10.0.0.0/8",
        "fd00::/8",
        "192.0.2.1/32",
    ]
    for bad, says in (
        ("10.0.0.1/8", "has host bits set"),
        ("caddy", "not a CIDR"),
        ("0.0.0.0/0", "trusts every address"),
        ("::/0", "trusts every address"),
    ):
        with pytest.raises(ValidationError, match=says):
            Settings(trusted_proxies=bad)


async def echo(request: Request) -> JSONResponse:
    assert request.client is not None
    return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})


@pytest.mark.parametrize(
    ("peer", "headers", "seen"),
    [
        ("172.30.250.2", {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}, ("198.51.100.7", "https")),
        ("198.51.100.9", {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}, ("198.51.100.9", "http")),
        ("172.30.250.2", {"X-Forwarded-Proto": "gopher"}, ("172.30.250.2", "http")),
    ],
)
async def test_the_middleware_puts_the_resolved_client_and_scheme_in_the_request(
    peer: str, headers: dict[str, str], seen: tuple[str, str]
) -> None:
    app = ClientAddress(Starlette(routes=[Route("/", echo)]), CADDY)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        body = (await client.get("/", headers=headers)).json()
    assert (body["client"], body["scheme"]) == seen
