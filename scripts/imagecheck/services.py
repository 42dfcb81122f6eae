"""The six service images for scripts/imagecheck: each built and looked inside, then all of them
run together against an embedded PostgreSQL and NATS until the gateway says every service is ok."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from scripts.imagecheck.bases import PYTHON_VERSION
from scripts.imagecheck.buildah import bud, buildah, probe, say

SERVICES = ("identity", "pki", "inventory", "scheduler", "notify", "gateway")
DATABASE = ("identity", "pki", "inventory", "scheduler", "notify")
BUILD_TOOLS = ("uv", "pip", "pip3", "gcc", "cc", "go", "make")
AGENT = "/app/agent/dist/gpulab-agent-linux-amd64"
HEALTHY_WITHIN_S = 120.0


def build(service: str, commit: str) -> tuple[str, float]:
    return bud(
        "python.Dockerfile",
        f"localhost/gpulab/{service}:check",
        f"SERVICE={service}",
        f"PYTHON_VERSION={PYTHON_VERSION}",
        f"GPULAB_COMMIT={commit}",
    )


def check_image(service: str, image: str) -> list[str]:
    lines, problems = probe(
        image,
        BUILD_TOOLS,
        f"touch /app/written 2>/dev/null && echo WRITABLE; python -m gpulab_{service} --help >/dev/null && echo HELP; "
        f"test -x {AGENT} && echo AGENT; true",
    )
    if "WRITABLE" in lines:
        problems.append("its process can write its own code under /app")
    if "HELP" not in lines:
        problems.append(f"python -m gpulab_{service} --help failed inside the image")
    if service == "gateway" and "AGENT" not in lines:
        problems.append(f"no agent at {AGENT} for /downloads")
    if service != "gateway" and "AGENT" in lines:
        problems.append("carries the agent, which only the gateway serves")
    return problems


async def run_system(images: dict[str, str]) -> list[str]:
    from gpulab_devstack.servers import EmbeddedNats, EmbeddedPostgres, free_port
    from gpulab_devstack.testing import Stack

    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gpulab-imagecheck-") as tmp:
        root = Path(tmp)
        pg = EmbeddedPostgres(root / "pg", free_port())
        js = EmbeddedNats(root / "nats", free_port())
        procs: list[tuple[str, subprocess.Popen[bytes], str]] = []
        try:
            pg.start()
            js.start()
            js.write_env_files(root / "data" / "nats")
            (root / "data").chmod(0o777)  # the services run as uid 10001 and keep files here
            stack = Stack(root, pg, js)
            http_port = free_port()

            def env(service: str) -> list[str]:
                values = stack.env(service, GPULAB_HTTP_PORT=str(http_port), GPULAB_LOG_FORMAT="text")
                return [f"{k}={v}" for k, v in values.items() if k.startswith("GPULAB_")]

            def start(service: str, *command: str) -> subprocess.Popen[bytes]:
                ctr = buildah("from", images[service], capture=True)
                log = (root / f"{service}.log").open("ab")
                proc = subprocess.Popen(
                    ["buildah", "run", "--isolation=chroot", "-v", f"{root}:{root}", ctr, "--", "env", *env(service)]
                    + list(command),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                procs.append((service, proc, ctr))
                return proc

            for service in DATABASE:
                if service in images:
                    migrated = start(service, "python", "-m", f"gpulab_{service}", "migrate").wait(timeout=180)
                    if migrated != 0:
                        log = (root / f"{service}.log").read_text()[-500:]
                        problems.append(f"{service} migrate exited {migrated}: {log}")
            if problems:
                return problems
            for service in images:
                start(service, "python", "-m", f"gpulab_{service}", "serve")
            problems += await healthy(http_port, images)
        finally:
            for _, proc, ctr in procs:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                buildah("rm", ctr, capture=True, check=False)
            if problems:
                for service in images:
                    say(f"--- {service}'s log, last lines:\n{(root / f'{service}.log').read_text()[-1500:]}")
            js.stop()
            pg.stop()
    return problems


async def healthy(http_port: int, images: dict[str, str]) -> list[str]:
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    last = "no answer"
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                reply = await client.get(f"{base}/api/v1/healthz")
                body = reply.json()
                last = str(body)
                services = body.get("services", {})
                if reply.status_code == 200 and all(services.get(s) == "ok" for s in images if s != "gateway"):
                    say(f"/api/v1/healthz from the images: {body.get('status')}, {services}")
                    break
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(1)
        else:
            return [f"the services did not become healthy within {HEALTHY_WITHIN_S:.0f} s: {last}"]
        if "gateway" in images:
            agent = await client.get(f"{base}/downloads/gpulab-agent-linux-amd64")
            if agent.status_code != 200 or not agent.content.startswith(b"\x7fELF"):
                return [f"/downloads/gpulab-agent-linux-amd64: {agent.status_code}, {agent.content[:20]!r}"]
            mib = len(agent.content) / 2**20
            say(f"/downloads/gpulab-agent-linux-amd64 from the gateway's image: a {mib:.1f} MiB ELF")
    return []
