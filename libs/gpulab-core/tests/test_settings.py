"""Settings: GPULAB_ variables, defaults, and one clear line on a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import Field, SecretStr

from gpulab_core import db
from gpulab_core.natsconn import connect_nats
from gpulab_core.settings import CoreSettings, DatabaseSettings, load_settings, local_database_url


def test_values_come_from_gpulab_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPULAB_RPC_TIMEOUT_S", "2.5")
    monkeypatch.setenv("GPULAB_NATS_URL", "nats://a:4222,nats://b:4222")
    monkeypatch.setenv("RPC_TIMEOUT_S", "99")  # without the prefix: not ours
    settings = CoreSettings()
    assert settings.rpc_timeout_s == 2.5
    assert settings.nats_url == "nats://a:4222,nats://b:4222"


class ServiceSettings(DatabaseSettings):
    """What a service that owns a schema reads (each service's Settings names its role's default)."""

    database_url: str = local_database_url("test")


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
        load_settings(ServiceSettings, "gpulab-test")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"gpulab-test: invalid setting {name}={value!r}: ")
    assert says in err


def test_a_service_refuses_to_start_on_a_bad_value_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpulab_identity"],
        env={
            "GPULAB_HEARTBEAT_INTERVAL_S": "1",
            "GPULAB_RPC_TIMEOUT_S": "-1",
            "GPULAB_INVITE_SEAL_KEY": "a-good-random-invite-seal-key-0123456789",
            "GPULAB_AUDIT_HMAC_KEY": "a-good-random-audit-hmac-key-0123456789",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gpulab-identity: invalid setting GPULAB_RPC_TIMEOUT_S='-1': Input should be greater than 0"
    ]


SECRET = "s3cr3t-Pa55"


class WithSecret(ServiceSettings):
    api_token: SecretStr = Field(min_length=20)


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("GPULAB_DATABASE_URL", f"mysql://gpulab:{SECRET}@db/gpulab", "'mysql://gpulab:***@db/gpulab'"),
        ("GPULAB_MIGRATION_DATABASE_URL", f"mysql://gpulab:{SECRET}@db/gpulab", "'mysql://gpulab:***@db/gpulab'"),
        ("GPULAB_NATS_URL", f"nats://a:4222,http://gpulab:{SECRET}@b:4222", "'nats://a:4222,http://gpulab:***@b:4222'"),
        ("GPULAB_API_TOKEN", SECRET, None),
    ],
)
def test_a_refused_secret_setting_is_named_but_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str, shown: str | None
) -> None:
    # The attack: the start-up error line lands in journald, `docker logs` and CI output, readable
    # by far more people than the secret's own file.
    monkeypatch.setenv("GPULAB_API_TOKEN", "a-token-long-enough-to-pass")
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        load_settings(WithSecret, "gpulab-test")
    err = capsys.readouterr().err
    assert SECRET not in err
    assert err.startswith(f"gpulab-test: invalid setting {name}{'=' + shown if shown else ''}: "), err


async def test_an_unreachable_nats_is_named_without_its_password() -> None:
    with pytest.raises(ConnectionError) as failed:
        await connect_nats(f"nats://gpulab:{SECRET}@127.0.0.1:1", "redaction-test", wait_s=0.5)
    assert SECRET not in str(failed.value)
    assert "nats://gpulab:***@127.0.0.1:1" in str(failed.value)


def test_a_database_url_of_another_kind_is_refused_without_its_password() -> None:
    with pytest.raises(ValueError, match=r"mysql://gpulab:\*\*\*@db/x") as failed:
        db.async_url(f"mysql://gpulab:{SECRET}@db/x")
    assert SECRET not in str(failed.value)
