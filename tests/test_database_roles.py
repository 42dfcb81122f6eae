"""Issue 12, finding 2: each service's database role may read and write its own schema only.

The attacker holds one service's credentials (here identity's: a leaked environment, a compromised
process) and tries to reach what another service keeps, to change the schema it owns, or to write
somewhere else. PostgreSQL itself must refuse each of them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gpulab_core import db
from gpulab_devstack.testing import BACKEND, Stack

REFUSED = ("permission denied", "must be owner")


async def refused(url: str, statement: str) -> str:
    """The error PostgreSQL answers `statement` with, run as the role of `url`; fails if it runs."""
    engine = db.create_engine(url, schema=None, app_name="attacker")
    try:
        with pytest.raises(DBAPIError) as error:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        return str(error.value.orig)
    finally:
        await engine.dispose()


async def test_identity_role_writing_the_scheduler_schema_is_refused(migrated: Stack) -> None:
    identity = migrated.service_database_url("identity")
    for statement in (
        # Freeing every GPU, or forging an assignment event through the scheduler's outbox.
        "UPDATE scheduler.assignments SET status = 'revoked', ended_at = now()",
        "INSERT INTO scheduler.outbox (id, subject, payload, headers) "
        "VALUES (gen_random_uuid(), 'gpulab.events.scheduler.assignment_ended', '{}', '{}')",
        "DELETE FROM scheduler.outbox",
        "SELECT count(*) FROM scheduler.assignments",
    ):
        error = await refused(identity, statement)
        assert any(r in error for r in REFUSED), (statement, error)


async def test_every_service_role_reaches_its_own_schema_only(migrated: Stack) -> None:
    for service in BACKEND:
        url = migrated.service_database_url(service)
        engine = db.create_engine(url, schema=None, app_name="role-check")
        try:
            async with engine.begin() as conn:  # its own: what the service does all day
                await conn.execute(text(f"SELECT count(*) FROM {service}.outbox"))
        finally:
            await engine.dispose()
        for other in BACKEND:
            if other != service:
                error = await refused(url, f"SELECT count(*) FROM {other}.outbox")
                assert "permission denied" in error, (service, other, error)
        # No DDL, not even in its own schema (migrations run as the owner), and nowhere else to write.
        for statement in (
            f"CREATE TABLE {service}.smuggled (x int)",
            f"ALTER TABLE {service}.outbox ADD COLUMN smuggled int",
            "CREATE TABLE public.smuggled (x int)",
            "CREATE SCHEMA smuggled",
        ):
            error = await refused(url, statement)
            assert any(r in error for r in REFUSED), (service, statement, error)


def test_a_migrate_job_needs_only_the_two_database_urls(migrated: Stack) -> None:
    """The migrate step is handed no other secret (compose's migrate jobs get just these two):
    identity's migrate runs, and grants identity's role, without identity's keys or NATS."""
    env = {
        "PATH": "/usr/bin:/bin",
        "GPULAB_DATABASE_URL": migrated.service_database_url("identity"),
        "GPULAB_MIGRATION_DATABASE_URL": migrated.database_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "gpulab_identity", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "schema is at the latest migration" in done.stdout
