"""Two pki replicas behind the real HAProxy, as compose's grpc-front runs them (send-proxy-v2,
deploy/haproxy/haproxy.cfg): every enrollment names the node's address, not HAProxy's, whichever
replica answers it.

HAProxy dials the replicas from 127.0.0.3 (the trusted proxy); the nodes dial HAProxy from
127.0.0.1. Debian's haproxy: `make system-deps` installs it as root; without it this test is skipped
and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gpulab_core.contracts import pki as c
from gpulab_devstack import haproxy
from gpulab_devstack.servers import free_port
from gpulab_devstack.testing import Stack

from .conftest import PkiService
from .test_port_exhaustion import running
from .test_proxied_enrollment import PROXY, enroll, watching


def config(port: int, replicas: list[PkiService]) -> str:
    """grpc-front's enrollment half (deploy/haproxy/haproxy.cfg) with the replicas' loopback ports."""
    servers = "\n".join(
        f"    server pki{i} 127.0.0.1:{r.port} send-proxy-v2 source {PROXY}" for i, r in enumerate(replicas)
    )
    return f"""global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend enrollment
    bind 127.0.0.1:{port}
    default_backend pki
backend pki
    balance roundrobin
{servers}
"""


@contextlib.asynccontextmanager
async def replicas(stack: Stack, folder: Path) -> AsyncIterator[list[PkiService]]:
    async with (
        running(stack, folder / "a", enroll_trusted_proxies=f"{PROXY}/32") as first,
        running(stack, folder / "b", enroll_trusted_proxies=f"{PROXY}/32") as second,
    ):
        yield [first, second]


@pytest.mark.skipif(haproxy.HAPROXY is None, reason=haproxy.MISSING)
async def test_nodes_enrolling_through_haproxy_keep_their_own_address_on_every_replica(
    migrated: Stack, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    port = free_port()
    async with replicas(migrated, tmp_path) as both:
        with haproxy.running(tmp_path, config(port, both)):
            front = dataclasses.replace(both[0], port=port)
            addresses = []
            for _ in range(4):  # round robin: two enrollments on each replica
                async with watching(both[0]) as events:
                    await enroll(front, events)
                    (enrolled,) = await events.of_type(c.NODE_ENROLLED)
                    addresses.append(enrolled["address"])
    # Without the header every one would be HAProxy's 127.0.0.3.
    assert addresses == ["127.0.0.1"] * 4
