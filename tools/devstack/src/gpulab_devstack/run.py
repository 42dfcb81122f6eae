"""`make dev`: the whole system on one machine, in the foreground, stopped cleanly by Ctrl-C.

PostgreSQL and NATS are embedded (or taken from GPULAB_DATABASE_URL / GPULAB_NATS_URL), every
service is migrated and started as GPULAB_DEV_REPLICAS processes (default 1) with prefixed, coloured
logs (`scheduler.2[4242]`: the replica and its pid), each restarted with backoff when it dies, the
web app is built in the background, and the URL is printed once /api/v1/healthz says `ok`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import json
import os
import secrets
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from gpulab_devstack import mailsink, migrate_all
from gpulab_devstack.servers import EmbeddedNats, EmbeddedPostgres, die_with_parent
from gpulab_devstack.supervise import Keeper, Replica

SERVICES = ("identity", "pki", "inventory", "scheduler", "notify", "gateway")
MIGRATED = SERVICES[:-1]  # the gateway keeps nothing
COLOURS = {
    "identity": 36,
    "pki": 35,
    "inventory": 32,
    "scheduler": 33,
    "notify": 34,
    "gateway": 96,
    "web": 37,
    "migrate": 37,
    "mail": 93,
    "dev": 1,
}
DEFAULT_PG_PORT = 54329
DEFAULT_NATS_PORT = 42229
DEFAULT_SMTP_PORT = 1025
MAX_REPLICAS = 9
# Replica k of a service serves its health and metrics on the service's default port + 10 * (k - 1):
# the gateway's replicas on 9100, 9110, 9120, identity's on 9101, 9111, ...
METRICS_PORT_STRIDE = 10


class Output:
    def __init__(self) -> None:
        self.colour = sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR"))
        self.width = len("scheduler.1[1234567]")

    def line(self, label: str, text: str) -> None:
        """`label` is a name of COLOURS, or a replica's `service.k[pid]`."""
        prefix = f"{label:<{self.width}} |"
        if self.colour:
            colour = COLOURS.get(label.split(".", 1)[0], 37)
            prefix = f"\x1b[{colour}m{prefix}\x1b[0m"
        sys.stdout.write(f"{prefix} {text}\n")
        sys.stdout.flush()


# Secrets the local run makes once and keeps under its data folder, and the services given each.
LOCAL_SECRETS: dict[str, tuple[str, ...]] = {
    "GPULAB_INVITE_SEAL_KEY": ("identity", "notify"),  # invite tokens sealed on the stream
    "GPULAB_AUDIT_HMAC_KEY": ("identity",),  # the audit log's keyed chain: losing it fails `audit verify`
}


