"""`python -m gpulab_<service> wait-for-schema`: what each Kubernetes replica runs before it starts
(deploy/kubernetes), while the migrate Job, not the replica, migrates."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory

from gpulab_core import migrations
from gpulab_devstack.testing import BACKEND, Stack


def script(service: str) -> ScriptDirectory:
    return migrations.script_directory(importlib.import_module(f"gpulab_{service}.main").SERVICE_DIR)


def wait_for_schema(
    stack: Stack, service: str, database_url: str, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """The command as a replica runs it: its own role's URL and nothing else of the database."""
    env = {**stack.env(), "GPULAB_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", f"gpulab_{service}", "wait-for-schema", "--timeout-s", str(timeout_s)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("service", BACKEND)
def test_a_migrated_schema_is_served_at_once_as_the_services_own_role(migrated: Stack, service: str) -> None:
    done = wait_for_schema(migrated, service, migrated.service_database_url(service), timeout_s=30)
    assert done.returncode == 0, done.stderr
    assert "schema is at this code's latest migration" in done.stdout


def test_a_schema_it_cannot_read_yet_is_waited_for_and_the_reason_named_when_the_wait_ends(migrated: Stack) -> None:
    # Before the migrate Job has granted it, a service's role cannot read its schema: here identity's
    # role, which never may read the scheduler's, stands for it.
    url = migrated.service_database_url("identity")
    done = wait_for_schema(migrated, "scheduler", url, timeout_s=1)
    assert done.returncode == 1
    assert "the scheduler schema is not migrated after 1 s" in done.stderr
    assert "permission denied" in done.stderr
    assert "waiting for the scheduler schema's migrations" in done.stderr, "it says what it waits for while it waits"


def test_a_schema_behind_the_code_is_not_current_and_one_at_its_head_is() -> None:
    identity = script("identity")
    head = identity.get_current_head()
    assert head is not None
    older = identity.get_revision(head).down_revision
    assert isinstance(older, str), "identity has more than one migration, in a line"
    assert not migrations.schema_is_current(identity, [])
    assert not migrations.schema_is_current(identity, [older])
    assert migrations.schema_is_current(identity, [head])


def test_a_schema_a_later_release_migrated_is_served_so_that_a_rollback_can_start() -> None:
    assert migrations.schema_is_current(script("identity"), ["identity_20991231_2359_from_a_later_release"])
