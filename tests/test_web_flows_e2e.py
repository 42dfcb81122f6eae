"""Every flow of the mission in a real browser: Debian's chromium (frontend/e2e/flows.mjs) against the
real local run (`make dev`'s runner: embedded PostgreSQL and NATS, every service, the mail catcher, the
built web app) and the real agent binary, which keeps the node the admin adds in the browser online
with the GPUs of a recorded 8-GPU nvidia-smi. As root the agent runs in a throwaway host, so the
assignment it applies never reaches this machine's accounts.

Screenshots of every main page at 1280 and 390 px go to frontend/e2e/screenshots/ (not committed)."""

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

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "frontend/e2e/screenshots"
ADMIN_EMAIL = "grace@lab.example"
# The local run's throwaway admin.
ADMIN_PASSWORD = "a long admin passphrase"


def _build_frontend() -> None:
    build = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO / "frontend"), "build"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr


def _key(folder: Path) -> tuple[str, str]:
    """A fresh ed25519 public key and its fingerprint as `ssh-keygen -l` prints it."""
    path = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ada@laptop", "-f", str(path)], check=True)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], capture_output=True, text=True, check=True)
    return (folder / "id_ed25519.pub").read_text().strip(), listed.stdout.split()[1]


async def _start_agent_when_asked(handoff: Path, agents: Agents, enroll_port: int) -> None:
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


@pytest.mark.timeout(600)
async def test_admin_and_user_do_every_flow_in_the_browser(agents: Agents, tmp_path: Path) -> None:
    if os.geteuid() == 0 and (reason := unavailable_reason()):
        pytest.skip(f"the agent's run as root must be in a throwaway host: {reason}")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen (openssh-client) to make the user's key")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "Debian's chromium is needed (make test installs it)"
    await asyncio.to_thread(_build_frontend)
    public_key, fingerprint = _key(tmp_path)
    enroll_port, heartbeat_port = free_port(), free_port()
    data = tmp_path / "data"
    run = Runner(
        data,
        no_frontend=True,
        frontend_dir=REPO / "frontend/dist/gpulab/browser",
        GPULAB_ENROLL_PORT=str(enroll_port),
        GPULAB_HEARTBEAT_PORT=str(heartbeat_port),
        GPULAB_HEARTBEAT_ENDPOINT=f"127.0.0.1:{heartbeat_port}",
        GPULAB_HEARTBEAT_INTERVAL_S="2",
        GPULAB_BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        GPULAB_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        GPULAB_SSH_JUMP_HOST="jump.lab.example",
    )
    handoff = tmp_path / "handoff"
    handoff.mkdir()
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    agent_task: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(run.wait_for, "gpulab is up", 120)
        agent_task = asyncio.create_task(_start_agent_when_asked(handoff, agents, enroll_port))
        browser = await asyncio.create_subprocess_exec(
            "node",
            str(REPO / "frontend/e2e/flows.mjs"),
            cwd=REPO / "frontend",
            env={
                **os.environ,
                "BASE_URL": f"http://127.0.0.1:{run.http_port}",
                "CHROMIUM": chromium,
                "ADMIN_EMAIL": ADMIN_EMAIL,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
                "MAIL_DIR": str(data / "mail"),
                "HANDOFF_DIR": str(handoff),
                "PUBLIC_KEY": public_key,
                "KEY_FINGERPRINT": fingerprint,
                "SCREENSHOT_DIR": str(SCREENSHOTS),
                # Only root (in the throwaway host) can create the user's account on the node; as
                # anyone else the agent reports the assignment failed, which the page must show too.
                "EXPECT_READY": "1" if os.geteuid() == 0 else "0",
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(browser.communicate(), timeout=280)
        output = out.decode()
        # The steps and their timings, for the log.
        print(output)  # noqa: T201
        if agent_task.done() and agent_task.exception():
            raise AssertionError("the agent did not start") from agent_task.exception()
        agent_logs = "\n".join(r.output() for r in agents.runs)
        assert browser.returncode == 0, output + "\nagent:\n" + agent_logs[-3000:]
        assert re.search(r"^e2e: \d+ passed, 0 failed$", output, re.MULTILINE), output
        assert len(list(SCREENSHOTS.glob("*-1280.png"))) >= 8
        assert len(list(SCREENSHOTS.glob("*-390.png"))) >= 8
    finally:
        if agent_task is not None:
            agent_task.cancel()
        assert run.interrupt() == 0
        run.close()
