"""What the browser tests against the real local run share (test_web_flows_e2e.py,
test_web_self_service_e2e.py): a fresh production build of the web app, users' SSH keys, the local
run with the settings the browser scripts expect, the agent started from the install command that
the script copied from the page, and running a script in Debian's chromium."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gpulab_devstack.servers import free_port

from .agent_support import Agents
from .test_devrun import Runner
from .throwaway_host import unavailable_reason

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "frontend/e2e/screenshots"
ADMIN_EMAIL = "grace@lab.example"
# The local run's throwaway admin.
ADMIN_PASSWORD = "a long admin passphrase"


def skip_unless_browser_can_run() -> str:
    """Skips the test where the agent or the user's key cannot be had; returns chromium's path."""
    if os.geteuid() == 0 and (reason := unavailable_reason()):
        pytest.skip(f"the agent's run as root must be in a throwaway host: {reason}")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen (openssh-client) to make the user's key")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "Debian's chromium is needed (make test installs it)"
    return chromium


def build_frontend() -> None:
    build = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO / "frontend"), "build"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr


def user_key(folder: Path, name: str = "id_ed25519", comment: str = "ada@laptop") -> tuple[str, str]:
    """A fresh ed25519 public key and its fingerprint as `ssh-keygen -l` prints it."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], capture_output=True, text=True, check=True)
    return (folder / f"{name}.pub").read_text().strip(), listed.stdout.split()[1]


async def start_agent_when_asked(handoff: Path, agents: Agents, enroll_port: int) -> None:
    """Waits for the install command the browser script copied from the page, then enrolls with its
    token and CA fingerprint and runs the agent (as root, Agents runs it in a throwaway host)."""
    command_file = handoff / "install-command.txt"
    while not command_file.exists():
        await asyncio.sleep(0.2)
    command = command_file.read_text()
    token = re.search(r"printf '%s\\n' ([A-Za-z0-9_-]+);", command)
    fingerprint = re.search(r"--ca-fingerprint (\S+)", command)
    assert token, command
    assert fingerprint, command
    enrolled = await agents.enroll(f"127.0.0.1:{enroll_port}", fingerprint.group(1), token.group(1))
    assert enrolled.returncode == 0, enrolled.stderr
    agents.run()


class LocalRun:
    """The real local run serving the fresh build, with its enrollment and heartbeat ports free."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.enroll_port, heartbeat_port = free_port(), free_port()
        self.runner = Runner(
            data,
            no_frontend=True,
            frontend_dir=REPO / "frontend/dist/gpulab/browser",
            GPULAB_ENROLL_PORT=str(self.enroll_port),
            GPULAB_HEARTBEAT_PORT=str(heartbeat_port),
            GPULAB_HEARTBEAT_ENDPOINT=f"127.0.0.1:{heartbeat_port}",
            GPULAB_HEARTBEAT_INTERVAL_S="2",
            GPULAB_BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
            GPULAB_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
            GPULAB_SSH_JUMP_HOST="jump.lab.example",
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.runner.http_port}"

    def script_env(self, chromium: str, handoff: Path) -> dict[str, str]:
        """What every browser script reads: where the app is, the admin, the mails, the handoff."""
        return {
            **os.environ,
            "BASE_URL": self.base_url,
            "CHROMIUM": chromium,
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MAIL_DIR": str(self.data / "mail"),
            "HANDOFF_DIR": str(handoff),
            "SCREENSHOT_DIR": str(SCREENSHOTS),
        }

    def close(self) -> None:
        assert self.runner.interrupt() == 0
        self.runner.close()


async def run_script(script: str, env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Runs frontend/e2e/<script> with node; its exit status and output (printed for the log)."""
    browser = await asyncio.create_subprocess_exec(
        "node",
        str(REPO / "frontend/e2e" / script),
        cwd=REPO / "frontend",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(browser.communicate(), timeout=timeout_s)
    output = out.decode()
    # The steps and their timings, for the log.
    print(output)  # noqa: T201
    assert browser.returncode is not None
    return browser.returncode, output
