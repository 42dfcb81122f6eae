"""Settings: GPULAB_ variables, defaults, and one clear line on a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpulab_core.settings import CoreSettings, load_settings


def test_values_come_from_gpulab_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPULAB_RPC_TIMEOUT_S", "2.5")
    monkeypatch.setenv("GPULAB_NATS_URL", "nats://a:4222,nats://b:4222")
    monkeypatch.setenv("RPC_TIMEOUT_S", "99")  # without the prefix: not ours
    settings = CoreSettings()
    assert settings.rpc_timeout_s == 2.5
    assert settings.nats_url == "nats://a:4222,nats://b:4222"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("GPULAB_RPC_TIMEOUT_S", "soon", "valid number"),
        ("GPULAB_METRICS_PORT", "70000", "less than or equal to 65535"),
        ("GPULAB_DATABASE_URL", "mysql://x/y", "postgresql://"),
        ("GPULAB_NATS_URL", "http://x", "nats://"),
        ("GPULAB_LOG_LEVEL", "loud", "'debug'"),
    ],
)
def test_bad_value_exits_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        load_settings(CoreSettings, "gpulab-test")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"gpulab-test: invalid setting {name}={value!r}: ")
    assert says in err


def test_a_service_refuses_to_start_on_a_bad_value_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpulab_identity"],
        env={"GPULAB_HEARTBEAT_INTERVAL_S": "1", "GPULAB_RPC_TIMEOUT_S": "-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gpulab-identity: invalid setting GPULAB_RPC_TIMEOUT_S='-1': Input should be greater than 0"
    ]
