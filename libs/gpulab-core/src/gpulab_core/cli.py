"""The command line every service shares: `python -m gpulab_<name> [serve|migrate]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from gpulab_core import events, migrations, natsauth
from gpulab_core.natsconn import connect_nats
from gpulab_core.runtime import ServiceSpec, serve
from gpulab_core.settings import CoreSettings, DatabaseSettings, load_settings, redact

# How long `wait-for-schema` waits for the migrate step: a first install pulls images and starts
# PostgreSQL before that step can even begin. Kubernetes restarts the init container after it gives up.
WAIT_FOR_SCHEMA_TIMEOUT_S = 900.0


async def make_stream(settings: CoreSettings) -> None:
    """The setup step: create the event stream, or bring it to the current config, as the `setup`
    identity (docs/adr/0016); services only wait for it."""
    nc = await connect_nats(
        settings.nats_url,
        "gpulab-setup",
        user=settings.nats_user,
        password=settings.nats_password.get_secret_value() if settings.nats_password else None,
        inbox_prefix=natsauth.inbox_prefix(natsauth.SETUP),
    )
    try:
        await events.ensure_stream(nc.jetstream(), replicas=settings.events_replicas)
    finally:
        await nc.close()


def main(spec: ServiceSpec, service_dir: Path | None, argv: Sequence[str] | None = None) -> int:
    program = f"gpulab-{spec.name}"
    parser = argparse.ArgumentParser(prog=program, description=f"gpulab {spec.name} service")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service until SIGTERM/SIGINT (the default)")
    if service_dir is not None:
        sub.add_parser("migrate", help="bring this service's schema to the latest migration, then exit")
        wait = sub.add_parser(
            "wait-for-schema",
            help="wait until this service's schema is at this code's latest migration (read as the service's "
            "own role; migrating is `migrate`'s job), then exit",
        )
        wait.add_argument("--timeout-s", type=float, default=WAIT_FOR_SCHEMA_TIMEOUT_S, help="give up (exit 1) after")
    sub.add_parser("version", help="print the version")
    sub.add_parser("events-stream", help="create or update the event stream (as the `setup` NATS identity), then exit")
    args = parser.parse_args(argv)

    if args.command == "migrate":
        # Only what migrating needs: the migrate job is not handed the service's other secrets.
        return _migrate(program, spec, service_dir, load_settings(migration_settings(spec.settings_cls), program))
    if args.command == "wait-for-schema":
        # The database settings only, and of them only the service's own URL is needed: no owner.
        own = load_settings(migration_settings(spec.settings_cls), program)
        return _wait_for_schema(program, spec, service_dir, own, args.timeout_s)
    if args.command == "events-stream":
        # Only the NATS settings: the setup job is handed no database URL or service secret.
        try:
            asyncio.run(make_stream(load_settings(CoreSettings, program)))
        except Exception as exc:
            print(f"{program}: could not set up the event stream: {redact(str(exc))}", file=sys.stderr)  # noqa: T201
            return 1
        print(f"{program}: the event stream is set up")  # noqa: T201
        return 0
    settings = load_settings(spec.settings_cls, program)
    if args.command == "version":
        print(f"{program} {spec.version}")  # noqa: T201
        return 0
    try:
        asyncio.run(serve(spec, settings))
    except ConnectionError as exc:
        print(f"{program}: {redact(str(exc))}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def migration_settings(settings_cls: type[CoreSettings]) -> type[DatabaseSettings]:
    """The database settings of a service's `settings_cls`, with its defaults, and nothing else."""
    assert issubclass(settings_cls, DatabaseSettings), "a service with migrations reads DatabaseSettings"
    default = settings_cls.model_fields["database_url"].default

    class MigrationSettings(DatabaseSettings):
        database_url: str = default

    return MigrationSettings


def _migrate(program: str, spec: ServiceSpec, service_dir: Path | None, settings: DatabaseSettings) -> int:
    assert service_dir is not None, "only a service with migrations has the migrate command"
    assert spec.tables is not None, "a service with migrations owns a schema"
    try:
        migrations.upgrade(service_dir, spec.tables.schema, settings.database_url, settings.migration_database_url)
    except Exception as exc:
        # A driver's message may quote the URL it was given, password included.
        print(f"{program}: migration failed: {redact(str(exc))}", file=sys.stderr)  # noqa: T201
        return 1
    print(f"{program}: schema is at the latest migration")  # noqa: T201
    return 0


def _wait_for_schema(
    program: str, spec: ServiceSpec, service_dir: Path | None, settings: DatabaseSettings, timeout_s: float
) -> int:
    assert service_dir is not None, "only a service with migrations has the wait-for-schema command"
    assert spec.tables is not None, "a service with migrations owns a schema"

    def report(line: str) -> None:
        print(f"{program}: {line}", file=sys.stderr, flush=True)  # noqa: T201

    wait = migrations.wait_until_current(
        service_dir, spec.tables.schema, settings.database_url, timeout_s, report=report
    )
    try:
        asyncio.run(wait)
    except TimeoutError as exc:
        print(f"{program}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print(f"{program}: schema is at this code's latest migration")  # noqa: T201
    return 0
