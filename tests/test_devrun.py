"""`make dev`'s runner end to end: everything up and healthy, a killed service restarted, replicas
sharing the ports, a clean stop, data kept."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from gpulab_devstack.servers import free_port
from gpulab_devstack.supervise import Backoff
from gpulab_devstack.testing import TEST_CA_PASSPHRASE, Stack

pytestmark = pytest.mark.slow


class Runner:
    def __init__(
        self, data_dir: Path, *, no_frontend: bool = True, frontend_dir: Path | None = None, **extra_env: str
    ) -> None:
        self.http_port = free_port()
        self.enroll_port = free_port()
        self.heartbeat_port = free_port()
        self.pg_port = free_port()
        self.nats_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
        env.update(
            GPULAB_DATA_DIR=str(data_dir),
            GPULAB_HTTP_PORT=str(self.http_port),
            GPULAB_ENROLL_PORT=str(self.enroll_port),
            GPULAB_HEARTBEAT_PORT=str(self.heartbeat_port),
            GPULAB_HEARTBEAT_ENDPOINT=f"127.0.0.1:{self.heartbeat_port}",
            GPULAB_METRICS_PORT="0",
            GPULAB_DEV_PG_PORT=str(self.pg_port),
            GPULAB_DEV_NATS_PORT=str(self.nats_port),
            GPULAB_DEV_SMTP_PORT=str(free_port()),
            PYTHONUNBUFFERED="1",
        )
        if frontend_dir is not None:
            env["GPULAB_FRONTEND_DIR"] = str(frontend_dir)
        env.update(extra_env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpulab_devstack", *(["--no-frontend"] if no_frontend else [])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not printed within {timeout_s}s; output:\n" + "\n".join(self.lines[-60:]))

    def healthz(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/api/v1/healthz", timeout=5) as r:
            body: dict[str, object] = json.loads(r.read())
            return body

    def descendants(self) -> list[psutil.Process]:
        """Every process the runner started: services, PostgreSQL (and its workers), NATS."""
        children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        return children

    def children(self, module: str) -> list[psutil.Process]:
        """The live processes of one service (its replicas)."""
        found = []
        for p in self.descendants():
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.cmdline()[-1:] == [f"gpulab_{module}"] and alive(p):
                    found.append(p)
        return found

    def child(self, module: str) -> psutil.Process:
        found = self.children(module)
        assert found, f"no {module} process"
        return found[0]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        return self.proc.wait(60)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "gpulab-data"


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    made: list[Runner] = []
    yield made
    for r in made:
        r.close()


def test_local_run_comes_up_names_a_dead_service_stops_cleanly_and_keeps_data(
    data_dir: Path, runners: list[Runner]
) -> None:
    started = time.monotonic()
    run = Runner(data_dir)
    runners.append(run)
    run.wait_for("gpulab is up", 90)
    up_after = time.monotonic() - started
    assert run.healthz() == {
        "status": "ok",
        "services": dict.fromkeys(["identity", "pki", "inventory", "scheduler", "notify"], "ok"),
        "problems": {},
    }
    assert up_after < 90

    # A dead service is named, with its pid and how it died, and started again after a backoff.
    scheduler = run.child("scheduler")
    scheduler.kill()
    run.wait_for(f"scheduler.1 (pid {scheduler.pid}) exited, killed by SIGKILL; restart 1 in 0.5s", 10)
    run.wait_for(f"scheduler.1 restarted: pid {scheduler.pid} -> ", 10)
    assert run.child("scheduler").pid != scheduler.pid
    assert wait_healthy(run, 60)["services"] == dict.fromkeys(
        ["identity", "pki", "inventory", "scheduler", "notify"], "ok"
    )

    everything = run.descendants()
    assert len(everything) >= 7, "five services, the gateway, PostgreSQL and NATS (and pg workers)"
    assert run.interrupt() == 0
    time.sleep(0.5)
    left = [p for p in everything if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"orphans after Ctrl-C: {[p.cmdline() for p in left]}"
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert (data_dir / "nats" / "jetstream").is_dir()
    assert any("stopped; data kept" in line for line in run.lines)

    # A second start reuses the same data: the database is not initialised again.
    marker = (data_dir / "postgres" / "PG_VERSION").stat().st_mtime_ns
    again = Runner(data_dir)
    runners.append(again)
    again.wait_for("gpulab is up", 90)
    assert again.healthz()["status"] == "ok"
    assert (data_dir / "postgres" / "PG_VERSION").stat().st_mtime_ns == marker
    assert again.interrupt() == 0


def test_killed_runner_leaves_no_orphans(data_dir: Path, runners: list[Runner]) -> None:
    run = Runner(data_dir)
    runners.append(run)
    run.wait_for("gpulab is up", 90)
    everything = run.descendants()
    run.proc.kill()  # kill -9: no chance to clean up
    run.proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [p for p in everything if alive(p)]
        if not left:
            break
        time.sleep(0.3)
    assert left == [], f"orphans after kill -9 of the runner: {[p.cmdline() for p in left if alive(p)]}"


def wait_healthy(run: Runner, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            health = run.healthz()
            if health["status"] == "ok" or time.monotonic() > deadline:
                return health
        if time.monotonic() > deadline:
            raise AssertionError(f"/healthz not answering after {timeout_s}s")
        time.sleep(0.3)


def listening_ports(p: psutil.Process) -> set[int]:
    return {c.laddr.port for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        status: int = r.status
        return status


def test_replicas_share_every_port_have_their_own_health_and_come_back_after_a_kill(
    data_dir: Path, runners: list[Runner]
) -> None:
    run = Runner(data_dir, GPULAB_DEV_REPLICAS="2")
    runners.append(run)
    run.wait_for("gpulab is up", 120)
    run.wait_for("2 replica(s) of every service", 5)
    # 12 processes starting on 2 cores: a health call may miss its 1.5 s for a moment after "up".
    assert wait_healthy(run, 60)["status"] == "ok"
    services = ("identity", "pki", "inventory", "scheduler", "notify", "gateway")
    replicas = {name: run.children(name) for name in services}
    assert {name: len(found) for name, found in replicas.items()} == dict.fromkeys(services, 2)

    # Each replica logs under its own name and pid.
    for name, found in replicas.items():
        for k, p in enumerate(sorted(found, key=lambda p: p.create_time()), start=1):
            assert any(line.startswith(f"{name}.{k}[{p.pid}]") for line in run.lines), f"no log line of {name}.{k}"

    # Both replicas listen on the shared ports (SO_REUSEPORT), and each on a health port of its own.
    shared = {"gateway": run.http_port, "pki": run.enroll_port, "inventory": run.heartbeat_port}
    health_ports: set[int] = set()
    for name, found in replicas.items():
        for p in found:
            ports = listening_ports(p)
            if name in shared:  # inventory's opens once pki has signed its certificate
                deadline = time.monotonic() + 30
                while shared[name] not in ports and time.monotonic() < deadline:
                    time.sleep(0.3)
                    ports = listening_ports(p)
                assert shared[name] in ports, f"{name} pid {p.pid} does not listen on {shared[name]}"
            own = ports - {shared.get(name)}
            own = {port for port in own if _answers_healthz(port)}
            assert len(own) == 1, f"{name} pid {p.pid}: health ports {own}"
            health_ports |= own
    assert len(health_ports) == 12

    # One gateway replica killed: the other keeps answering while it comes back.
    victim = replicas["gateway"][0]
    victim.kill()
    victim.wait(5)
    for _ in range(20):
        assert get(f"http://127.0.0.1:{run.http_port}/api/v1/healthz") == 200
    run.wait_for(f"gateway.1 (pid {victim.pid}) exited, killed by SIGKILL; restart 1 in 0.5s", 10)
    run.wait_for(f"gateway.1 restarted: pid {victim.pid} -> ", 10)

    # One scheduler replica killed: health stays ok, the other answers for the service.
    victim = replicas["scheduler"][1]
    victim.kill()
    victim.wait(5)
    assert run.healthz()["services"] == dict.fromkeys(["identity", "pki", "inventory", "scheduler", "notify"], "ok")
    run.wait_for(f"scheduler.2 restarted: pid {victim.pid} -> ", 10)
    deadline = time.monotonic() + 60
    while len(run.children("scheduler")) != 2 or len(run.children("gateway")) != 2:
        assert time.monotonic() < deadline, "a killed replica did not come back"
        time.sleep(0.3)
    assert wait_healthy(run, 60)["status"] == "ok"

    everything = run.descendants()
    assert run.interrupt() == 0
    time.sleep(0.5)
    left = [p for p in everything if alive(p)]
    assert left == [], f"orphans after Ctrl-C: {[p.cmdline() for p in left]}"


def _answers_healthz(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/healthz") == 200
    except (OSError, http.client.HTTPException):
        return False  # not an HTTP port: pki's gRPC backend, the gateway's own API port


def test_replicas_setting_is_checked() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
    for bad in ("0", "10", "two", "-1"):
        done = subprocess.run(
            [sys.executable, "-m", "gpulab_devstack", "--no-frontend"],
            env={**env, "GPULAB_DEV_REPLICAS": bad},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert f"GPULAB_DEV_REPLICAS must be a whole number from 1 to 9, not {bad!r}" in done.stderr


def test_restart_backoff_doubles_to_its_ceiling_and_starts_over_after_a_stable_run() -> None:
    backoff = Backoff(first_s=0.5, max_s=4.0, stable_after_s=30.0)
    assert [backoff.after(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.after(30.0) == 0.5  # it ran long enough: the crash is new, not a loop
    assert backoff.after(29.9) == 1.0


def alive(p: psutil.Process) -> bool:
    """Whether p still runs; a process may exit between any two questions about it."""
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_external_database_and_nats_are_used_instead_of_embedded_ones(
    migrated: Stack, data_dir: Path, runners: list[Runner]
) -> None:
    run = Runner(
        data_dir,
        GPULAB_DATABASE_URL=migrated.database_url,
        GPULAB_NATS_URL=migrated.nats_url,
        GPULAB_CA_PASSPHRASE=TEST_CA_PASSPHRASE,
    )
    runners.append(run)
    run.wait_for("gpulab is up", 90)
    assert run.healthz()["status"] == "ok"
    assert any("PostgreSQL: using GPULAB_DATABASE_URL" in line for line in run.lines)
    assert any("NATS: using GPULAB_NATS_URL" in line for line in run.lines)
    assert not (data_dir / "postgres").exists()
    assert not (data_dir / "nats").exists()
    assert run.interrupt() == 0
