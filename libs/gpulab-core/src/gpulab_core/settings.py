"""Settings shared by every service, read from `GPULAB_*` environment variables.

A bad value must stop the process at start with one line that names the variable, so
`load_settings` turns pydantic's multi-line report into exactly that.
"""

from __future__ import annotations

import ipaddress
import re
import sys
import typing
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretBytes, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "GPULAB_"

# The password of a URL (`scheme://user:password@host`), up to the `@` of that URL: a list of URLs
# (`GPULAB_NATS_URL`, comma-separated) is redacted URL by URL.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s,]*):[^@\s,]*@")


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`: what may be printed or logged
    of a database or NATS URL (the user, host and port say which one, the password nothing)."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)


# The starts of values copied from examples (deploy/.env.example, compose files, READMEs) instead of
# chosen: refused for every secret setting (SecretStr fields and the password of a URL setting).
PLACEHOLDER_PREFIXES = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "example", "placeholder")
# The settings that are URLs and may carry a password (`scheme://user:password@host`).
URL_SETTINGS = ("database_url", "migration_database_url", "nats_url")


def is_placeholder(secret: str | bytes) -> bool:
    """Whether a secret is a placeholder from an example (compared without case or surrounding space)."""
    text = (secret.decode(errors="replace") if isinstance(secret, bytes) else secret).strip().lower()
    return text.startswith(PLACEHOLDER_PREFIXES)


def url_passwords(value: str) -> list[str]:
    """The passwords in a URL setting (a comma-separated list for NATS), percent-decoded."""
    found = []
    for url in value.split(","):
        try:
            password = urlsplit(url.strip()).password
        except ValueError:
            continue  # not a URL at all: the setting's own check says so
        if password:
            found.append(unquote(password))
    return found


def is_secret_field(settings_cls: type[BaseSettings], name: str) -> bool:
    """Whether the field holds a secret (SecretStr or SecretBytes, optional or not): never shown."""
    field = settings_cls.model_fields.get(name)
    if field is None:
        return False
    annotation = field.annotation
    return annotation in (SecretStr, SecretBytes) or any(
        a in (SecretStr, SecretBytes) for a in typing.get_args(annotation)
    )


LogLevel = Literal["debug", "info", "warning", "error"]


class CoreSettings(BaseSettings):
    """What every gpulab process reads. Services subclass it and add their own fields."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # The local run's embedded server listens here (see tools/devstack); a deployment sets it.
    nats_url: str = "nats://127.0.0.1:42229"
    data_dir: Path = Path(".gpulab")
    public_url: str = "http://localhost:8080"
    log_level: LogLevel = "info"
    log_format: Literal["json", "text"] = "json"
    # 0 picks a free port, so that replicas can run side by side on one host.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # How long an RPC caller waits for a reply before it reports `unavailable`.
    rpc_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # Requests handled at once per process; beyond that NATS holds them (backpressure).
    rpc_max_inflight: int = Field(default=64, ge=1, le=10_000)
    otel_exporter_otlp_endpoint: str | None = None
    # JetStream replicas of GPULAB_EVENTS: 1 on one host, 3 on a NATS cluster.
    events_replicas: int = Field(default=1, ge=1, le=5)

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_url).hostname or "localhost"

    def listener_names(self, raw: str | None) -> tuple[list[str], list[str]]:
        """(DNS names, IP addresses) for a gRPC listener's certificate, in order, without repeats:
        `raw` comma-separated, or by default the public URL's host plus localhost and 127.0.0.1."""
        names = [n.strip() for n in raw.split(",")] if raw else [self.public_host, "localhost", "127.0.0.1"]
        dns: list[str] = []
        ips: list[str] = []
        for name in names:
            if not name:
                continue
            try:
                ip = str(ipaddress.ip_address(name.strip("[]")))
            except ValueError:
                if name.lower() not in dns:
                    dns.append(name.lower())
            else:
                if ip not in ips:
                    ips.append(ip)
        return dns, ips

    def public_target(self, port: int) -> str:
        """ "host:port" on the public URL's host, for a gRPC client to dial."""
        host = self.public_host
        if ":" in host:  # an IPv6 literal needs brackets in host:port
            host = f"[{host}]"
        return f"{host}:{port}"

    @field_validator("*", mode="after")
    @classmethod
    def _no_placeholder_secret(cls, value: object, info: ValidationInfo) -> object:
        """One rule for every secret setting, of this class and of each service's subclass: a value
        copied from an example is refused (the error line never shows a secret: `describe_error`)."""
        if isinstance(value, SecretStr | SecretBytes):
            secrets: list[str | bytes] = [value.get_secret_value()]
        elif info.field_name in URL_SETTINGS and isinstance(value, str):
            secrets = list(url_passwords(value))
        else:
            return value
        if any(is_placeholder(s) for s in secrets):
            what = "the password in this URL" if info.field_name in URL_SETTINGS else "this secret"
            raise ValueError(f"{what} is a placeholder from an example (change-me...); set a random one")
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str) -> str:
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError("must be nats:// (or tls://) URLs, comma-separated")
        return value


def service_role(service: str) -> str:
    """The PostgreSQL role a service runs as: it may read and write its own schema and nothing else
    (docs/adr/0009). Its migrations run as the owner, who grants it exactly that."""
    return f"gpulab_{service}"


def local_database_url(service: str) -> str:
    """Where the local run's embedded PostgreSQL has `service`'s role (tools/devstack)."""
    return f"postgresql://{service_role(service)}@127.0.0.1:54329/gpulab"


class DatabaseSettings(CoreSettings):
    """What a service that owns a schema reads on top of `CoreSettings`. The gateway does not:
    it faces the internet and holds no database credentials at all."""

    # The service's own role (`service_role`): each service's Settings sets its local-run default.
    database_url: str
    # Who runs migrations (owns the schemas); unset: the same role as the service. When it differs,
    # the service's role gets only DML on its own schema, and none on append-only tables' history.
    migration_database_url: str | None = None
    db_pool_size: int = Field(default=5, ge=1, le=200)

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value


S = TypeVar("S", bound=BaseSettings)


def describe_error(
    exc: ValidationError, settings_cls: type[BaseSettings] | None = None, prefix: str = ENV_PREFIX
) -> str:
    """One line per bad setting: `GPULAB_X='value': reason`. The value of a secret field is left out
    (`GPULAB_X: reason`), and every URL's password shows as `***`: this line goes to logs."""
    parts = []
    for err in exc.errors():
        if not err["loc"]:  # a rule about the settings as a whole names its variables itself
            parts.append(redact(err["msg"].removeprefix("Value error, ")))
            continue
        name = prefix + "_".join(str(p) for p in err["loc"]).upper()
        value = err.get("input")
        field = str(err["loc"][0]) if err["loc"] else ""
        secret = settings_cls is not None and is_secret_field(settings_cls, field)
        shown = "" if isinstance(value, dict) or secret else f"={redact(repr(value))}"
        parts.append(f"{name}{shown}: {redact(err['msg'])}")
    return "; ".join(parts)


def load_settings(cls: type[S], program: str) -> S:
    """Build the settings or exit with status 2 and one clear line naming the variable."""
    try:
        return cls()
    except ValidationError as exc:
        print(f"{program}: invalid setting {describe_error(exc, cls)}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
