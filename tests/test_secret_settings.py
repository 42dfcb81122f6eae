"""Secrets copied from an example are refused at start, whichever secret setting of whichever service."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from gpulab_core.settings import ENV_PREFIX, is_secret_field, load_settings
from gpulab_gateway.config import Settings as GatewaySettings
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_inventory.config import Settings as InventorySettings
from gpulab_notify.config import Settings as NotifySettings
from gpulab_pki.config import Settings as PkiSettings
from gpulab_scheduler.config import Settings as SchedulerSettings

SERVICES: list[type[BaseSettings]] = [
    GatewaySettings,
    IdentitySettings,
    InventorySettings,
    NotifySettings,
    PkiSettings,
    SchedulerSettings,
]
# deploy/.env.example's placeholders, as compose.yaml puts them into each URL.
URL_PLACEHOLDERS = {
    "database_url": "postgresql://gpulab_inventory:change-me-postgres-inventory-password@postgres:5432/gpulab",
    "migration_database_url": "postgresql://gpulab:change-me-postgres-password@postgres:5432/gpulab",
    "nats_url": "nats://gpulab:change-me-nats-password@nats:4222",
}
# As long as a real key must be (gpulab_core.sealing.MIN_KEY_CHARS), so that only its being a placeholder is wrong.
PLACEHOLDER = "change-me-0123456789abcdef0123456789"
# The secrets a service cannot start without, each set to a good value: the one under test replaces its own.
REQUIRED_SECRETS = {
    "GPULAB_INVITE_SEAL_KEY": "a-good-random-invite-seal-key-0123456789",
    "GPULAB_AUDIT_HMAC_KEY": "a-good-random-audit-hmac-key-0123456789",
}


def secret_settings() -> list[tuple[type[BaseSettings], str, str]]:
    cases = []
    for cls in SERVICES:
        for name in cls.model_fields:
            if is_secret_field(cls, name):
                cases.append((cls, name, PLACEHOLDER))
            elif name in URL_PLACEHOLDERS:
                cases.append((cls, name, URL_PLACEHOLDERS[name]))
    return cases


def test_every_service_has_its_secrets_checked() -> None:
    # What the next test covers: if a secret setting is added, it is in this list by its type.
    names = {(cls.__module__.split(".")[0], name) for cls, name, _ in secret_settings()}
    assert {
        ("gpulab_identity", "bootstrap_admin_password"),
        ("gpulab_notify", "smtp_password"),
        ("gpulab_pki", "ca_passphrase"),
        ("gpulab_scheduler", "netbird_api_token"),
        ("gpulab_gateway", "nats_url"),
        ("gpulab_inventory", "database_url"),
        ("gpulab_identity", "invite_seal_key"),
        ("gpulab_identity", "audit_hmac_key"),
        ("gpulab_notify", "invite_seal_key"),
    } <= names


@pytest.mark.parametrize(("cls", "name", "value"), secret_settings(), ids=lambda v: getattr(v, "__module__", v))
def test_a_placeholder_secret_from_an_example_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cls: type[BaseSettings], name: str, value: str
) -> None:
    # The attack: a deployment left `change-me-...` from deploy/.env.example (or a README) in place,
    # and anyone who read the example knows the password. PostgreSQL and NATS take it; gpulab must not.
    variable = ENV_PREFIX + name.upper()
    for other, good in REQUIRED_SECRETS.items():
        monkeypatch.setenv(other, good)
    monkeypatch.setenv(variable, value)
    if cls is NotifySettings and name == "smtp_password":
        monkeypatch.setenv("GPULAB_SMTP_USERNAME", "gpulab")
    with pytest.raises(SystemExit) as exited:
        load_settings(cls, "gpulab-test")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid setting {variable}" in err, err
    assert "placeholder" in err, err
    assert "change-me-" not in err, "the secret itself is never printed"