def local_secret(data_dir: Path, variable: str) -> str:
    """The local run's value of a secret: made at the first start (0600), the same at every later one."""
    folder = data_dir / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / variable.removeprefix("GPULAB_").lower()
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class DevRun:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Output()
        self.data_dir = Path(os.environ.get("GPULAB_DATA_DIR", ".gpulab")).resolve()
        self.replicas: list[Replica] = []
        self.keepers: list[Keeper] = []
        self.watchers: list[asyncio.Task[None]] = []  # held: the loop keeps only weak references to tasks
        self.pg: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None
        self.mail: Any = None
        self.env = dict(os.environ)
        # GPULAB_<SERVICE>_DATABASE_URL: each service's own role in the embedded PostgreSQL.
        self.database_urls: dict[str, str] = {}
        # The secrets this run generated (kept in the data folder), by variable.
        self.secrets: dict[str, str] = {}
        self.stopping = False

    def say(self, text: str) -> None:
        self.out.line("dev", text)

    # ---- servers ----
    def start_servers(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        if not self.env.get("GPULAB_DATABASE_URL"):
            port = int(self.env.get("GPULAB_DEV_PG_PORT", DEFAULT_PG_PORT))
            self.pg = EmbeddedPostgres(self.data_dir / "postgres", port, open(logs / "postgres.log", "ab"))
            self.env["GPULAB_MIGRATION_DATABASE_URL"] = self.pg.start()
            # Each service connects as its own role (its schema only); the gateway gets none.
            self.database_urls = migrate_all.role_urls(self.pg.service_url)
            self.say(f"PostgreSQL (embedded) at {self.pg.url}, data in {self.pg.data_dir}")
        else:
            self.say("PostgreSQL: using GPULAB_DATABASE_URL for every service (one role: see docs/adr/0009)")
        if not self.env.get("GPULAB_NATS_URL"):
            port = int(self.env.get("GPULAB_DEV_NATS_PORT", DEFAULT_NATS_PORT))
            self.nats = EmbeddedNats(self.data_dir / "nats", port, open(logs / "nats.log", "ab"))
            self.env["GPULAB_NATS_URL"] = self.nats.start()
            self.nats.write_env_files(self.nats_env_dir)
            self.say(f"NATS with JetStream (embedded) at {self.nats.address}")
            self.say(f"  each service connects as itself: {self.nats_env_dir}/<service>.env (docs/adr/0016)")
        else:
            self.say("NATS: using GPULAB_NATS_URL")
        if not self.env.get("GPULAB_SMTP_HOST"):
            port = int(self.env.get("GPULAB_DEV_SMTP_PORT", DEFAULT_SMTP_PORT))
            self.mail = mailsink.start(self.data_dir / "mail", port, lambda text: self.out.line("mail", text))
            # `none` explicitly: notify's default is starttls, which the catcher does not offer.
            self.env.update(GPULAB_SMTP_HOST="127.0.0.1", GPULAB_SMTP_PORT=str(port), GPULAB_SMTP_SECURITY="none")
            self.say(f"mail goes to a local catcher on 127.0.0.1:{port}: shown here, kept in {self.data_dir / 'mail'}")
        self.env.setdefault("GPULAB_PUBLIC_URL", f"http://127.0.0.1:{self.env.get('GPULAB_HTTP_PORT', '8080')}")
        self.env.setdefault("GPULAB_DATA_DIR", str(self.data_dir))
        self.secrets = {name: local_secret(self.data_dir, name) for name in LOCAL_SECRETS}
        self.env.setdefault("GPULAB_LOG_FORMAT", "text")
        self.env["PYTHONUNBUFFERED"] = "1"

    @property
    def nats_env_dir(self) -> Path:
        return self.data_dir / "nats"

    def stop_servers(self) -> None:
        if self.mail is not None:
            mailsink.stop(self.mail)
        if self.nats:
            self.nats.stop()
        if self.pg:
            self.pg.stop()

    # ---- processes ----
    async def spawn(self, name: str, *argv: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        proc = await self._exec(argv, env or self.env)
        asyncio.create_task(self._pump(name, proc))
        return proc

    @staticmethod
    async def _exec(argv: tuple[str, ...], env: dict[str, str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    async def _pump(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            self.out.line(name, raw.decode(errors="replace").rstrip())

    async def migrate(self) -> None:
        """One process migrates every schema: the one-shot step a deployment runs per service,
        done here in one interpreter because five imports of the stack cost seconds on 2 cores."""
        started = time.monotonic()
        env = {**self.env, **self.database_urls}
        proc = await self.spawn("migrate", sys.executable, "-m", "gpulab_devstack.migrate_all", *MIGRATED, env=env)
        if await proc.wait() != 0:
            raise SystemExit("migration failed (see above)")
        self.say(f"migrated {len(MIGRATED)} schemas in {time.monotonic() - started:.1f}s")

    async def start_services(self) -> None:
        """Every replica of every service, each kept running (restarted with backoff) until the stop."""
        for name in SERVICES:
            argv = (sys.executable, "-m", f"gpulab_{name}")
            for k in range(1, self.args.replicas + 1):
                replica = Replica(
                    name,
                    k,
                    self.service_env(name),
                    functools.partial(self._exec, argv),
                    self.out.line,
                    self.say,
                    self.metrics_port(name, k),
                )
                await replica.start()
                self.replicas.append(replica)
        self.watchers += [asyncio.create_task(replica.run()) for replica in self.replicas]

    def metrics_port(self, service: str, k: int) -> int:
        """Replica k's health and metrics port: its service's default + 10 * (k - 1), or 0 (a free
        port, picked by the process) when GPULAB_METRICS_PORT=0 asks for that."""
        if self.env.get("GPULAB_METRICS_PORT") == "0":
            return 0
        settings = importlib.import_module(f"gpulab_{service}.config").Settings
        default: int = settings.model_fields["metrics_port"].default
        return default + METRICS_PORT_STRIDE * (k - 1)

    def replica_lines(self) -> list[str]:
        by_service: dict[str, list[str]] = {}
        for r in self.replicas:
            where = f":{r.metrics_port}" if r.metrics_port else " (free port, see its log)"
            by_service.setdefault(r.service, []).append(f"{r.name} pid {r.pid} health{where}")
        return [f"  {service}: " + ", ".join(found) for service, found in by_service.items()]

    def service_env(self, name: str) -> dict[str, str]:
        """The run's environment with `name`'s own database role (the gateway's has no database), its
        own secrets only, and, on the embedded NATS, its own NATS identity from the file written for
        it. With GPULAB_NATS_URL given, every service connects with that URL."""
        env = dict(self.env)
        if self.nats is not None:
            lines = (self.nats_env_dir / f"{name}.env").read_text().splitlines()
            env.update(dict(line.split("=", 1) for line in lines if "=" in line))
        if name not in MIGRATED:
            env.pop("GPULAB_DATABASE_URL", None)
            env.pop("GPULAB_MIGRATION_DATABASE_URL", None)
        elif migrate_all.role_env(name) in self.database_urls:
            env["GPULAB_DATABASE_URL"] = self.database_urls[migrate_all.role_env(name)]
        for variable, owners in LOCAL_SECRETS.items():
            if name in owners:
                env.setdefault(variable, self.secrets[variable])  # yours, when you set it
            else:
                env.pop(variable, None)  # each secret only to the services that use it
        return env

    async def build_frontend(self) -> None:
        if self.args.no_frontend:
            return
        root = Path("frontend")
        if not (root / "package.json").exists():
            self.say("no frontend/ here; the gateway serves the API only")
            return
        self.say("building the web app in the background (the API is usable meanwhile)")
        proc = await self.spawn("web", "make", "--no-print-directory", "-C", "frontend", "build")
        code = await proc.wait()
        if code == 0:
            self.say("web app built; reload the page")
        elif not self.stopping:
            self.say(f"!! web app build failed with status {code}; the API still runs")

    async def wait_healthy(self, url: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stopping:
            with contextlib.suppress(Exception):
                body = await asyncio.to_thread(_get_json, url)
                if body.get("status") == "ok":
                    return True
            await asyncio.sleep(0.5)
        return False

    def keep_servers(self) -> None:
        """The embedded PostgreSQL and NATS, started again if they die (a crash, or kill -9)."""
        for name, server in (("PostgreSQL", self.pg), ("NATS", self.nats)):
            if server is not None:
                keeper = Keeper(name, server, self.say)
                self.keepers.append(keeper)
                self.watchers.append(asyncio.create_task(keeper.run()))

    async def stop_services(self) -> None:
        self.stopping = True
        for keeper in self.keepers:
            keeper.stop()
        await asyncio.gather(*(r.stop() for r in self.replicas))

    async def main(self) -> int:
        started = time.monotonic()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # In this (main) thread: the servers die with the thread that started them (die_with_parent).
        self.start_servers()
        try:
            await self.migrate()
            self.keep_servers()
            await self.start_services()
            web = asyncio.create_task(self.build_frontend())
            port = self.env.get("GPULAB_HTTP_PORT", "8080")
            base = f"http://127.0.0.1:{port}"
            waiter = asyncio.create_task(self.wait_healthy(f"{base}/api/v1/healthz", 90))
            await asyncio.wait([waiter, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            if waiter.done() and waiter.result():
                self.say(f"gpulab is up in {time.monotonic() - started:.1f}s: {base}/  (API: {base}/api/v1/docs)")
                self.say("health: " + json.dumps(await asyncio.to_thread(_get_json, f"{base}/api/v1/healthz")))
                self.say(f"{self.args.replicas} replica(s) of every service, each restarted with backoff if it dies:")
                for line in self.replica_lines():
                    self.say(line)
                self.say(f"data is kept in {self.data_dir}; press Ctrl-C to stop")
                if not (
                    self.env.get("GPULAB_BOOTSTRAP_ADMIN_EMAIL") and self.env.get("GPULAB_BOOTSTRAP_ADMIN_PASSWORD")
                ):
                    self.say(
                        "first admin: .venv/bin/gpulab admin create --email you@example.org  (asks for a password),"
                    )
                    self.say(
                        "  or start with GPULAB_BOOTSTRAP_ADMIN_EMAIL=... GPULAB_BOOTSTRAP_ADMIN_PASSWORD=... make dev"
                    )
            elif not stop.is_set():
                self.say(f"!! not healthy after 90s: see {base}/api/v1/healthz and the logs above")
            await stop.wait()
            self.say("stopping...")
            web.cancel()
        finally:
            await self.stop_services()
            self.stop_servers()
        self.say("stopped; data kept in " + str(self.data_dir))
        return 0


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=3) as resp:
        body: dict[str, object] = json.loads(resp.read())
        return body


def replicas(text: str) -> int:
    """GPULAB_DEV_REPLICAS / --replicas: a whole number from 1 to MAX_REPLICAS."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_REPLICAS:
        message = f"GPULAB_DEV_REPLICAS must be a whole number from 1 to {MAX_REPLICAS}, not {text!r}"
        raise argparse.ArgumentTypeError(message)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpulab-dev", description="Run all of gpulab locally.")
    parser.add_argument("--no-frontend", action="store_true", help="do not build the web app")
    parser.add_argument(
        "--replicas",
        type=replicas,
        default=os.environ.get("GPULAB_DEV_REPLICAS", "1"),
        help=f"processes of every service, 1 to {MAX_REPLICAS} (default: GPULAB_DEV_REPLICAS, else 1)",
    )
    args = parser.parse_args(argv)
    try:
        return asyncio.run(DevRun(args).main())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
