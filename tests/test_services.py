"""Every back-end service: its own schema and migrations, its own process, PING, replicas side by side."""

from __future__ import annotations

import asyncio
import importlib
import json
import signal

import pytest
from alembic.script import ScriptDirectory
from nats.aio.client import Client as NATS
from sqlalchemy import text

from gpulab_core import db, migrations
from gpulab_core.errors import RemoteError
from gpulab_core.rpc import RpcClient
from gpulab_devstack.testing import BACKEND, Launcher, Stack, wait_until


async def ping_all(nc: NATS, service: str, timeout_s: float = 0.5) -> list[dict[str, str]]:
    """Every instance's answer to micro's PING for `service`."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$SRV.PING.{service}", b"", reply=inbox)
    replies = []
    try:
        while True:
            msg = await sub.next_msg(timeout=timeout_s)
            replies.append(json.loads(msg.data))
    except Exception:  # nats TimeoutError: nobody else answers
        pass
    finally:
        await sub.unsubscribe()
    return replies


def head_revision(service: str) -> str:
    module = importlib.import_module(f"gpulab_{service}.main")
    script = ScriptDirectory.from_config(migrations.alembic_config(module.SERVICE_DIR, "postgresql://x@y/z"))
    head = script.get_current_head()
    assert head is not None
    assert head.startswith(f"{service}_"), "revision ids name their service"
    return head


@pytest.mark.parametrize("service", BACKEND)
async def test_schema_has_its_own_alembic_version_table(migrated: Stack, service: str) -> None:
    engine = db.create_engine(migrated.database_url, schema=None, app_name="test")
    try:
        async with engine.connect() as conn:
            version = await conn.scalar(text(f'SELECT version_num FROM "{service}".alembic_version'))
            tables = set(
                (await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": service}))
                .scalars()
                .all()
            )
            public_version = await conn.scalar(text("SELECT to_regclass('public.alembic_version')"))
    finally:
        await engine.dispose()
    assert version == head_revision(service), "at the newest migration"
    assert {"alembic_version", "outbox", "processed_events"} <= tables
    assert public_version is None, "no service keeps its version table outside its schema"


@pytest.mark.slow
@pytest.mark.parametrize("service", BACKEND)
async def test_two_replicas_run_side_by_side_and_answer_ping(services: Launcher, nc: NATS, service: str) -> None:
    if service == "inventory":
        # pki signs the heartbeat port's certificate; without it inventory runs but is not ready.
        services.spawn("pki")
    first = services.spawn(service)
    second = services.spawn(service)

    async def both_up() -> bool:
        return len(await ping_all(nc, service)) == 2

    await wait_until(both_up, timeout_s=60, interval_s=0.3)
    pings = await ping_all(nc, service)
    assert {p["name"] for p in pings} == {service}
    assert len({p["id"] for p in pings}) == 2

    ready: set[str] = set()

    async def both_healthy() -> bool:
        # Requests go to either replica (a queue group): wait until each has answered `ok` once.
        try:
            reply = await RpcClient(nc).call(service, "health")
        except RemoteError:
            return False
        if reply["status"] == "ok":
            ready.add(reply["instance"])
        return len(ready) == 2

    await wait_until(both_healthy, timeout_s=30, interval_s=0.1)
    health = await RpcClient(nc).call(service, "health")
    assert health["service"] == service

    # One replica stops cleanly on SIGTERM; the other goes on serving.
    assert first.signal(signal.SIGTERM) == 0
    assert f"{service} stopped" in first.output()
    await asyncio.sleep(0.2)
    assert len(await ping_all(nc, service)) == 1
    assert (await RpcClient(nc).call(service, "health"))["status"] == "ok"
    assert second.proc is not None
    assert second.proc.poll() is None
