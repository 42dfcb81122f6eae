"""notify's settings: a bad value stops the process at start with one line, and never shows the password."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gpulab_devstack.testing import TEST_INVITE_SEAL_KEY
from gpulab_notify.config import Settings

SECRET = "hunter2-secret"


@pytest.mark.parametrize(
    ("env", "names", "never_shows"),
    [
        ({"GPULAB_SMTP_SECURITY": "ssl"}, "GPULAB_SMTP_SECURITY='ssl'", None),
        ({"GPULAB_SMTP_PORT": "0"}, "GPULAB_SMTP_PORT", None),
        ({"GPULAB_SMTP_FROM": "gpulab"}, "GPULAB_SMTP_FROM", None),
        ({"GPULAB_SMTP_CA_FILE": "/nonexistent/ca.pem"}, "GPULAB_SMTP_CA_FILE", None),
        ({"GPULAB_SMTP_PASSWORD": SECRET}, "GPULAB_SMTP_USERNAME", SECRET),
        (
            {
                "GPULAB_SMTP_HOST": "smtp.example.org",
                "GPULAB_SMTP_SECURITY": "none",
                "GPULAB_SMTP_USERNAME": "u",
                "GPULAB_SMTP_PASSWORD": SECRET,
            },
            "GPULAB_SMTP_SECURITY='none'",
            SECRET,
        ),
    ],
)
def test_a_bad_smtp_setting_stops_notify_at_start_with_one_line(
    env: dict[str, str], names: str, never_shows: str | None
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
    clean["GPULAB_INVITE_SEAL_KEY"] = TEST_INVITE_SEAL_KEY  # required: only the SMTP setting is wrong
    done = subprocess.run(
        [sys.executable, "-m", "gpulab_notify"], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"gpulab-notify: invalid setting {names}"), done.stderr
    if never_shows is not None:
        assert never_shows not in done.stderr


def test_the_port_follows_the_security_mode_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("GPULAB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GPULAB_INVITE_SEAL_KEY", TEST_INVITE_SEAL_KEY)  # required, not what is tested
    assert Settings().smtp_security == "starttls", "clear text only when chosen"
    assert Settings().smtp_effective_port == 587
    assert Settings(smtp_security="none").smtp_effective_port == 1025
    assert Settings(smtp_security="tls").smtp_effective_port == 465
    assert Settings(smtp_security="tls", smtp_port=2465).smtp_effective_port == 2465
    monkeypatch.setenv("GPULAB_SMTP_USERNAME", "")
    monkeypatch.setenv("GPULAB_SMTP_PASSWORD", "")
    assert Settings().smtp_password is None, "an empty variable means unset (compose, .env files)"
