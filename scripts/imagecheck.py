"""Builds gpulab's images and checks them, on a machine with buildah and no Docker engine.

    sudo .venv/bin/python scripts/imagecheck.py [--stand-in-bases] [--services identity,gateway]

For each of the six Python services, `deploy/docker/python.Dockerfile` is built with `buildah bud`
(chroot isolation, vfs storage: no daemon, no overlay mounts), and each image is checked:
it runs as uid 10001, has no uv, pip, compiler or Go in its final layer, cannot write its own code,
and its command line answers `--help`; the gateway's image carries the static agent for `/downloads`.
Then the whole system runs from the images: an embedded PostgreSQL and NATS on this machine (the
tests' servers), each image's `migrate` against its own database role, all six services served from
their images on the host's network, until the gateway's `/api/v1/healthz` says every service is
`ok` and `/downloads/gpulab-agent-linux-amd64` is the agent built in the image.

`--stand-in-bases`: where the public base images cannot be pulled (a machine that reaches package
registries only), local stand-ins are made under the same names first: `python:3.11-slim-bookworm`
from Debian's archive (debootstrap), `ghcr.io/astral-sh/uv` with this checkout's uv, and
`golang:1.26-bookworm` with this machine's Go. They are not the published images (Python 3.11 from
Debian instead of python.org's build), so sizes differ; what is checked is gpulab's own Dockerfile.
Not part of `make test`: it needs root, buildah and minutes (docs/setup-guide.md, "Images").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("identity", "pki", "inventory", "scheduler", "notify", "gateway")
DATABASE = ("identity", "pki", "inventory", "scheduler", "notify")
PYTHON_VERSION = "3.11"  # the stand-in base's (Debian bookworm's); the Dockerfile's default is 3.13
UID = "10001"
BUILD_TOOLS = ("uv", "pip", "pip3", "gcc", "cc", "go", "make")
AGENT = "/app/agent/dist/gpulab-agent-linux-amd64"
STAND_IN_ROOTFS_PACKAGES = "python3,python3-venv,ca-certificates,passwd"
HEALTHY_WITHIN_S = 120.0
NODE_VERSION = "20"  # this machine's node, for the stand-in (Angular 21 takes ^20.19, ^22.12 or ^24)
CADDY_VERSION = "v2.11.9"  # tools/deploycheck's (CADDY_VERSION there), the minor compose pins

os.environ.setdefault("STORAGE_DRIVER", "vfs")


def say(line: str) -> None:
    print(line, flush=True)  # noqa: T201


def buildah(*args: str, capture: bool = False, check: bool = True) -> str:
    done = subprocess.run(["buildah", *args], check=False, capture_output=capture, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"buildah {' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr or ''}")
    return (done.stdout or "").strip()


# ---- stand-in bases ----


def stand_in_bases(work: Path) -> None:
    rootfs = work / "rootfs"
    say("stand-in bases: debootstrap bookworm (Debian's archive) ...")
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={STAND_IN_ROOTFS_PACKAGES}", "bookworm", str(rootfs)],
        check=True,
        capture_output=True,
    )
    (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    # This machine's trust store (a proxy's CA, where there is one), so that builds reach PyPI.
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    python = f"docker.io/library/python:{PYTHON_VERSION}-slim-bookworm"
    image_from(rootfs, python, [f"PATH={path}", "LANG=C.UTF-8", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"])
    uv_version = subprocess.run([str(REPO / ".tools/bin/uv"), "--version"], capture_output=True, text=True, check=True)
    uv_dir = work / "uv"
    uv_dir.mkdir()
    shutil.copy(REPO / ".tools/bin/uv", uv_dir / "uv")
    image_from(uv_dir, f"ghcr.io/astral-sh/uv:{uv_version.stdout.split()[1]}", [])
    go = Path(shutil.which("go") or "/usr/local/go/bin/go").resolve().parents[1]
    ctr = buildah("from", python, capture=True)
    mount = Path(buildah("mount", ctr, capture=True))
    shutil.copytree(go, mount / "usr/local/go", symlinks=True)
    shutil.copy(shutil.which("make") or "/usr/bin/make", mount / "usr/bin/make")  # the agent's Makefile
    buildah("umount", ctr, capture=True)
    buildah("config", "--env", f"PATH=/usr/local/go/bin:{path}", "--env", "GOTOOLCHAIN=local", ctr)
    buildah("commit", "-q", ctr, "docker.io/library/golang:1.26-bookworm", capture=True)
    buildah("rm", ctr, capture=True)
    say("stand-in bases: python, uv, golang ready")


def image_from(folder: Path, name: str, env: list[str]) -> None:
    ctr = buildah("from", "scratch", capture=True)
    mount = Path(buildah("mount", ctr, capture=True))
    subprocess.run(["cp", "-a", f"{folder}/.", f"{mount}/"], check=True)
    buildah("umount", ctr, capture=True)
    for item in env:
        buildah("config", "--env", item, ctr)
    buildah("commit", "-q", ctr, name, capture=True)
    buildah("rm", ctr, capture=True)


def stand_in_web_bases() -> None:
    """node (this machine's) and caddy (tools/deploycheck's, the compose pin) on the python stand-in."""
    python = f"docker.io/library/python:{PYTHON_VERSION}-slim-bookworm"
    node = Path(shutil.which("node") or "/usr/bin/node")
    npm = Path(os.path.realpath(shutil.which("npm") or "/usr/lib/node_modules/npm/bin/npm-cli.js")).parents[1]
    ctr = buildah("from", python, capture=True)
    mount = Path(buildah("mount", ctr, capture=True))
    shutil.copy(node, mount / "usr/bin/node")
    shutil.copytree(npm, mount / "usr/lib/node_modules/npm", symlinks=True)
    (mount / "usr/bin/npm").symlink_to("../lib/node_modules/npm/bin/npm-cli.js")
    buildah("umount", ctr, capture=True)
    buildah("config", "--env", "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt", ctr)
    buildah("commit", "-q", ctr, f"docker.io/library/node:{NODE_VERSION}-bookworm-slim", capture=True)
    buildah("rm", ctr, capture=True)
    caddy = REPO / "tools/deploycheck/bin" / f"caddy-{CADDY_VERSION}" / "caddy"
    if not caddy.exists():
        subprocess.run(["make", "-C", str(REPO / "tools/deploycheck"), "caddy"], check=True, capture_output=True)
    ctr = buildah("from", python, capture=True)
    mount = Path(buildah("mount", ctr, capture=True))
    shutil.copy(caddy, mount / "usr/bin/caddy")
    shutil.copy(shutil.which("setcap") or "/usr/sbin/setcap", mount / "usr/sbin/setcap")
    libcap = Path("/lib/x86_64-linux-gnu/libcap.so.2")
    if not (mount / "lib/x86_64-linux-gnu/libcap.so.2").exists():
        shutil.copy(libcap.resolve(), mount / "lib/x86_64-linux-gnu/libcap.so.2")
    buildah("umount", ctr, capture=True)
    # As the official image: the capability to bind :80 and :443 as a user, its data and config dirs.
    buildah("run", "--isolation=chroot", ctr, "--", "setcap", "cap_net_bind_service=+ep", "/usr/bin/caddy")
    buildah("config", "--env", "XDG_CONFIG_HOME=/config", "--env", "XDG_DATA_HOME=/data", ctr)
    minor = CADDY_VERSION.lstrip("v").rsplit(".", 1)[0]
    buildah("commit", "-q", ctr, f"docker.io/library/caddy:{minor}-alpine", capture=True)
    buildah("rm", ctr, capture=True)
    say("stand-in bases: node, caddy ready")


# ---- build and look inside ----


def bud(dockerfile: str, image: str, *build_args: str) -> tuple[str, float]:
    """`buildah bud` of deploy/docker/<dockerfile> with its own .dockerignore; (image, seconds)."""
    started = time.monotonic()
    args = [a for arg in build_args for a in ("--build-arg", arg)]
    buildah(
        "bud",
        "--isolation=chroot",
        "--pull=false",
        "--quiet",
        "--ignorefile",
        f"deploy/docker/{dockerfile}.dockerignore",
        *args,
        "-f",
        f"deploy/docker/{dockerfile}",
        "-t",
        image,
        str(REPO),
        capture=True,
    )
    return image, time.monotonic() - started


def build(service: str, commit: str) -> tuple[str, float]:
    return bud(
        "python.Dockerfile",
        f"localhost/gpulab/{service}:check",
        f"SERVICE={service}",
        f"PYTHON_VERSION={PYTHON_VERSION}",
        f"GPULAB_COMMIT={commit}",
    )


def inside(image: str, script: str) -> subprocess.CompletedProcess[str]:
    ctr = buildah("from", image, capture=True)
    try:
        return subprocess.run(
            ["buildah", "run", "--isolation=chroot", ctr, "--", "sh", "-c", script],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        buildah("rm", ctr, capture=True)


def check_image(service: str, image: str) -> list[str]:
    problems = []
    user = buildah("inspect", "--format", "{{.OCIv1.Config.User}}", image, capture=True)
    if user != f"{UID}:{UID}":
        problems.append(f"runs as {user!r}, not {UID}:{UID}")
    tools = " ".join(BUILD_TOOLS)
    probe = inside(
        image,
        f'id -u; for t in {tools}; do command -v "$t" && echo "TOOL $t"; done; '
        f"touch /app/written 2>/dev/null && echo WRITABLE; python -m gpulab_{service} --help >/dev/null && echo HELP; "
        f"test -x {AGENT} && echo AGENT; {AGENT} version 2>&1 | head -1",
    )
    lines = probe.stdout.splitlines()
    if not lines or lines[0] != UID:
        problems.append(f"its process is uid {lines[:1]}, not {UID}")
    tools_found = [line.split()[1] for line in lines if line.startswith("TOOL")]
    problems += [f"has {tool} (a build tool) in its final layer" for tool in tools_found]
    if "WRITABLE" in lines:
        problems.append("its process can write its own code under /app")
    if "HELP" not in lines:
        problems.append(f"python -m gpulab_{service} --help failed: {probe.stderr.strip()[-300:]}")
    if service == "gateway" and "AGENT" not in lines:
        problems.append(f"no agent at {AGENT} for /downloads")
    if service != "gateway" and "AGENT" in lines:
        problems.append("carries the agent, which only the gateway serves")
    return problems


def build_web() -> tuple[str, float]:
    return bud("web.Dockerfile", "localhost/gpulab/web:check", f"NODE_VERSION={NODE_VERSION}")


def check_web(image: str) -> list[str]:
    """As the Kubernetes web pod runs it (deploy/kubernetes/base/web.yaml): uid 10001, no capability
    left on caddy, the Caddyfile valid for GPULAB_DOMAIN=:PORT; then served: the app and its SPA
    fallback."""
    from gpulab_devstack.servers import free_port

    problems = []
    user = buildah("inspect", "--format", "{{.OCIv1.Config.User}}", image, capture=True)
    if user != f"{UID}:{UID}":
        problems.append(f"runs as {user!r}, not {UID}:{UID}")
    probe = inside(
        image,
        "id -u; for t in node npm; do command -v $t && echo TOOL $t; done; test -f /srv/frontend/index.html "
        "&& echo APP; "
        "GPULAB_DOMAIN=:8080 caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 "
        "&& echo VALID",
    )
    lines = probe.stdout.splitlines()
    if not lines or lines[0] != UID:
        problems.append(f"its process is uid {lines[:1]}, not {UID}")
    problems += [f"has {line.split()[1]} in its final layer" for line in lines if line.startswith("TOOL")]
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


def file_capabilities(image: str, path: str) -> bytes:
    """The file's `security.capability` attribute, read from the image's filesystem (b"": none)."""
    ctr = buildah("from", image, capture=True)
    try:
        mount = buildah("mount", ctr, capture=True)
        try:
            return os.getxattr(f"{mount}{path}", "security.capability")
        except OSError:
            return b""
        finally:
            buildah("umount", ctr, capture=True)
    finally:
        buildah("rm", ctr, capture=True)


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


def size(image: str) -> str:
    return buildah("images", "--noheading", "--format", "{{.Size}}", image, capture=True)


# ---- the system, run from the images ----


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


def main() -> int:
    parser = argparse.ArgumentParser(prog="imagecheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stand-in-bases", action="store_true", help="make local stand-ins of the base images first")
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated (default: all six)")
    parser.add_argument("--web", action="store_true", help="also the web app's image (deploy/docker/web.Dockerfile)")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("buildah") is None:
        say("imagecheck needs root and buildah (apt-get install buildah; debootstrap for --stand-in-bases)")
        return 2
    services = [s for s in args.services.split(",") if s]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory(prefix="gpulab-imagecheck-bases-") as work:
        if args.stand_in_bases:
            stand_in_bases(Path(work))
            if args.web:
                stand_in_web_bases()
    images: dict[str, str] = {}
    problems: list[str] = []
    say("| image | built in s | size | checks |")
    say("|---|---|---|---|")
    for service in services:
        image, seconds = build(service, commit.strip() or "unknown")
        images[service] = image
        found = check_image(service, image)
        problems += [f"{service}: {p}" for p in found]
        say(f"| {service} | {seconds:.0f} | {size(image)} | {'; '.join(found) or 'ok'} |")
    if args.web:
        image, seconds = build_web()
        found = check_web(image)
        problems += [f"web: {p}" for p in found]
        say(f"| web | {seconds:.0f} | {size(image)} | {'; '.join(found) or 'ok'} |")
    if not problems and images:
        problems += asyncio.run(run_system(images))
    for problem in problems:
        say(f"FAIL {problem}")
    built = len(images) + args.web
    summary = f"ok: {built} images built and checked, {len(images)} run together"
    say("imagecheck: " + ("FAILED" if problems else summary))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
