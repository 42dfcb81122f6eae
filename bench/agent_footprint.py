"""The Go agent's idle footprint: memory and CPU of `gpulab-agent run` heartbeating every second.

pki and inventory run as service processes on an embedded PostgreSQL and NATS with
GPULAB_HEARTBEAT_INTERVAL_S=1 (30 in production). The agent is built here (static, as `make -C
agent build` builds it), enrolled with `gpulab-agent enroll` (token in the environment, CA pinned by
fingerprint), then `gpulab-agent run` heartbeats with a recorded 8-GPU nvidia-smi (the test stand-in
first on PATH) and no assignment. Its RSS (VmRSS) and CPU time (utime + stime) are read from /proc
every --sample seconds for --seconds; the stand-in nvidia-smi it runs each heartbeat is a shell
script, whose CPU time (cutime + cstime) is shown apart: a real nvidia-smi costs more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nats

from bench.heartbeat import machine, plane
from gpulab_core.rpc import RpcClient

REPO = Path(__file__).resolve().parents[1]
AGENT_DIR = REPO / "agent"
RECORDINGS = AGENT_DIR / "internal/gpu/testdata"
RECORDING = "h200-x8"
INTERVAL_S = 1
TICK = os.sysconf("SC_CLK_TCK")
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Sample:
    at: float
    rss_kib: int
    cpu_s: float  # the agent's own threads
    children_cpu_s: float  # the nvidia-smi runs it waited for


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as {key: first word of the value} (sizes are in KiB)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: (value.split() or [""])[0] for key, value in (line.split(":", 1) for line in lines)}


def sample(pid: int) -> Sample:
    """One reading of /proc/<pid>: VmRSS, utime + stime, cutime + cstime."""
    rss = int(proc_status(pid)["VmRSS"])
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / TICK
    children = (int(fields[13]) + int(fields[14])) / TICK
    return Sample(time.perf_counter(), rss, own, children)


def build_agent(out: Path) -> None:
    ldflags = "-s -w -X github.com/gpulab/gpulab/agent/internal/version.Version=0.0.0-bench"
    subprocess.run(
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(out), "./cmd/gpulab-agent"],
        cwd=AGENT_DIR,
        env={**os.environ, "CGO_ENABLED": "0"},
        check=True,
        timeout=300,
    )


async def wait_online(rpc: RpcClient, node_id: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while (await rpc.call("inventory", "nodes.get", {"id": node_id}))["status"] != "online":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the node is not online after {timeout_s:.0f}s")
        await asyncio.sleep(0.2)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench agent")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, after the first heartbeat")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between /proc readings")
    parser.add_argument("--quick", action="store_true", help="10 s: a smoke run")
    # `python -m bench -n 3000` hands every benchmark the same options: the others' are not ours.
    args, _ = parser.parse_known_args(argv)
    if args.quick:
        args.seconds = 10.0
    print(machine(), file=sys.stderr)  # noqa: T201
    with (
        tempfile.TemporaryDirectory(prefix="gpulab-bench-agent-") as tmp,
        plane(Path(tmp), GPULAB_HEARTBEAT_INTERVAL_S=str(INTERVAL_S)) as p,
    ):
        root = Path(tmp)
        procs, enroll_port = p.procs, p.enroll_port
        binary = root / "gpulab-agent"
        build_agent(binary)
        p.start()

        nc = await nats.connect(p.js.url)
        try:
            rpc = RpcClient(nc, timeout_s=CALL_TIMEOUT_S)
            body = {"hostname": "bench-agent-0", "type": "linux", "management_ip": "10.0.0.1"}
            created = await rpc.call("inventory", "nodes.create", body)
            fake_bin = root / "fake-bin"
            fake_bin.mkdir()
            shutil.copy(RECORDINGS / "fake-nvidia-smi", fake_bin / "nvidia-smi")
            agent_env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
            agent_env.update(
                PATH=f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}",
                GPULAB_FAKE_NVIDIA_SMI=str(RECORDINGS / RECORDING),
            )
            identity = root / "identity"
            enroll = [str(binary), "enroll", "--server", f"127.0.0.1:{enroll_port}", "--dir", str(identity)]
            enroll += ["--ca-sha256", created["enrollment"]["ca_fingerprint"]]
            token = {"GPULAB_ENROLL_TOKEN": created["enrollment"]["token"]}
            subprocess.run(enroll, env=agent_env | token, check=True, capture_output=True, timeout=60)
            agent = procs.spawn("agent", [str(binary), "run", "--dir", str(identity)], agent_env)
            await wait_online(rpc, created["node"]["id"])
            samples = [sample(agent.pid)]
            while samples[-1].at - samples[0].at < args.seconds:
                await asyncio.sleep(args.sample)
                if agent.poll() is not None:
                    raise RuntimeError(f"the agent exited with status {agent.returncode}")
                samples.append(sample(agent.pid))
            status = proc_status(agent.pid)
            peak_kib, threads = int(status["VmHWM"]), int(status["Threads"])
            node = await rpc.call("inventory", "nodes.get", {"id": created["node"]["id"]})
            gpus = len(node["hardware"]["gpus"])
        finally:
            await nc.drain()
        first, last = samples[0], samples[-1]
        wall = last.at - first.at
        rss = [s.rss_kib / 1024 for s in samples]
        print(  # noqa: T201
            f"gpulab-agent run, heartbeat every {INTERVAL_S} s ({gpus} GPUs reported, no assignment),"
            f" {wall:.0f} s, {len(samples)} samples; binary {binary.stat().st_size / 2**20:.1f} MiB (-s -w)\n"
            "| RSS first MiB | RSS last MiB | RSS peak MiB | RSS median MiB | VmHWM MiB"
            " | CPU % of one core (agent) | CPU % (stand-in nvidia-smi runs) | threads |\n"
            "|---|---|---|---|---|---|---|---|\n"
            f"| {rss[0]:.1f} | {rss[-1]:.1f} | {max(rss):.1f} | {statistics.median(rss):.1f}"
            f" | {peak_kib / 1024:.1f}"
            f" | {(last.cpu_s - first.cpu_s) / wall * 100:.2f}"
            f" | {(last.children_cpu_s - first.children_cpu_s) / wall * 100:.2f} | {threads} |"
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
