"""The running stack both assignment benchmarks use (bench/assign.py, bench/requests.py): migrated
identity and scheduler databases, identity, scheduler and gateway as service processes on an
embedded PostgreSQL and NATS, N nodes of 8 GPUs online, users with SSH keys, and an Environment."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from bench.assign_stack import Cpu, add_nodes, add_users, wait_for_rpc
from bench.heartbeat import Processes
from gpulab_core.rpc import RpcClient
from gpulab_devstack import migrate_all
from gpulab_devstack.servers import EmbeddedNats, EmbeddedPostgres, free_port, wait_for_port
from gpulab_devstack.testing import Stack

CALL_TIMEOUT_S = 60.0


@dataclass
class Running:
    rpc: RpcClient
    nc: NATS
    pg_url: str
    http_port: int
    users: list[tuple[str, str]]  # (id, email)
    nodes: list[uuid.UUID]
    cpu: Callable[[], Cpu]
    procs: Processes


@contextlib.asynccontextmanager
async def running(n_nodes: int, n_users: int, say: Callable[[str], None]) -> AsyncIterator[Running]:
    with tempfile.TemporaryDirectory(prefix="gpulab-bench-assign-") as tmp:
        root = Path(tmp)
        procs = Processes(root)
        pg = EmbeddedPostgres(root / "pg", free_port())
        js = EmbeddedNats(root / "nats", free_port())
        nc: NATS | None = None
        try:
            pg.start()
            js.start()
            js.write_env_files(root / "data" / "nats")  # each service's own NATS identity, as the tests' stack
            http_port = free_port()
            # Warnings only, as bench/lists.py: the scheduler logs nothing per assignment at info either way.
            stack = Stack(root, pg, js)

            def env(service: str | None = None) -> dict[str, str]:
                return stack.env(service, GPULAB_HTTP_PORT=str(http_port), GPULAB_LOG_LEVEL="warning")

            migrate = [sys.executable, "-m", "gpulab_devstack.migrate_all", "identity", "scheduler"]
            urls = migrate_all.role_urls(pg.service_url, ("identity", "scheduler"))
            done = subprocess.run(
                migrate,
                env={**env(), **urls, "GPULAB_MIGRATION_DATABASE_URL": pg.url},
                capture_output=True,
                text=True,
                timeout=180,
            )
            if done.returncode != 0:
                raise RuntimeError(f"migration failed: {done.stderr.strip()}")
            identity = procs.spawn("identity", [sys.executable, "-m", "gpulab_identity", "serve"], env("identity"))
            scheduler = procs.spawn("scheduler", [sys.executable, "-m", "gpulab_scheduler", "serve"], env("scheduler"))
            gateway = procs.spawn("gateway", [sys.executable, "-m", "gpulab_gateway", "serve"], env("gateway"))
            nc = await nats.connect(js.url)
            rpc = RpcClient(nc, timeout_s=CALL_TIMEOUT_S)
            await wait_for_rpc(rpc, "identity")
            await wait_for_rpc(rpc, "scheduler")
            wait_for_port(http_port, 60, gateway)
            assert pg.proc is not None
            assert js.proc is not None
            pids = {"gateway": gateway.pid, "identity": identity.pid, "scheduler": scheduler.pid, "nats": js.proc.pid}
            postmaster = pg.proc.pid

            def cpu() -> Cpu:
                return Cpu.take(pids, postmaster)

            started = time.perf_counter()
            users = await add_users(rpc, pg.service_url("identity"), n_users)
            nodes = await add_nodes(nc, pg.url, n_nodes)
            say(f"{n_users} users, {n_nodes} nodes online in {time.perf_counter() - started:.1f} s")
            yield Running(rpc, nc, pg.url, http_port, users, nodes, cpu, procs)
        except BaseException:
            say(procs.tails())
            raise
        finally:
            if nc is not None:
                await nc.close()
            procs.stop()
            js.stop()
            pg.stop()
