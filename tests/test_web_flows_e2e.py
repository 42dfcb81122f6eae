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
from pathlib import Path

import pytest

from .agent_support import Agents
from .web_support import (
    SCREENSHOTS,
    LocalRun,
    build_frontend,
    run_script,
    skip_unless_browser_can_run,
    start_agent_when_asked,
    user_key,
)

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
async def test_admin_and_user_do_every_flow_in_the_browser(agents: Agents, tmp_path: Path) -> None:
    chromium = skip_unless_browser_can_run()
    await asyncio.to_thread(build_frontend)
    public_key, fingerprint = user_key(tmp_path)
    run = LocalRun(tmp_path / "data")
    handoff = tmp_path / "handoff"
    handoff.mkdir()
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    agent_task: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(run.runner.wait_for, "gpulab is up", 120)
        agent_task = asyncio.create_task(start_agent_when_asked(handoff, agents, run.enroll_port))
        returncode, output = await run_script(
            "flows.mjs",
            {
                **run.script_env(chromium, handoff),
                "PUBLIC_KEY": public_key,
                "KEY_FINGERPRINT": fingerprint,
                # Only root (in the throwaway host) can create the user's account on the node; as
                # anyone else the agent reports the assignment failed, which the page must show too.
                "EXPECT_READY": "1" if os.geteuid() == 0 else "0",
            },
            timeout_s=280,
        )
        if agent_task.done() and agent_task.exception():
            raise AssertionError("the agent did not start") from agent_task.exception()
        agent_logs = "\n".join(r.output() for r in agents.runs)
        assert returncode == 0, output + "\nagent:\n" + agent_logs[-3000:]
        assert re.search(r"^e2e: \d+ passed, 0 failed$", output, re.MULTILINE), output
        assert len(list(SCREENSHOTS.glob("*-1280.png"))) >= 8
        assert len(list(SCREENSHOTS.glob("*-390.png"))) >= 8
    finally:
        if agent_task is not None:
            agent_task.cancel()
        run.close()
