"""`make dev`'s runner end to end: everything up and healthy, a killed service named, a clean stop, data kept."""

from __future__ import annotations

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
from gpulab_devstack.testing import TEST_CA_PASSPHRASE, Stack

pytestmark = pytest.mark.slow


class Runner:
    def __init__(
        self, data_dir: Path, *, no_frontend: bool = True, frontend_dir: Path | None = None, **extra_env: str
    ) -> None:
        self.http_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
        env.update(
            GPULAB_DATA_DIR=str(data_dir),
            GPULAB_HTTP_PORT=str(self.http_port),
            GPULAB_METRICS_PORT="0",
            GPULAB_DEV_PG_PORT=str(free_port()),
            GPULAB_DEV_NATS_PORT=str(free_port()),
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

    def child(self, module: str) -> psutil.Process:
        for p in self.descendants():
            if f"gpulab_{module}" in " ".join(p.cmdline()):
                return p
        raise AssertionError(f"no {module} process")

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

    run.child("scheduler").kill()
    run.wait_for("scheduler exited", 10)
    health = run.healthz()
    assert health["status"] == "degraded"
    assert health["services"] == {"identity": "ok", "pki": "ok", "inventory": "ok", "scheduler": "down", "notify": "ok"}

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
