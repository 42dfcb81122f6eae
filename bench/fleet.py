"""Issue 14's fleet-sized heartbeat: N agents (10,000 by default) against one inventory replica.

The stack is bench/heartbeat.py's: pki and inventory as service processes on an embedded PostgreSQL
and NATS. Every agent is created with `nodes.create` and enrolls over TLS with its own P-384 key and
CSR; its identity folder is written as `gpulab-agent enroll` writes it. The load generator is
`agent/cmd/gpulab-fleet` (Go, the agent's own identity package: mutual TLS with the pinned CA, TLS
session resumption), one connection per agent:

- steady: every agent joins at a random moment of the ramp (`--ramp`, default one interval): its
  first heartbeat, with its TLS handshake and the node's first contact; then heartbeats every
  interval ±10 %. Held: every heartbeat from the end of the ramp for the duration, when all agents
  have joined: latency, errors, inventory's CPU. The ramp's first heartbeats and errors apart;
- storm: every agent opens a new connection at the same instant and sends one heartbeat (retrying
  after the agent's own backoff): how long until all are answered. Once with full handshakes, once
  with each agent resuming the TLS session of a connection it made just before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.bare_heartbeat import new_key
from bench.heartbeat import REPO, enroll_all, machine, plane

FLEET = "gpulab-fleet"


def build(out: Path) -> Path:
    binary = out / FLEET
    subprocess.run(
        ["go", "build", "-o", str(binary), f"./cmd/{FLEET}"],
        cwd=REPO / "agent",
        env={**os.environ, "CGO_ENABLED": "0"},
        check=True,
        timeout=600,
    )
    return binary


def write_identities(root: Path, ca: bytes, agents: list[tuple[bytes, bytes]], heartbeat_endpoint: str) -> None:
    """One folder per agent, as `gpulab-agent enroll` leaves it (the key readable by its owner only)."""
    for i, (key, cert) in enumerate(agents):
        folder = root / f"{i:05d}"
        folder.mkdir(parents=True, mode=0o700)
        fd = os.open(folder / "node.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        (folder / "node.pem").write_bytes(cert)
        (folder / "ca.pem").write_bytes(ca)
        info = {"node_id": node_id(cert), "enroll_endpoint": "127.0.0.1:1", "heartbeat_endpoint": heartbeat_endpoint}
        (folder / "agent.json").write_text(json.dumps(info))


def node_id(cert_pem: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(cert_pem)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def run_fleet(binary: Path, mode: str, *args: str, server_pid: int) -> dict[str, Any]:
    """One run of the load generator; it reads the inventory's CPU time over the phase it measures."""
    started = time.perf_counter()
    argv = [str(binary), mode, *args, "-server-pid", str(server_pid)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{FLEET} {mode} failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["wall_s"] = time.perf_counter() - started
    return result


def report(steady: dict[str, Any], storms: list[dict[str, Any]]) -> Iterator[str]:
    n = steady["agents"]
    every, ramp, lasting = steady["interval_s"], steady["ramp_s"], steady["duration_s"]
    yield f"{n} agents join at random over {ramp:.0f} s ({n / ramp:.0f} first contacts/s), one connection each:"
    yield "| first heartbeats | their p50 / p99 ms (handshake, first contact) | heartbeats during the ramp | errors |"
    yield "|---|---|---|---|"
    yield (
        f"| {steady['first_count']:,} | {steady['first_p50_ms']:.1f} / {steady['first_p99_ms']:.1f} | "
        f"{steady['join_heartbeats']:,} | {steady['join_errors'] + steady['connect_errors']} |"
    )
    yield ""
    yield f"then all {n} held, a heartbeat every {every:.0f} s ±10 %, for {lasting:.0f} s:"
    yield "| heartbeats | errors | p50 / p99 / max ms | inventory CPU µs/heartbeat | inventory cores |"
    yield "|---|---|---|---|---|"
    per = steady["server_cpu_s"] / max(steady["heartbeats"], 1) * 1e6
    yield (
        f"| {steady['heartbeats']:,} | {steady['errors']} | {steady['steady_p50_ms']:.1f} / "
        f"{steady['steady_p99_ms']:.1f} / {steady['steady_max_ms']:.1f} | {per:.0f} | "
        f"{steady['server_cpu_s'] / lasting:.2f} |"
    )
    if steady["error_samples"]:
        yield "errors, e.g.: " + "; ".join(steady["error_samples"][:3])
    yield ""
    yield f"Reconnect storm: all {n} agents open a new connection at once, one heartbeat each:"
    yield (
        "| handshakes | all answered after s | p50 s | p99 s | resumed handshakes | failed attempts | agents lost"
        " | inventory CPU ms/reconnect |"
    )
    yield "|---|---|---|---|---|---|---|---|"
    for s in storms:
        kind = "resumed (session tickets)" if s["resume"] else "full"
        yield (
            f"| {kind} | {s['all_ok_after_s']:.1f} | {s['p50_s']:.1f} | {s['p99_s']:.1f} | "
            f"{s['resumed_handshakes']:,} | {s['failed_attempts']} | {s['lost']} | "
            f"{s['server_cpu_s'] / max(s['ok'], 1) * 1000:.2f} |"
        )


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench fleet")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between an agent's heartbeats")
    parser.add_argument(
        "--ramp", type=float, default=None, help="seconds over which the agents join (default: one interval)"
    )
    parser.add_argument("--duration", type=float, default=120.0, help="seconds all agents are held, after the ramp")
    parser.add_argument("--quick", action="store_true", help="200 agents, 5 s interval, 15 s: a smoke run")
    parser.add_argument(
        "--setting", action="append", default=[], help="GPULAB_X=value for pki and inventory (repeatable)"
    )
    args, _ = parser.parse_known_args(argv)
    if args.quick:
        args.agents, args.interval, args.duration = 200, 5.0, 15.0
    ramp: float = args.ramp if args.ramp is not None else args.interval
    n: int = args.agents
    print(machine(), file=sys.stderr)  # noqa: T201
    with (
        tempfile.TemporaryDirectory(prefix="gpulab-bench-fleet-") as tmp,
        plane(Path(tmp), GPULAB_HEARTBEAT_INTERVAL_S=str(int(args.interval))) as p,
    ):
        binary = build(Path(tmp))
        inventory = p.start()
        started = time.perf_counter()
        keys = [new_key() for _ in range(n)]
        ca, enrolled = await enroll_all(p.js.url, p.enroll_port, keys)
        identities = Path(tmp) / "identities"
        write_identities(identities, ca, enrolled, f"127.0.0.1:{p.heartbeat_port}")
        print(f"{n} nodes created and enrolled in {time.perf_counter() - started:.1f} s", file=sys.stderr)  # noqa: T201
        common = ["-identities", str(identities), "-n", str(n)]
        steady = run_fleet(
            binary,
            "steady",
            *common,
            "-interval",
            f"{args.interval}s",
            "-ramp",
            f"{ramp}s",
            "-duration",
            f"{args.duration}s",
            server_pid=inventory.pid,
        )
        print(f"steady: {json.dumps(steady)}", file=sys.stderr)  # noqa: T201
        storms = []
        for resume in (False, True):
            time.sleep(5)  # the previous connections' ends reach the server
            storms.append(
                run_fleet(binary, "storm", *common, *(["-resume"] if resume else []), server_pid=inventory.pid)
            )
            print(f"storm: {json.dumps(storms[-1])}", file=sys.stderr)  # noqa: T201
        print("\n".join(report(steady, storms)))  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
