"""notify's settings: the SMTP transport (`GPULAB_SMTP_*`) and the delivery policy (`GPULAB_MAIL_*`)."""

from __future__ import annotations

import ipaddress
import ssl
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from gpulab_core.sealing import MIN_KEY_CHARS
from gpulab_core.settings import DatabaseSettings, local_database_url

SmtpSecurity = Literal["starttls", "tls", "none"]

# The ports each mode is registered for: submission with STARTTLS (RFC 6409), submissions over
# implicit TLS (RFC 8314); `none` is meant for a local mail catcher (Mailpit, aiosmtpd), which
# conventionally listens on 1025 because 25 needs root.
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 1025}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(DatabaseSettings):
    database_url: str = local_database_url("notify")
    metrics_port: int = 9105

    # Validated in declaration order, and a validator sees only the fields above it: the credentials
    # come first so that the checks on them can sit on fields whose values may be shown in an error
    # line (the password itself must never be).
    smtp_password: SecretStr | None = None
    # Opens the invite tokens identity sealed (gpulab_core.sealing); identity has the same value.
    invite_seal_key: SecretStr = Field(min_length=MIN_KEY_CHARS)
    smtp_username: str | None = Field(default=None, validate_default=True)
    smtp_host: str = Field(default="127.0.0.1", min_length=1)
    # Unset: the registered port of `smtp_security` (DEFAULT_PORTS).
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    # STARTTLS unless `none` is chosen explicitly: forgetting this setting must not send invite tokens
    # in clear text. The local run's catcher sets `none` itself (gpulab_devstack.run); a non-loopback
    # host with `none` is logged as a warning at start.
    smtp_security: SmtpSecurity = Field(default="starttls", validate_default=True)
    smtp_from: str = "gpulab <gpulab@localhost>"
    # The name in EHLO; unset: the host of GPULAB_PUBLIC_URL (smtplib's own default does a reverse
    # DNS lookup per connection, which can stall for seconds in containers).
    smtp_helo_name: str | None = None
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # PEM bundle to trust instead of the system store (a private CA); the certificate's name is always checked.
    smtp_ca_file: Path | None = None

    # Backoff after a temporary failure: initial * 2^(n-1), capped; given up after either limit.
    mail_retry_initial_s: float = Field(default=5.0, gt=0, le=3600)
    mail_retry_max_s: float = Field(default=300.0, gt=0, le=86400)
    # 300 attempts at the 5-minute cap is about 24 h, so with the defaults the age limit decides.
    mail_max_attempts: int = Field(default=300, ge=1, le=100_000)
    mail_give_up_after_s: float = Field(default=86400.0, gt=0)
    # How often each sender looks for due deliveries when nothing woke it (new ones wake it at once).
    mail_poll_s: float = Field(default=1.0, gt=0, le=60)
    # Sends in flight per process; each holds one DB connection for the length of its SMTP session.
    mail_concurrency: int = Field(default=2, ge=1, le=32)

    @field_validator("smtp_password", "smtp_username", "smtp_port", "smtp_helo_name", "smtp_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # compose and .env files pass `GPULAB_SMTP_USERNAME=` for "not set"; an empty login is never meant.
        return None if value == "" else value

    @field_validator("smtp_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be one line")
        _name, addr = parseaddr(value)
        if "@" not in addr:
            raise ValueError("must be an address such as 'gpulab <gpulab@example.org>'")
        return value

    @field_validator("smtp_username")
    @classmethod
    def _both_or_neither(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "smtp_password" not in info.data:
            return value  # the password was refused itself (a placeholder): that error says it
        if (value is None) != (info.data["smtp_password"] is None):
            raise ValueError("set both GPULAB_SMTP_USERNAME and GPULAB_SMTP_PASSWORD, or neither")
        return value

    @field_validator("smtp_security")
    @classmethod
    def _no_clear_text_credentials(cls, value: str, info: ValidationInfo) -> str:
        host = info.data.get("smtp_host", "")
        if value == "none" and info.data.get("smtp_password") is not None and not is_loopback(host):
            raise ValueError(f"refusing to send the SMTP password in clear text to {host}: use starttls or tls")
        return value

    @field_validator("smtp_ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        if not value.is_file():
            raise ValueError("no such file")
        try:  # refused here, in one line, rather than as a traceback at the first mail
            ssl.create_default_context(cafile=str(value))
        except ssl.SSLError as exc:
            raise ValueError(f"not a PEM bundle of CA certificates: {exc.reason}") from exc
        return value

    @property
    def smtp_effective_port(self) -> int:
        return self.smtp_port or DEFAULT_PORTS[self.smtp_security]
