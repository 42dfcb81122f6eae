"""The real Go agent against real service processes (identity, pki, inventory, scheduler): it enrolls
with the token and the CA fingerprint, heartbeats the GPUs of a recorded 8-GPU nvidia-smi, saves the
assignment an admin makes (with the user's SSH key) and drops it once revoked, stops cleanly on
SIGTERM, and after its node is deleted exits with 78, "re-enroll needed"."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from nats.aio.client import Client as NATS

from gpulab_core.errors import GpulabError, RemoteError
from gpulab_core.rpc import RpcClient
from gpulab_devstack.servers import free_port, wait_for_port
from gpulab_devstack.testing import Launcher, Stack, wait_until

pytestmark = pytest.mark.slow
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


@pytest.fixture(scope="session")
def agent_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent built the way `make -C agent build` builds it (static, version stamped), into a
    folder of this session, so that a build here never races one in agent/bin."""
    out = tmp_path_factory.mktemp("agent-bin") / "gpulab-agent"
    ldflags = f"-X github.com/gpulab/gpulab/agent/internal/version.Version={VERSION}"
    built = subprocess.run(
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(out), "./cmd/gpulab-agent"],
        cwd=AGENT_DIR,
        env={**os.environ, "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return out


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
    """Runs the agent binary for one test, with a stand-in nvidia-smi first on PATH, and ends every
    agent process afterwards."""

    def __init__(self, binary: Path, folder: Path, recording: Path) -> None:
        self.binary = binary
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

    async def enroll(self, server: str, fingerprint: str, token: str) -> subprocess.CompletedProcess[str]:
        args = [str(self.binary), "enroll", "--server", server, "--ca-sha256", fingerprint, "--dir", str(self.dir)]
        return await asyncio.to_thread(
            subprocess.run,
            args,
            env={**self.env, "GPULAB_ENROLL_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def run(self) -> AgentRun:
        log = self.folder / f"agent-run-{len(self.runs)}.log"
        log_file = open(log, "wb")  # closed in AgentRun.close()
        proc = subprocess.Popen(
            [str(self.binary), "run", "--dir", str(self.dir)],
            env=self.env,
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


@pytest.fixture
def agents(agent_binary: Path, tmp_path: Path) -> Iterator[Agents]:
    made = Agents(agent_binary, tmp_path / "agent", RECORDING)
    yield made
    made.close()


@dataclass
class Plane:
    rpc: RpcClient
    enroll_port: int
    heartbeat_port: int

    async def call(self, service: str, operation: str, payload: dict[str, Any] | None = None) -> Any:
        return await self.rpc.call(service, operation, payload or {})


async def start_plane(services: Launcher, nc: NATS) -> Plane:
    """identity, pki, inventory and scheduler as their own processes, every one answering."""
    enroll_port, heartbeat_port = free_port(), free_port()
    common = {
        "GPULAB_HEARTBEAT_INTERVAL_S": str(INTERVAL_S),
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
    services.spawn("scheduler", GPULAB_SSH_JUMP_HOST="bastion.example.org", **common)
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
        env=stack.env(),
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


async def test_real_agent_enrolls_heartbeats_gets_and_loses_an_assignment_and_must_reenroll_once_deleted(
    services: Launcher, nc: NATS, migrated: Stack, agents: Agents, tmp_path: Path
) -> None:
    plane = await start_plane(services, nc)
    hostname = f"gpu-e2e-{uuid.uuid4().hex[:8]}"
    created = await plane.call(
        "inventory", "nodes.create", {"hostname": hostname, "type": "linux", "management_ip": "10.0.0.9"}
    )
    node_id = created["node"]["id"]
    enrollment = created["enrollment"]

    enrolled = await agents.enroll(f"127.0.0.1:{plane.enroll_port}", enrollment["ca_fingerprint"], enrollment["token"])
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"enrolled as node {node_id}" in enrolled.stdout
    assert f"heartbeats go to 127.0.0.1:{plane.heartbeat_port}" in enrolled.stdout

    # Online, with the recorded GPUs, within a few seconds of the first heartbeat.
    agent = agents.run()
    node: dict[str, Any] = {}

    async def online() -> bool:
        nonlocal node
        node = await plane.call("inventory", "nodes.get", {"id": node_id})
        return node["status"] == "online" and node["hardware"] is not None

    started = time.monotonic()
    try:
        await wait_until(online, timeout_s=10, interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"not online: {node}; agent output:\n{agent.output()}") from None
    online_after_s = time.monotonic() - started
    expected = recorded_gpus(RECORDING)
    gpus = node["hardware"]["gpus"]
    assert [(g["index"], g["uuid"], g["name"], g["memory_mb"]) for g in gpus] == expected
    assert all(g["mig_capable"] and not g["mig_enabled"] for g in gpus)  # H200: MIG mode reported, Disabled
    assert node["agent_version"] == VERSION
    # The CPUs and memory are this machine's (the agent reads /proc): the request below fits any.
    assert node["hardware"]["cpu_cores"] >= 1
    assert node["hardware"]["ram_mb"] >= 512
    assert online_after_s < 10

    # An assignment on it reaches the agent's saved desired state, with the user's key.
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
    user_id, public_key = await make_user(plane, migrated, tmp_path)
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
    assert made["node_id"] == node_id
    assert [(g["index"], g["uuid"]) for g in made["gpus"]] == [(i, u) for i, u, _, _ in expected[:2]]

    started = time.monotonic()
    await wait_until(lambda: made["id"] in assignments_in(agents.desired()), timeout_s=10, interval_s=0.1)
    saved_after_s = time.monotonic() - started
    saved = agents.desired()
    assert saved is not None
    assert saved["node_id"] == node_id
    assert saved["desired"]["heartbeat_interval_s"] == INTERVAL_S
    desired = assignments_in(saved)[made["id"]]
    assert desired["linux_username"] == made["linux_username"]
    assert desired["ssh_public_keys"] == [public_key]
    # protojson leaves out zero values: GPU 0 has no "index".
    assert [(g.get("index", 0), g["uuid"]) for g in desired["gpus"]] == [(g["index"], g["uuid"]) for g in made["gpus"]]
    assert desired["cpus"] == 1
    assert desired["ram_mb"] == "512"  # protojson writes int64 as a string
    assert desired["enforcement_mode"] == "ENFORCEMENT_MODE_SOFT"
    assert saved_after_s < 4 * INTERVAL_S, f"saved after {saved_after_s:.1f}s"
    assert os.stat(agents.dir / "desired-state.json").st_mode & 0o777 == 0o600

    # Revoked: gone from the saved state within one or two intervals.
    await plane.call("scheduler", "assignments.revoke", {"id": made["id"]})
    started = time.monotonic()
    await wait_until(lambda: made["id"] not in assignments_in(agents.desired()), timeout_s=10, interval_s=0.1)
    gone_after_s = time.monotonic() - started
    assert gone_after_s < 3 * INTERVAL_S, f"gone after {gone_after_s:.1f}s"

    # SIGTERM: a clean stop.
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.wait(15) == 0, agent.output()
    assert "agent stopped" in agent.output()

    # Deleted node: the next start is refused and says the node must enroll again.
    await plane.call("inventory", "nodes.delete", {"id": node_id})
    again = agents.run()
    assert again.wait(30) == EXIT_REENROLL, again.output()
    assert "RE-ENROLL NEEDED" in again.output()
    assert enrollment["ca_fingerprint"].replace(":", "").lower() in again.output().lower()
