"""What the end-to-end tests of the real agent binary share: the agent's processes (with a stand-in
nvidia-smi replaying a recorded GPU model, as root always inside a throwaway host), the control plane's
services that talk to it, and a user with an SSH key."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from nats.aio.client import Client as NATS

from gpulab_core.errors import GpulabError, RemoteError
from gpulab_core.rpc import RpcClient
from gpulab_devstack.servers import free_port, wait_for_port
from gpulab_devstack.testing import Launcher, Stack, wait_until

from .throwaway_host import ThrowawayHost, unavailable_reason

REPO = Path(__file__).resolve().parents[1]
AGENT_DIR = REPO / "agent"
RECORDINGS = AGENT_DIR / "internal/gpu/testdata"
RECORDING = RECORDINGS / "h200-x8"
VERSION = "0.0.0-e2e"
INTERVAL_S = 1
EXIT_REENROLL = 78  # runloop.ExitReenroll: EX_CONFIG of sysexits.h


def recorded_gpus(recording: Path) -> list[tuple[int, str, str, int]]:
    """(index, uuid, name, memory MiB) of each GPU in a recorded `nvidia-smi --query-gpu` CSV."""
    rows = [line.split(", ") for line in (recording / "query-gpu.csv").read_text().splitlines() if line]
    return [(int(r[0]), r[1], r[2], int(r[3])) for r in rows]


@dataclass
class AgentRun:
    """`gpulab-agent run` as its own process, its output in a log file."""

    proc: subprocess.Popen[bytes]
    log: Path
    _log_file: IO[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the agent did not exit within {timeout_s}s; output:\n{self.output()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


class Agents:
    """Runs the agent binary for one test, with a stand-in nvidia-smi first on PATH (as root inside a
    throwaway host: see run), and ends every agent process afterwards."""

    def __init__(self, binary: Path, folder: Path, recording: Path) -> None:
        self.binary = binary
        self.host: ThrowawayHost | None = None
        self.folder = folder
        self.dir = folder / "identity"
        fake_bin = folder / "fake-bin"
        fake_bin.mkdir(parents=True)
        shutil.copy(RECORDINGS / "fake-nvidia-smi", fake_bin / "nvidia-smi")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
        self.env.update(
            PATH=f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}", GPULAB_FAKE_NVIDIA_SMI=str(recording)
        )
        self.runs: list[AgentRun] = []

    def in_throwaway_host(self, host: ThrowawayHost) -> None:
        """Runs the next agents as root inside host, with its stand-in commands first on PATH."""
        self.host = host
        self.env["PATH"] = f"{host.fake_bin}{os.pathsep}{self.env['PATH']}"

    async def enroll(self, server: str, fingerprint: str, token: str) -> subprocess.CompletedProcess[str]:
        """`gpulab-agent enroll`, the token on its standard input as install-agent.sh gives it."""
        args = [str(self.binary), "enroll", "--server", server, "--ca-sha256", fingerprint, "--dir", str(self.dir)]
        return await asyncio.to_thread(
            subprocess.run,
            [*args, "--token-file", "-"],
            input=token + "\n",
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def run(self, **env: str) -> AgentRun:
        """`gpulab-agent run`, inside the throwaway host, with env added. As root the agent applies its
        assignments to the host it runs on (useradd, authorized_keys, sshd drop-ins), so as root it
        always runs in one: the one set, else one made here; the test is skipped where none can be
        made. Not root, it runs on the machine itself, where it cannot change an account."""
        if self.host is None and os.geteuid() == 0:
            if reason := unavailable_reason():
                pytest.skip(f"the agent's run as root must be in a throwaway host: {reason}")
            self.in_throwaway_host(ThrowawayHost.prepare(self.folder / "host"))
        log = self.folder / f"agent-run-{len(self.runs)}.log"
        log_file = open(log, "wb")  # closed in AgentRun.close()
        argv = [str(self.binary), "run", "--dir", str(self.dir)]
        proc = subprocess.Popen(
            self.host.wrap(argv) if self.host else argv,
            env={**self.env, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        made = AgentRun(proc, log, log_file)
        self.runs.append(made)
        return made

    def desired(self) -> dict[str, Any] | None:
        """The run loop's saved desired state (the last HeartbeatResponse), or None before the first."""
        path = self.dir / "desired-state.json"
        if not path.exists():
            return None
        saved: dict[str, Any] = json.loads(path.read_text())
        return saved

    def close(self) -> None:
        for run in self.runs:
            run.close()
        if self.host is not None:
            self.host.close()


@dataclass
class Plane:
    rpc: RpcClient
    enroll_port: int
    heartbeat_port: int

    async def call(self, service: str, operation: str, payload: dict[str, Any] | None = None) -> Any:
        return await self.rpc.call(service, operation, payload or {})


