"""Self-service and fair use in a real browser: Debian's chromium (frontend/e2e/self-service.mjs)
against the real local run and the real agent, as test_web_flows_e2e.py runs flows.mjs. The admin
adds a node with the 8 GPUs of a recorded nvidia-smi and opens an Environment to requests; two users
ask for GPUs (granted at once, queued, granted when the other releases), an admin approves and denies
in the inbox, and the usage CSV the page downloads matches GET /usage as CSV.

Screenshots of each self-service page at 1280 and 390 px go to frontend/e2e/screenshots/."""

from __future__ import annotations

import asyncio
import re
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

# The pages the script photographs (each at 1280 and 390 px).
PAGES = ("request", "my-requests", "my-gpus-self-service", "admin-requests", "groups", "quotas", "usage")


# More steps than flows.mjs (two users join): the script gets 400 s of the 720.
@pytest.mark.timeout(720)
async def test_users_request_queue_and_release_gpus_and_admins_decide_in_the_browser(
    agents: Agents, tmp_path: Path
) -> None:
    chromium = skip_unless_browser_can_run()
    await asyncio.to_thread(build_frontend)
    key_a, fingerprint_a = user_key(tmp_path, "id_a", "ada@laptop")
    key_b, fingerprint_b = user_key(tmp_path, "id_b", "bob@laptop")
    run = LocalRun(tmp_path / "data")
    handoff = tmp_path / "handoff"
    handoff.mkdir()
    for page in PAGES:
        for shot in SCREENSHOTS.glob(f"{page}-*.png"):
            shot.unlink()
    agent_task: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(run.runner.wait_for, "gpulab is up", 120)
        agent_task = asyncio.create_task(start_agent_when_asked(handoff, agents, run.enroll_port))
        returncode, output = await run_script(
            "self-service.mjs",
            {
                **run.script_env(chromium, handoff),
                "PUBLIC_KEY_A": key_a,
                "KEY_FINGERPRINT_A": fingerprint_a,
                "PUBLIC_KEY_B": key_b,
                "KEY_FINGERPRINT_B": fingerprint_b,
            },
            timeout_s=400,
        )
        if agent_task.done() and agent_task.exception():
            raise AssertionError("the agent did not start") from agent_task.exception()
        agent_logs = "\n".join(r.output() for r in agents.runs)
        assert returncode == 0, output + "\nagent:\n" + agent_logs[-3000:]
        assert re.search(r"^e2e: \d+ passed, 0 failed$", output, re.MULTILINE), output
        for page in PAGES:
            for width in (1280, 390):
                assert (SCREENSHOTS / f"{page}-{width}.png").exists(), f"no screenshot of {page} at {width} px"
    finally:
        if agent_task is not None:
            agent_task.cancel()
        run.close()
