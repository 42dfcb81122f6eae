"""Two inventory replicas behind the real HAProxy, as compose's grpc-front runs them
(deploy/haproxy/haproxy.cfg: TCP mode, `balance source`, no PROXY header): mutual TLS passes through
untouched, so each node is still its certificate, and one agent address always reaches one replica
(the one holding its TLS session ticket). Skipped, saying so, without Debian's haproxy."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from gpulab_devstack import haproxy
from gpulab_devstack.servers import free_port
from gpulab_devstack.testing import Stack, wait_until
from gpulab_inventory.heartbeat.server import HeartbeatServer

from .conftest import INTERVAL_S, Agent, ControlPlane, enrolled, start_inventory

pytestmark = pytest.mark.skipif(haproxy.HAPROXY is None, reason=haproxy.MISSING)


def config(port: int, replicas: list[int]) -> str:
    """grpc-front's heartbeat half with the replicas' loopback ports, logging each connection's server."""
    servers = "\n".join(f"    server inventory{i} 127.0.0.1:{p}" for i, p in enumerate(replicas))
    return f"""global
    maxconn 256
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend heartbeat
    bind 127.0.0.1:{port}
    default_backend inventory
backend inventory
    balance source
    hash-type consistent
{servers}
"""


def served_by(log: Path) -> list[str]:
    """The replica each closed connection went to, in order (tcplog's backend/server field)."""
    return re.findall(r" heartbeat inventory/(inventory\d) ", log.read_text())


async def test_heartbeats_through_haproxy_reach_one_replica_per_agent_address_with_mutual_tls(
    plane: ControlPlane, agents: list[Agent], migrated: Stack, tmp_path: Path
) -> None:
    other = await start_inventory(migrated, tmp_path)
    try:
        server = other.parts["heartbeat"]
        assert isinstance(server, HeartbeatServer)
        port = free_port()
        with haproxy.running(tmp_path, config(port, [plane.heartbeat_port, server.port])) as log:
            first, second = await enrolled(plane, agents), await enrolled(plane, agents)
            for agent in (first, second, first):  # each on a new connection through the balancer
                channel = agent.heartbeat_channel(port=port)
                reply = await agent.heartbeat(channel=channel)
                assert reply.heartbeat_interval_s == INTERVAL_S
                await channel.close(None)
            for agent in (first, second):
                assert (await plane.call("nodes.get", {"id": agent.node_id}))["status"] == "online"
            # Without a client certificate the replica itself refuses the handshake: the balancer
            # does not terminate TLS.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await first.heartbeat(channel=first.heartbeat_channel(b"", b"", port=port))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            await wait_until(lambda: len(served_by(log)) >= 4, timeout_s=10)
        # Every connection came from 127.0.0.1: the same replica each time.
        assert len(set(served_by(log))) == 1, served_by(log)
    finally:
        await other.stop()
