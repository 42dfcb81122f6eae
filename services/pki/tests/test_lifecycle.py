"""The CA's first start, concurrent starts, and a start with the wrong passphrase, on a database of their own."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from gpulab_core import migrations
from gpulab_core.db import create_engine
from gpulab_devstack.testing import Stack
from gpulab_pki.main import SERVICE_DIR

from .conftest import start_pki


@pytest.fixture(scope="module")
def fresh_db(migrated: Stack) -> Stack:
    """A second database with the pki schema migrated and no CA yet; a Stack pointing at it."""
    name = "pki_lifecycle"

    async def create() -> None:
        engine = create_engine(migrated.database_url, schema=None, app_name="pki-tests", isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            await conn.execute(text(f"CREATE DATABASE {name}"))
        await engine.dispose()

    asyncio.run(create())

    class Fresh(Stack):
        @property
        def database_url(self) -> str:
            return make_url(migrated.database_url).set(database=name).render_as_string(hide_password=False)

        def service_database_url(self, service: str) -> str:
            url = make_url(migrated.service_database_url(service))
            return url.set(database=name).render_as_string(hide_password=False)

    fresh = Fresh(migrated.root, migrated.pg, migrated.nats)
    migrations.upgrade(SERVICE_DIR, "pki", fresh.service_database_url("pki"), fresh.database_url)
    return fresh


async def test_two_replicas_starting_at_once_create_one_ca(fresh_db: Stack, tmp_path: Path) -> None:
    first, second = await asyncio.gather(start_pki(fresh_db, tmp_path / "a"), start_pki(fresh_db, tmp_path / "b"))
    try:
        engine = create_engine(fresh_db.database_url, schema=None, app_name="pki-tests")
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM pki.authority")) == 1
            row = (await conn.execute(text("SELECT key_pem, certificate_pem FROM pki.authority"))).one()
        await engine.dispose()
        assert row.key_pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        # Each replica serves its enrollment port with a certificate from that one CA. (Not ca.get over
        # NATS: the session's other pki replicas share the queue group and may answer it.)
        for replica in (first, second):
            tls = ssl.create_default_context(cadata=row.certificate_pem)
            _reader, writer = await asyncio.open_connection(
                "127.0.0.1", replica.port, ssl=tls, server_hostname="localhost"
            )
            writer.close()
    finally:
        await asyncio.gather(first.runtime.stop(), second.runtime.stop())


def run_pki(stack: Stack, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = stack.env("pki", GPULAB_ENROLL_PORT="0", GPULAB_DATA_DIR=str(tmp_path), **extra)
    return subprocess.run([sys.executable, "-m", "gpulab_pki"], env=env, capture_output=True, text=True, timeout=60)


async def test_wrong_passphrase_refuses_to_start_with_one_line(fresh_db: Stack, tmp_path: Path) -> None:
    # The CA exists: a replica with the right passphrase has started (here, or in the test above).
    await (await start_pki(fresh_db, tmp_path / "right")).runtime.stop()
    done = run_pki(fresh_db, tmp_path, GPULAB_CA_PASSPHRASE="a-completely-different-passphrase")
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("gpulab-pki:")]
    assert lines == [
        "gpulab-pki: cannot start: the CA key cannot be decrypted: wrong passphrase, or the key file is corrupt"
    ]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("value", "code", "says"),
    [
        # A placeholder is refused with the settings, as every secret setting's (gpulab_core.settings).
        (
            "change-me-please-now-really",
            2,
            "gpulab-pki: invalid setting GPULAB_CA_PASSPHRASE: Value error, this secret",
        ),
        ("short", 1, "gpulab-pki: cannot start: the CA key passphrase"),
    ],
)
def test_weak_passphrase_refuses_to_start_without_echoing_it(
    fresh_db: Stack, tmp_path: Path, value: str, code: int, says: str
) -> None:
    done = run_pki(fresh_db, tmp_path, GPULAB_CA_PASSPHRASE=value)
    assert done.returncode == code
    assert says in done.stderr
    assert value not in done.stderr
    assert "Traceback" not in done.stderr


def test_token_ttl_never_is_refused(fresh_db: Stack, tmp_path: Path) -> None:
    done = run_pki(fresh_db, tmp_path, GPULAB_ENROLLMENT_TOKEN_TTL_HOURS="never")
    assert done.returncode == 2
    assert "GPULAB_ENROLLMENT_TOKEN_TTL_HOURS" in done.stderr
