"""The accounts flow end to end through the local run: real gateway, identity, notify, SMTP (the run's
mail catcher), PostgreSQL and NATS. An admin invites, the email arrives, the person accepts, logs in
and adds an SSH key, and the audit log has it all."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .test_devrun import Runner

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ADMIN = ("admin@lab.example", "admin password for e2e")


def csrf(client: httpx.Client, login: httpx.Response) -> None:
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]


def test_invite_mail_accept_login_and_ssh_key(tmp_path: Path) -> None:
    run = Runner(tmp_path / "data", GPULAB_BOOTSTRAP_ADMIN_EMAIL=ADMIN[0], GPULAB_BOOTSTRAP_ADMIN_PASSWORD=ADMIN[1])
    try:
        run.wait_for("gpulab is up", 90)
        base = f"http://127.0.0.1:{run.http_port}/api/v1"
        with httpx.Client(base_url=base, timeout=30) as admin:
            login = admin.post("/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
            assert login.status_code == 200, login.text
            csrf(admin, login)
            invited = admin.post("/users/invites", json={"email": "ada@lab.example", "role": "user"})
            assert invited.status_code == 201, invited.text
            link_line = run.wait_for("link: ", 60)
            token = re.search(r"/invite/([A-Za-z0-9_\-]+)", link_line)
            assert token is not None, link_line
            assert link_line.split("link: ")[1].startswith(f"http://127.0.0.1:{run.http_port}/invite/")

            # The person follows the link in the email, in a real browser, and sets name and password.
            link = link_line.split("link: ")[1].strip()
            shot = tmp_path / "accepted.png"
            browser = subprocess.run(
                ["node", str(REPO / "frontend/e2e/accept-invite.mjs")],
                env={
                    **os.environ,
                    "INVITE_URL": link,
                    "NAME": "Ada",
                    "PASSWORD": "analytical engine 1843",
                    "SCREENSHOT": str(shot),
                    "CHROMIUM": shutil.which("chromium") or "/usr/bin/chromium",
                },
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert browser.returncode == 0, browser.stdout + browser.stderr
            assert "ada@lab.example" in browser.stdout, "the page showed the invited email"
            with httpx.Client(base_url=base, timeout=30) as ada:
                again = ada.post(f"/auth/invites/{token.group(1)}/accept", json={"name": "Eve", "password": "x" * 20})
                assert again.status_code == 410
                login = ada.post("/auth/login", json={"email": "ada@lab.example", "password": "analytical engine 1843"})
                assert login.status_code == 200
                csrf(ada, login)
                key_path = tmp_path / "ada"
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ada", "-f", str(key_path)], check=True
                )
                key = ada.post("/me/ssh-keys", json={"public_key": (tmp_path / "ada.pub").read_text()})
                assert key.status_code == 201, key.text
                assert ada.get("/audit-log").status_code == 403, "users do not read the audit log"

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                users = admin.get("/users").json()["items"]
                ada_row = next(u for u in users if u["email"] == "ada@lab.example")
                if ada_row["invite_delivery"] and ada_row["invite_delivery"]["state"] == "sent":
                    break
                time.sleep(0.5)
            assert ada_row["status"] == "active"
            assert ada_row["has_ssh_key"] is True
            assert ada_row["invite_delivery"]["state"] == "sent"
            actions = [e["action"] for e in admin.get("/audit-log", params={"limit": 500}).json()["items"]]
            for expected in ("user.invited", "user.invite_accepted", "auth.login", "ssh_key.added"):
                assert expected in actions
    finally:
        run.interrupt()
        run.close()
