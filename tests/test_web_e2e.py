"""The built web app in a real browser (Debian's chromium), served by the real gateway of a local run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_devrun import Runner

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_web_app_shows_every_service_healthy_in_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "Debian's chromium is needed (make test installs it: apt-get install chromium)"
    build = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO / "frontend"), "build"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    run = Runner(tmp_path / "data", no_frontend=True, frontend_dir=REPO / "frontend/dist/gpulab/browser")
    try:
        run.wait_for("gpulab is up", 90)
        shot = tmp_path / "portal.png"
        smoke = subprocess.run(
            ["node", str(REPO / "frontend/e2e/smoke.mjs")],
            env={
                **os.environ,
                "BASE_URL": f"http://127.0.0.1:{run.http_port}",
                "SCREENSHOT": str(shot),
                "CHROMIUM": chromium,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "e2e: 1 passed, 0 failed" in smoke.stdout
        assert shot.stat().st_size > 10_000, "a real page was rendered"
    finally:
        assert run.interrupt() == 0
        run.close()
