"""Alembic glue shared by every service.

Each service keeps its migrations in `services/<name>/migrations/` and its version table in its own
schema; autogenerate never sees another schema. Migrations run as a one-shot step
(`python -m gpulab_<name> migrate`), serialised by an advisory lock so two runs at once are safe.
Where that step runs apart from the service's replicas (Kubernetes: a Job), each replica first waits
until the schema is at its own migrations' head (`wait_until_current`), as the service's own role.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData, make_url, text
from sqlalchemy.engine import Connection

from gpulab_core.db import async_url, create_engine
from gpulab_core.settings import redact


def alembic_config(service_dir: Path, database_url: str) -> Config:
    cfg = Config(str(service_dir / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_dir / "migrations"))
    cfg.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(
    service_dir: Path, schema: str, database_url: str, migration_url: str | None = None, revision: str = "head"
) -> None:
    """Migrate as the owner (`migration_url`, default `database_url`), then, when the services run as
    another role, give that role exactly what it may do in this schema (see `grant_app_access`)."""
    owner_url = migration_url or database_url
    command.upgrade(alembic_config(service_dir, owner_url), revision)
    app_role = make_url(async_url(database_url)).username
    if app_role and app_role != make_url(async_url(owner_url)).username:
        asyncio.run(_grant(owner_url, schema, app_role))


def script_directory(service_dir: Path) -> ScriptDirectory:
    """The service's migrations as this code knows them (no database is touched)."""
    return ScriptDirectory.from_config(alembic_config(service_dir, "postgresql://unused@localhost/unused"))


def schema_is_current(script: ScriptDirectory, applied: Sequence[str]) -> bool:
    """Whether code with the migrations `script` may serve a schema whose version table holds `applied`:
    every head of `script` is applied or lies below an applied revision. A revision `script` does not
    know was made by a later release (a rollback, or an old replica starting during a rollout): that
    schema is served too, as the replicas of this release already served it before the later one."""
    if not applied:
        return False
    for revision in applied:
        try:
            script.get_revision(revision)
        except CommandError:  # alembic's wrapping of "Can't locate revision"
            return True
    below = {rev.revision for rev in script.iterate_revisions(tuple(applied), "base")}
    return set(script.get_heads()) <= below


async def applied_revisions(database_url: str, schema: str) -> list[str]:
    """The revisions in `schema`'s version table, read with `database_url`'s role (the service's own,
    which may read its schema once the migrations granted it). Raises while the schema, the table or
    the grant is not there yet."""
    engine = create_engine(database_url, schema=None, app_name=f"gpulab-wait-{schema}", poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as conn:
            table = f"{conn.dialect.identifier_preparer.quote(schema)}.alembic_version"
            return [str(v) for v in (await conn.execute(text(f"SELECT version_num FROM {table}"))).scalars()]
    finally:
        await engine.dispose()


async def wait_until_current(
    service_dir: Path,
    schema: str,
    database_url: str,
    timeout_s: float,
    *,
    interval_s: float = 2.0,
    report: Callable[[str], None] = lambda _line: None,
) -> None:
    """Return once `schema` may be served by this code (`schema_is_current`); raise TimeoutError, saying
    what it waited for, after `timeout_s`. `report` gets one line each time the reason changes."""
    script = script_directory(service_dir)
    deadline = asyncio.get_running_loop().time() + timeout_s
    reason = ""
    while True:
        try:
            applied = await applied_revisions(database_url, schema)
        except Exception as exc:
            # A driver's message may quote the URL it was given, password included; its first line says enough.
            now = f"cannot read it yet: {redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__}"
        else:
            if schema_is_current(script, applied):
                return
            now = f"it is at {', '.join(applied) or 'no revision'}, this code needs {', '.join(script.get_heads())}"
        if now != reason:
            reason = now
            report(f"waiting for the {schema} schema's migrations: {reason}")
        if asyncio.get_running_loop().time() >= deadline:
            raise TimeoutError(f"the {schema} schema is not migrated after {timeout_s:g} s: {reason}")
        await asyncio.sleep(interval_s)


# Tables whose comment starts with this are append-only: the app role may read and insert, nothing else.
APPEND_ONLY = "append-only"


async def _grant(owner_url: str, schema: str, app_role: str) -> None:
    engine = create_engine(owner_url, schema=None, app_name=f"gpulab-migrate-{schema}", poolclass=sa.pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(grant_app_access, schema, app_role)
    finally:
        await engine.dispose()


def grant_app_access(conn: Connection, schema: str, app_role: str) -> None:
    """Idempotent: re-run after every migration, so new tables are covered. The services' role
    owns nothing, so it can neither alter tables nor disable the triggers that guard them."""
    quote = conn.dialect.identifier_preparer.quote
    role, sch = quote(app_role), quote(schema)
    conn.execute(text(f"GRANT USAGE ON SCHEMA {sch} TO {role}"))
    conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {sch} TO {role}"))
    conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {sch} TO {role}"))
    append_only = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind = 'r' AND obj_description(c.oid, 'pg_class') LIKE :p"
        ),
        {"s": schema, "p": APPEND_ONLY + "%"},
    ).scalars()
    for table in append_only:
        conn.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {sch}.{quote(table)} FROM {role}"))


def run_env(schema: str, metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by gpulab_core.migrations.alembic_config"

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return name == schema if type_ == "schema" else True

    def configure(connection: Connection | None = None, **kw: Any) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
            **kw,
        )

    if context.is_offline_mode():
        configure(url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        lock = zlib.crc32(f"gpulab-migrate:{schema}".encode())
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock})
        try:
            connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            connection.commit()
            configure(connection)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
            connection.commit()

    async def main() -> None:
        engine = create_engine(url, schema=None, app_name=f"gpulab-migrate-{schema}", poolclass=sa.pool.NullPool)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(main())


def create_core_tables_v1(op: Any, schema: str) -> None:
    """The outbox and processed-events tables, version 1. Frozen: a change gets a new function."""
    from sqlalchemy.dialects import postgresql as pg

    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("id", name="uq_outbox_id"),
        schema=schema,
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
        schema=schema,
    )


def create_outbox_dead_letters_v1(op: Any, schema: str) -> None:
    """The outbox's dead-letter table (gpulab_core.outbox.dead_letters_table), version 1. Frozen."""
    from sqlalchemy.dialects import postgresql as pg

    op.create_table(
        "outbox_dead_letters",
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("dead_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox_dead_letters"),
        sa.UniqueConstraint("id", name="uq_outbox_dead_letters_id"),
        schema=schema,
    )
