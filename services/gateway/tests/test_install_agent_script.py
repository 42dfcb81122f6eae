"""install-agent.sh run for real: bash -n, shellcheck, and bash, curl and a live gateway.

The fake agent, systemctl and the pretend node are in install_support.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from .install_support import (
    ARTIFACT,
    EXPECTED_DIRS,
    FAKE_AGENT,
    FINGERPRINT,
    FINGERPRINT_PASTED,
    SYSTEMCTL,
    TOKEN,
    Node,
    Served,
    asgi_client,
    serve_gateway,
    shellcheck,
    static_server,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One live gateway for the module, serving the fake agent; the script as it serves it."""
    with serve_gateway(tmp_path_factory.mktemp("gateway")) as found:
        yield found


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(tmp_path) as c:
        yield c


@pytest.fixture
def node(tmp_path: Path) -> Node:
    root, tmp, log = tmp_path / "root", tmp_path / "tmp", tmp_path / "log"
    for folder in (root, tmp, log):
        folder.mkdir()
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(SYSTEMCTL)
    systemctl.chmod(0o755)
    return Node(root, tmp, log, systemctl)


# --- the script as served ---------------------------------------------------------------------


async def test_served_install_script_passes_bash_n_and_shellcheck_with_no_finding(client: httpx.AsyncClient) -> None:
    script = (await client.get("/install-agent.sh")).text
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(
        [shellcheck(), "-S", "style", "-s", "bash", "-"], input=script, capture_output=True, text=True, check=False
    )
    assert (lint.returncode, lint.stdout) == (0, "")


# --- the install script, run --------------------------------------------------------------------


def test_install_command_installs_enrolls_and_starts_the_agent_and_no_command_line_holds_the_token(
    served: Served, node: Node, tmp_path: Path
) -> None:
    # The command the control plane prints (inventory's install_command), less `sudo`; the token comes
    # from a file here only so that this test's own bash does not hold it in its argv either.
    token = f"tok_{secrets.token_urlsafe(32)}"  # this test's own: no other process can hold it
    token_file = tmp_path / "token"
    token_file.write_text(token)
    pipeline = (
        '{ curl -fsSL "$1/install-agent.sh" && printf \'%s\\n\' "$(cat "$2")"; } '
        '| bash -s -- --url "$1" --ca-fingerprint "$3" --token-file -'
    )
    result = node.run(["bash", "-c", pipeline, "install", served.url, str(token_file), FINGERPRINT_PASTED])
    assert result.returncode == 0, result.stderr

    files = node.snapshot()
    binary = (served.downloads / ARTIFACT).read_bytes()
    assert files.pop("usr/local/bin/gpulab-agent") == (0o755, binary)
    mode, env_file = files.pop("etc/gpulab/agent.env")
    assert mode == 0o600
    assert env_file is not None
    assert [line for line in env_file.decode().splitlines() if not line.startswith("#")] == [
        f"GPULAB_URL={served.url}",
        "GPULAB_ENROLL_ENDPOINT=127.0.0.1:50051",
        f"GPULAB_CA_FINGERPRINT={FINGERPRINT}",
    ]
    assert token.encode() not in env_file
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
        "StateDirectory=gpulab",
        "WantedBy=multi-user.target",
    ):
        assert line in unit_lines
    # Nothing else: no backups, no half-written files, only the folders the files live in.
    assert files == {path: (mode, None) for path, mode in EXPECTED_DIRS.items()}

    assert node.systemctl_calls() == ["daemon-reload", "enable --now gpulab-agent"]
    args = (node.log / "enroll-args").read_text().splitlines()
    assert args[:4] == ["--server", "127.0.0.1:50051", "--ca-sha256", FINGERPRINT]
    assert args[4] == "--dir"
    assert args[6:] == ["--token-file", "-"]
    assert len(args) == 8
    assert (node.log / "enroll-token").read_text() == token
    # While the agent enrolled, no process (the install script's bash, the agent) had the token on its
    # command line, where every user of the node could read it.
    assert (node.log / "token-in-argv").read_text() == ""
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
        args = ["--url", url, "--ca-fingerprint", FINGERPRINT, "--token-file", "-"]
        result = node.run(["bash", str(served.script), *args], stdin=TOKEN)
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


GOOD = {"--url": "https://gpulab.example.org", "--ca-fingerprint": FINGERPRINT, "--token-file": "-"}
BAD_TOKEN = "the token (--token-file) must be 20 to 256 characters"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--token-file": None}, "--token-file is required (- for standard input)"),
        # A token on the command line is refused, however written, and never echoed.
        ({"--token": TOKEN}, "--token is refused: every user of this node can read a command line (ps)"),
        ({f"--token={TOKEN}": ""}, "--token is refused"),
        ({"--url": None}, "--url is required"),
        ({"--ca-fingerprint": None}, "--ca-fingerprint is required"),
        ({"stdin": "short"}, BAD_TOKEN),
        ({"stdin": TOKEN + "$(id)"}, BAD_TOKEN),
        ({"stdin": "x" * 513}, BAD_TOKEN),
        ({"stdin": ""}, "no enrollment token: the first line of --token-file - is empty"),
        ({"--token-file": "/nonexistent/token"}, "--token-file /nonexistent/token is not a readable file"),
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
    stdin = options.pop("stdin", TOKEN) or ""
    args = [part for flag, value in options.items() if value is not None for part in (flag, value) if part != ""]
    result = node.run(["bash", str(served.script), *args], stdin=stdin + "\n")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("install-agent: error: ")
    assert message in result.stderr
    assert TOKEN not in result.stderr
    assert node.snapshot() == {}
    assert node.systemctl_calls() == []


def test_help_prints_the_usage(served: Served, node: Node) -> None:
    result = node.run(["bash", str(served.script), "--help"])
    assert result.returncode == 0
    assert result.stdout.startswith("usage: install-agent.sh --url URL --ca-fingerprint SHA256 --token-file FILE|-")
    assert node.snapshot() == {}


def test_the_token_at_its_edges_is_read_from_a_file_crlf_and_all(served: Served, node: Node, tmp_path: Path) -> None:
    """At the bounds the script accepts (20 and 256 characters), from a file a Windows editor wrote."""
    for token in ("t" * 20, "t" * 256):
        token_file = tmp_path / "token"
        token_file.write_text(token + "\r\n# the rest of the file is not read\n")
        args = ["--url", served.url, "--ca-fingerprint", FINGERPRINT, "--token-file", str(token_file), "--force"]
        result = node.run(["bash", str(served.script), *args])
        assert result.returncode == 0, result.stderr
        assert (node.log / "enroll-token").read_text() == token
    token_file.write_text("t" * 19 + "\n")
    result = node.run(["bash", str(served.script), *args])
    assert result.returncode == 2
    assert BAD_TOKEN in result.stderr
