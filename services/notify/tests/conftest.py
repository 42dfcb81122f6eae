"""Fixtures: a real SMTP server (aiosmtpd, real TLS), notify itself, and what it publishes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core import db
from gpulab_core.runtime import Runtime
from gpulab_devstack.servers import free_port
from gpulab_devstack.testing import Stack
from gpulab_notify.config import Settings
from gpulab_notify.main import spec

from .notify_support import PUBLIC_URL, DeliveryEvents
from .smtp_support import PASSWORD, USERNAME, MailSink, SmtpServer, TlsFiles, make_tls

MakeSmtp = Callable[..., SmtpServer]
StartNotify = Callable[..., Awaitable[Runtime]]


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp(tls: TlsFiles) -> Iterator[MakeSmtp]:
    """`smtp(mode, start=True)`: a server on a free loopback port, stopped after the test."""
    servers: list[SmtpServer] = []

    def make(mode: str, *, start: bool = True) -> SmtpServer:
        server = SmtpServer(free_port(), mode, tls, MailSink())
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
async def engine(migrated: Stack) -> AsyncIterator[AsyncEngine]:
    eng = db.create_engine(migrated.database_url, schema=None, app_name="notify-test")
    # Open deliveries left by an earlier test would be sent to this test's server.
    async with eng.begin() as conn:
        await conn.execute(text("DELETE FROM notify.deliveries WHERE state IN ('pending', 'retrying')"))
    yield eng
    await eng.dispose()


def smtp_env(server: SmtpServer, tls: TlsFiles) -> dict[str, str]:
    """The GPULAB_SMTP_* settings that point notify at `server`."""
    env = {
        "GPULAB_SMTP_HOST": "127.0.0.1",
        "GPULAB_SMTP_PORT": str(server.port),
        "GPULAB_SMTP_SECURITY": server.mode,
        "GPULAB_SMTP_CA_FILE": str(tls.ca),
        "GPULAB_SMTP_FROM": "gpulab <noreply@gpulab.example.org>",
        "GPULAB_PUBLIC_URL": PUBLIC_URL,
        "GPULAB_SMTP_TIMEOUT_S": "10",
        "GPULAB_MAIL_POLL_S": "0.2",
        "GPULAB_MAIL_RETRY_INITIAL_S": "0.3",
        "GPULAB_MAIL_RETRY_MAX_S": "2",
    }
    if server.mode == "starttls":
        env.update(GPULAB_SMTP_USERNAME=USERNAME, GPULAB_SMTP_PASSWORD=PASSWORD)
    return env


@pytest.fixture
async def notify(
    migrated: Stack,
    engine: AsyncEngine,  # noqa: ARG001  (for its clean-up of open deliveries before notify starts)
    tls: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[StartNotify]:
    """`await notify(server, **settings)`: the notify runtime in this process, stopped after the test."""
    started: list[Runtime] = []

    async def start(server: SmtpServer, *, unset: tuple[str, ...] = (), **overrides: Any) -> Runtime:
        # Through the environment, as in production, so that the variables' names are tested too;
        # `unset` leaves variables out, so that their defaults are tested.
        for name, value in smtp_env(server, tls).items():
            if name in unset:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        settings = Settings(database_url=migrated.database_url, nats_url=migrated.nats_url, metrics_port=0, **overrides)
        runtime = Runtime(spec, settings)
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        await runtime.stop()


@pytest.fixture
async def delivery_events(nc: NATS) -> AsyncIterator[DeliveryEvents]:
    watcher = await DeliveryEvents().listen(nc)
    yield watcher
    await watcher.close()
