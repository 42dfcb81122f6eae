"""pytest plugin: one real PostgreSQL and one real NATS (JetStream) per test session.

Loaded by the repository's root conftest. Nothing here is a mock: tests talk to the same servers
the local run starts, on free loopback ports, in a temporary folder removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import BaseModel

from gpulab_core.events import EVENT_SUBJECT_PREFIX, Event
from gpulab_core.sealing import open_invite_token
from gpulab_devstack import migrate_all
from gpulab_devstack.servers import DATABASE_SERVICES, EmbeddedNats, EmbeddedPostgres, free_port

BACKEND = DATABASE_SERVICES
TEST_CA_PASSPHRASE = "test-session-ca-passphrase-0123456789"
# identity seals invite tokens with it, notify opens them (gpulab_core.sealing); tests open them too,
# as notify does, to accept an invite (`invite_token`).
TEST_INVITE_SEAL_KEY = "test-session-invite-seal-key-0123456789abcdef"
# Keys the audit log's chain (identity only); an attacker in the tests does not know it.
TEST_AUDIT_HMAC_KEY = "test-session-audit-hmac-key-0123456789abcdef"
# The secrets each service reads, as a deployment gives them to that service alone.
SERVICE_SECRETS: dict[str, dict[str, str]] = {
    "identity": {"GPULAB_INVITE_SEAL_KEY": TEST_INVITE_SEAL_KEY, "GPULAB_AUDIT_HMAC_KEY": TEST_AUDIT_HMAC_KEY},
    "notify": {"GPULAB_INVITE_SEAL_KEY": TEST_INVITE_SEAL_KEY},
}


def pytest_configure(config: pytest.Config) -> None:  # noqa: ARG001 (pytest's hook signature)
    """Services built in the test process read their secrets from the environment, as in a
    deployment: the session's values (which `invite_token` opens with), whatever the shell had."""
    for service_secrets in SERVICE_SECRETS.values():
        os.environ.update(service_secrets)


def invite_token(data: dict[str, Any]) -> str:
    """The token of an `identity.user_invited` event's data, opened as notify opens it."""
    return open_invite_token(TEST_INVITE_SEAL_KEY, uuid.UUID(str(data["invite_id"])), str(data["sealed_token"]))


@dataclass
class Stack:
    root: Path
    pg: EmbeddedPostgres
    nats: EmbeddedNats

    @property
    def database_url(self) -> str:
        """The superuser's URL: for tests that set up or inspect anything."""
        return self.pg.url

    def service_database_url(self, service: str) -> str:
        """`service`'s own role: what that service's process connects as (its schema only)."""
        return self.pg.service_url(service)

    @property
    def nats_url(self) -> str:
        return self.nats.url

    def env(self, service: str | None = None, **extra: str) -> dict[str, str]:
        """Environment for `service`'s process pointed at this stack: its own database role, and
        none for the gateway (nor for `None`: a process that is no service, e.g. the agent)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPULAB_")}
        if service in BACKEND:
            env.update(
                GPULAB_DATABASE_URL=self.service_database_url(service),
                GPULAB_MIGRATION_DATABASE_URL=self.database_url,
            )
        env.update(SERVICE_SECRETS.get(service or "", {}))
        env.update(
            GPULAB_NATS_URL=self.nats_url,
            GPULAB_DATA_DIR=str(self.root / "data"),
            GPULAB_METRICS_PORT="0",
            GPULAB_ENROLL_PORT="0",
            GPULAB_HEARTBEAT_PORT="0",
            # One CA per session database: every pki started against it must open the same key.
            GPULAB_CA_PASSPHRASE=TEST_CA_PASSPHRASE,
            GPULAB_LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    logs = root / "logs"
    logs.mkdir()
    with open(logs / "postgres.log", "ab") as pg_log, open(logs / "nats.log", "ab") as nats_log:
        pg = EmbeddedPostgres(root / "postgres", free_port(), pg_log)
        js = EmbeddedNats(root / "nats", free_port(), nats_log)
        pg.start()
        js.start()
        try:
            yield Stack(root, pg, js)
        finally:
            js.stop()
            pg.stop()


@pytest.fixture(scope="session")
def migrated(stack: Stack) -> Stack:
    """Every back-end schema at its latest migration, done once per session by the real command."""
    done = subprocess.run(
        [sys.executable, "-m", "gpulab_devstack.migrate_all", *BACKEND],
        env={
            **stack.env(),
            **migrate_all.role_urls(stack.service_database_url),
            "GPULAB_MIGRATION_DATABASE_URL": stack.database_url,
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return stack


@pytest.fixture
async def nc(stack: Stack) -> AsyncIterator[NATS]:
    conn = await nats.connect(stack.nats_url)
    yield conn
    await conn.drain()


@dataclass
class ServiceProcess:
    """One service run as its own process, the way the local run and a deployment start it."""

    name: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> ServiceProcess:
        self._log_file = open(self.log, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"gpulab_{self.name}"],
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def stop(self) -> int | None:
        code = None
        if self.proc is not None and self.proc.poll() is None:
            code = self.signal(signal.SIGTERM)
        elif self.proc is not None:
            code = self.proc.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code


class Launcher:
    """Starts service processes for one test and ends every one of them afterwards."""

    def __init__(self, stack: Stack, folder: Path) -> None:
        self._stack = stack
        self._folder = folder
        self.started: list[ServiceProcess] = []

    def spawn(self, name: str, **extra: str) -> ServiceProcess:
        log = self._folder / f"{name}-{len(self.started)}.log"
        proc = ServiceProcess(name, self._stack.env(name, **extra), log).start()
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()
            proc.stop()


@pytest.fixture
def services(migrated: Stack, tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(migrated, tmp_path)
    yield launcher
    launcher.close()


async def wait_until(predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.1) -> None:
    """Poll an async or sync predicate until it is truthy, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


def new_event(
    event_type: str,
    data: BaseModel | dict[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    source: str | None = None,
) -> Event:
    """An event as a service's outbox would record it (source: the type's context by default)."""
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else dict(data)
    return Event(
        id=event_id or uuid.uuid4(),
        type=event_type,
        source=source or event_type.split(".", 1)[0],
        occurred_at=occurred_at or datetime.now(UTC),
        data=payload,
    )


async def relay_publish(target: NATS | JetStreamContext, event: Event, *, msg_id: str | None = None) -> Event:
    """What the outbox relay does (gpulab_core.outbox): the envelope as compact JSON on
    `gpulab.events.<type>`, deduplicated by `Nats-Msg-Id` (the event id unless `msg_id` is given)."""
    js = target.jetstream() if isinstance(target, NATS) else target
    body = json.dumps(event.model_dump(mode="json"), separators=(",", ":")).encode()
    await js.publish(f"{EVENT_SUBJECT_PREFIX}.{event.type}", body, headers={"Nats-Msg-Id": msg_id or str(event.id)})
    return event