async def start_plane(
    services: Launcher, nc: NATS, interval_s: int = INTERVAL_S, jump_host: str = "bastion.example.org"
) -> Plane:
    """identity, pki, inventory and scheduler as their own processes, every one answering; the agents
    are told to heartbeat every interval_s; the SSH configs name jump_host (GPULAB_SSH_JUMP_HOST)."""
    enroll_port, heartbeat_port = free_port(), free_port()
    common = {
        "GPULAB_HEARTBEAT_INTERVAL_S": str(interval_s),
        # No gateway here; the gRPC certificates name the public host, localhost and 127.0.0.1.
        "GPULAB_PUBLIC_URL": f"http://localhost:{free_port()}",
    }
    services.spawn("identity", **common)
    services.spawn(
        "pki",
        GPULAB_ENROLL_PORT=str(enroll_port),
        GPULAB_HEARTBEAT_ENDPOINT=f"127.0.0.1:{heartbeat_port}",
        **common,
    )
    inventory = services.spawn("inventory", GPULAB_HEARTBEAT_PORT=str(heartbeat_port), **common)
    services.spawn("scheduler", GPULAB_SSH_JUMP_HOST=jump_host, **common)
    rpc = RpcClient(nc, timeout_s=20)
    plane = Plane(rpc, enroll_port, heartbeat_port)
    for name in ("identity", "pki", "inventory", "scheduler"):

        async def healthy(name: str = name) -> bool:
            try:
                return bool((await rpc.call(name, "health", {}, timeout_s=1))["status"] == "ok")
            except GpulabError:  # not running yet (no responders), or not ready
                return False

        await wait_until(healthy, timeout_s=60, interval_s=0.2)
    assert inventory.proc is not None
    # inventory listens for heartbeats once pki has signed its certificate.
    await asyncio.to_thread(wait_for_port, heartbeat_port, 30, inventory.proc)
    return plane


async def make_user(plane: Plane, stack: Stack, folder: Path) -> tuple[str, str]:
    """An active user with a key from ssh-keygen, made by the operator's command line: (id, public key)."""
    email = f"ada.{uuid.uuid4().hex[:8]}@example.org"
    # --force: other tests of the session have made admins already.
    command = ["admin", "create", "--email", email, "--password-stdin", "--force"]
    made = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gpulab_identity.admin_cli", *command],
        input="correct horse battery staple\n",
        env=stack.env("identity"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    user_id = None
    cursor = None
    while user_id is None:
        page = await plane.call("identity", "users.list", {"limit": 500, "role": "admin", "cursor": cursor})
        user_id = next((u["id"] for u in page["items"] if u["email"] == email), None)
        cursor = page["next_cursor"]
        assert user_id is not None or cursor is not None, f"{email} is not listed"
    key = folder / "id_user"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    await plane.call("identity", "ssh_keys.add", {"user_id": user_id, "public_key": public})
    return str(user_id), public


def assignments_in(saved: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The saved desired state's assignments by id."""
    if saved is None:
        return {}
    return {a["assignment_id"]: a for a in saved["desired"].get("assignments", [])}


async def assign_two_gpus(plane: Plane, stack: Stack, folder: Path, node_id: str) -> tuple[dict[str, Any], str]:
    """A soft Environment with the node attached, a user with a key, and an assignment of two GPUs,
    one CPU and 512 MiB on that node for them: (the assignment, the user's public key)."""
    env = await plane.call(
        "scheduler",
        "environments.create",
        {"name": f"lab-{uuid.uuid4().hex[:6]}", "enforcement_mode": "soft", "tunnel_provider": "ssh_proxy_jump"},
    )

    async def attached() -> bool:
        try:  # the scheduler knows the node (online, with hardware) once inventory's events reached it
            await plane.call("scheduler", "environments.attach_node", {"id": env["id"], "node_id": node_id})
            return True
        except RemoteError:
            return False

    await wait_until(attached, timeout_s=20, interval_s=0.2)
    user_id, public_key = await make_user(plane, stack, folder)
    request = {"user_id": user_id, "environment_id": env["id"], "gpus": 2, "cpus": 1, "ram_mb": 512}
    made: dict[str, Any] = {}
    refusals: list[str] = []

    async def placed() -> bool:
        nonlocal made
        try:
            made = await plane.call("scheduler", "assignments.create", {**request, "placement": "dynamic"})
            return True
        except RemoteError as exc:  # the node's hardware may still be on its way to the scheduler
            refusals.append(f"{exc.code}: {exc.message}")
            return False

    try:
        await wait_until(placed, timeout_s=20, interval_s=0.3)
    except AssertionError:
        raise AssertionError(f"never placed; refusals: {sorted(set(refusals))}") from None
    return made, public_key
