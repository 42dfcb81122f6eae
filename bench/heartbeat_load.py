"""The load generator of `bench heartbeat` (bench/heartbeat.py): N agents, each with its own key,
certificate and connection, send heartbeats back to back (8 GPUs in every message); then every agent
drops its connection and reconnects at once (full TLS handshakes): the reconnect storm. Server CPU comes
from /proc.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from gpulab.agent.v1 import hardware_pb2, heartbeat_pb2, heartbeat_pb2_grpc

CALL_TIMEOUT_S = 30.0
STORM_ATTEMPTS = 5
TICK = os.sysconf("SC_CLK_TCK")


# ---- messages ----
def request(agent: int) -> Any:
    """What an 8-GPU node sends every interval: its hardware and its last reconcile's outcome."""
    gpus = [
        hardware_pb2.Gpu(
            index=i,
            uuid=f"GPU-{agent:08x}-{i:04x}-4c5d-8e9f-0123456789ab",
            name="NVIDIA H100 80GB HBM3",
            memory_mb=81559,
            mig_capable=True,
            mig_enabled=False,
        )
        for i in range(8)
    ]
    hw = hardware_pb2.Hardware(cpu_model="AMD EPYC 9454 48-Core Processor", cpu_cores=96, ram_mb=1_547_000, gpus=gpus)
    # The real agent reports its last reconcile in every heartbeat: here two assignments in force.
    # The benchmark's nodes hold none, so inventory records nothing; what a steady heartbeat costs
    # is the comparison with the previous report, which is the same either way.
    applied = heartbeat_pb2.AppliedState(
        assignments=[
            heartbeat_pb2.AppliedAssignment(
                assignment_id=f"{agent:08x}-0000-4000-8000-{n:012x}", state=heartbeat_pb2.APPLY_STATE_APPLIED
            )
            for n in range(2)
        ]
    )
    return heartbeat_pb2.HeartbeatRequest(agent_version="1.0.0", hardware=hw, applied_state=applied)


# ---- CPU time ----
def cpu_s(pid: int) -> float:
    """utime + stime of one process, all its threads, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy_s() -> float:
    """CPU seconds spent by everything on this machine (user, nice, system, irq, softirq)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / TICK


@dataclass(frozen=True)
class Snapshot:
    at: float
    server: float
    client: float
    machine: float

    @classmethod
    def take(cls, pid: int) -> Snapshot:
        return cls(time.perf_counter(), cpu_s(pid), time.process_time(), machine_busy_s())


# ---- the load generator ----
@dataclass
class Target:
    name: str
    port: int
    pid: int  # the server process, whose CPU time is measured
    ca_pem: bytes
    agents: list[tuple[bytes, bytes]]  # (key PEM, certificate PEM), one per agent

    def channel(self, agent: int) -> Any:
        key, cert = self.agents[agent]
        creds = grpc.ssl_channel_credentials(self.ca_pem, key, cert)
        # A connection of its own, even where two channels' settings would let gRPC share one.
        return grpc.aio.secure_channel(f"127.0.0.1:{self.port}", creds, options=[("grpc.use_local_subchannel_pool", 1)])


@dataclass
class Steady:
    rate: float
    p50_ms: float
    p99_ms: float
    server_us: float  # server CPU per heartbeat
    server_cores: float
    client_cores: float
    other_cores: float  # the rest of the machine: PostgreSQL, NATS, pki, other work
    errors: int


@dataclass
class Storm:
    all_ok_s: float
    handshakes_s: float
    failures: int
    lost: int  # agents still without a reply after STORM_ATTEMPTS
    server_ms: float  # server CPU per reconnect (handshake plus one heartbeat)
    client_cores: float


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def steady(target: Target, requests: list[Any], warmup_s: float, seconds: float) -> tuple[Steady, list[Any]]:
    """Closed loop: each agent sends its next heartbeat as soon as the last one is answered. Returns
    the measurement and the agents' channels, still open."""
    channels = [target.channel(i) for i in range(len(requests))]
    stubs = [heartbeat_pb2_grpc.HeartbeatStub(ch) for ch in channels]
    # Connect and make first contact (gpulab writes the node's hardware): not measured.
    await asyncio.gather(*(s.Heartbeat(r, timeout=CALL_TIMEOUT_S) for s, r in zip(stubs, requests, strict=True)))
    window = [float("inf"), float("inf")]
    latencies: list[float] = []
    errors = 0
    running = True

    async def agent(stub: Any, req: Any) -> None:
        nonlocal errors
        while running:
            started = time.perf_counter()
            try:
                await stub.Heartbeat(req, timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError:
                errors += window[0] <= time.perf_counter() <= window[1]
                await asyncio.sleep(0.1)
                continue
            done = time.perf_counter()
            if window[0] <= done <= window[1]:
                latencies.append(done - started)

    tasks = [asyncio.create_task(agent(s, r)) for s, r in zip(stubs, requests, strict=True)]
    try:
        await asyncio.sleep(warmup_s)
        before = Snapshot.take(target.pid)
        window[0] = before.at
        await asyncio.sleep(seconds)
        after = Snapshot.take(target.pid)
        window[1] = after.at
    finally:
        running = False
        await asyncio.gather(*tasks, return_exceptions=True)
    wall = after.at - before.at
    server, client = after.server - before.server, after.client - before.client
    latencies.sort()
    result = Steady(
        rate=len(latencies) / wall,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        server_us=server / max(len(latencies), 1) * 1e6,
        server_cores=server / wall,
        client_cores=client / wall,
        other_cores=(after.machine - before.machine - server - client) / wall,
        errors=errors,
    )
    return result, channels


async def storm(target: Target, requests: list[Any], old: list[Any]) -> Storm:
    """Every agent drops its connection, then all reconnect at once and send one heartbeat each."""
    await asyncio.gather(*(ch.close(None) for ch in old))
    await asyncio.sleep(1.0)  # the server has seen every connection end
    channels = [target.channel(i) for i in range(len(requests))]
    failures = 0
    before = Snapshot.take(target.pid)

    async def reconnect(channel: Any, req: Any) -> float | None:
        nonlocal failures
        stub = heartbeat_pb2_grpc.HeartbeatStub(channel)
        for attempt in range(STORM_ATTEMPTS):
            try:
                # A retry waits for the channel's own reconnect instead of failing fast again.
                await stub.Heartbeat(req, timeout=CALL_TIMEOUT_S, wait_for_ready=attempt > 0)
                return time.perf_counter()
            except grpc.aio.AioRpcError:
                failures += 1
                await asyncio.sleep(0.1 * 2**attempt)
        return None

    try:
        ends = await asyncio.gather(*(reconnect(ch, r) for ch, r in zip(channels, requests, strict=True)))
        after = Snapshot.take(target.pid)
    finally:
        await asyncio.gather(*(ch.close(None) for ch in channels))
    ok = [e for e in ends if e is not None]
    all_ok = (max(ok) if ok else after.at) - before.at
    return Storm(
        all_ok_s=all_ok,
        handshakes_s=len(ok) / all_ok,
        failures=failures,
        lost=len(ends) - len(ok),
        server_ms=(after.server - before.server) / len(requests) * 1000,
        client_cores=(after.client - before.client) / (after.at - before.at),
    )
