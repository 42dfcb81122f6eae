"""`GET /api/v1/users` (50 per page) through the real gateway and identity, as deployed (separate
processes, NATS, PostgreSQL), against a bare baseline: one process that reads the same page from
PostgreSQL and returns JSON. Same servers, same data, same client, in one run."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from bench.rpc import compare_row, print_header
from gpulab_devstack.servers import EmbeddedNats, EmbeddedPostgres, free_port, pg_bin, wait_for_port
from gpulab_devstack.testing import SERVICE_SECRETS

USERS = 200
PASSWORD = "benchmark password 1"


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench lists")
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pg = EmbeddedPostgres(root / "pg", free_port())
        js = EmbeddedNats(root / "nats", free_port())
        pg.start()
        js.start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            http_port, bare_port = free_port(), free_port()
            env = {
                **os.environ,
                "GPULAB_DATABASE_URL": pg.service_url("identity"),
                "GPULAB_MIGRATION_DATABASE_URL": pg.url,
                "GPULAB_NATS_URL": js.url,
                "GPULAB_METRICS_PORT": "0",
                "GPULAB_HTTP_PORT": str(http_port),
                "GPULAB_LOG_LEVEL": "warning",
                "GPULAB_BOOTSTRAP_ADMIN_EMAIL": "bench@example.org",
                "GPULAB_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
                "BENCH_DATABASE_URL": pg.service_url("identity"),
                **SERVICE_SECRETS["identity"],
            }
            subprocess.run(
                [sys.executable, "-m", "gpulab_identity", "migrate"], env=env, check=True, capture_output=True
            )
            seed(pg.url)
            procs.append(spawn([sys.executable, "-m", "gpulab_identity"], env, root / "identity.log"))
            # The gateway holds no database credentials, nor identity's keys.
            gateway_env = {
                k: v for k, v in env.items() if "DATABASE_URL" not in k and k not in SERVICE_SECRETS["identity"]
            }
            procs.append(spawn([sys.executable, "-m", "gpulab_gateway"], gateway_env, root / "gateway.log"))
            procs.append(
                spawn(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "bench.bare_list_app:app",
                        "--port",
                        str(bare_port),
                        "--log-level",
                        "warning",
                    ],
                    env,
                    root / "bare.log",
                )
            )
            for port in (http_port, bare_port):
                wait_for_port(port, 60)
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as gw,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{bare_port}", timeout=30) as bare,
            ):
                for _ in range(100):  # identity creates the admin at start
                    login = await gw.post(
                        "/api/v1/auth/login", json={"email": "bench@example.org", "password": PASSWORD}
                    )
                    if login.status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                login.raise_for_status()

                async def via_gateway() -> object:
                    r = await gw.get("/api/v1/users", params={"limit": 50})
                    assert r.status_code == 200, r.text
                    assert len(r.json()["items"]) == 50
                    return r

                async def baseline() -> object:
                    r = await bare.get("/users", params={"limit": 50})
                    assert len(r.json()["items"]) == 50
                    return r

                print_header(f"GET /api/v1/users?limit=50 ({USERS} users), n={args.n}")
                for concurrency in (1, 8, 32):
                    await compare_row(baseline, via_gateway, args.n, concurrency)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
            js.stop()
            pg.stop()


def seed(owner_url: str) -> None:
    values = ",".join(
        f"('{uuid.uuid4()}', 'user{i}@example.org', 'User {i}', 'user', 'invited', now() + interval '{i} ms')"
        for i in range(USERS)
    )
    subprocess.run(
        [
            pg_bin("psql"),
            owner_url,
            "-qc",
            f"INSERT INTO identity.users (id, email, name, role, status, created_at) VALUES {values}",
        ],
        check=True,
        capture_output=True,
    )
