"""The web app's image for scripts/imagecheck: built, checked as the Kubernetes web pod runs it
(deploy/kubernetes/base/web.yaml), and served by its own caddy."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from scripts.imagecheck.bases import NODE_VERSION
from scripts.imagecheck.buildah import bud, buildah, file_capabilities, probe, say


def build_web() -> tuple[str, float]:
    return bud("web.Dockerfile", "localhost/gpulab/web:check", f"NODE_VERSION={NODE_VERSION}")


def check_web(image: str) -> list[str]:
    """As the Kubernetes web pod runs it (deploy/kubernetes/base/web.yaml): uid 10001, no capability
    left on caddy, the Caddyfile valid for GPULAB_DOMAIN=:PORT; then served: the app and its SPA
    fallback."""
    from gpulab_devstack.servers import free_port

    lines, problems = probe(
        image,
        ("node", "npm"),
        "test -f /srv/frontend/index.html && echo APP; "
        "GPULAB_DOMAIN=:8080 caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 "
        "&& echo VALID; true",
    )
    for mark, problem in (("APP", "no /srv/frontend/index.html"), ("VALID", "the Caddyfile does not validate")):
        if mark not in lines:
            problems.append(problem)
    if file_capabilities(image, "/usr/bin/caddy"):
        problems.append("caddy keeps a file capability, which the pod (no capabilities) cannot exec")
    if problems:
        return problems
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gpulab-imagecheck-web-") as tmp:
        for sub in ("data", "config"):
            (Path(tmp) / sub).mkdir(mode=0o777)
            (Path(tmp) / sub).chmod(0o777)
        ctr = buildah("from", image, capture=True)
        proc = subprocess.Popen(
            ["buildah", "run", "--isolation=chroot", "-v", f"{tmp}/data:/data", "-v", f"{tmp}/config:/config"]
            + [ctr, "--", "env", f"GPULAB_DOMAIN=:{port}", "caddy", "run", "--config", "/etc/caddy/Caddyfile"]
            + ["--adapter", "caddyfile"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            problems += asyncio.run(served(port))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            buildah("rm", ctr, capture=True, check=False)
    return problems


async def served(port: int) -> list[str]:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            try:
                app = await client.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    return ["caddy did not answer on its port within 30 s"]
                await asyncio.sleep(0.5)
        route = await client.get(f"http://127.0.0.1:{port}/portal/requests")
    problems = []
    if app.status_code != 200 or "<app-root" not in app.text:
        problems.append(f"/ answered {app.status_code}, not the app")
    if route.status_code != 200 or route.text != app.text:
        problems.append(f"a client-side route answered {route.status_code}, not index.html")
    if not problems:
        say(f"web image: / and a client-side route served by its caddy ({len(app.text)} bytes of index.html)")
    return problems
