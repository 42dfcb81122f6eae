"""The NATS permissions each identity gets are the table of operations, enforced by the real
nats-server: every operation's callers can request it, no other identity can; only the owner
publishes its events; no identity may delete or purge the event stream (docs/adr/0016)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from gpulab_core import natsauth
from gpulab_core.contracts import operations as ops
from gpulab_core.events import STREAM
from gpulab_core.natsconn import connect_nats
from gpulab_devstack.testing import Stack

from .nats_identity_support import connect_as

REPO = Path(__file__).resolve().parents[1]
SENDER = "X-Test-Sender"


async def _sent(stack: Stack, subjects: list[str], listen: str, expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(identity, subject) for each publish by each identity to each subject that reached `listen`:
    waits (up to 20 s, for a loaded machine) until every `expected` one is in, then 1 s more for any
    that should not be."""
    watcher = await nats.connect(stack.nats_url)
    arrived: set[tuple[str, str]] = set()

    async def got(msg: Msg) -> None:
        arrived.add(((msg.headers or {}).get(SENDER, "?"), msg.subject))

    await watcher.subscribe(listen, cb=got)
    await watcher.flush()
    try:
        for identity in natsauth.IDENTITIES:
            conn = await connect_as(stack, identity)
            for subject in subjects:
                await conn.nc.publish(subject, b"{}", headers={SENDER: identity})
            await conn.nc.flush()
            await conn.nc.close()
        for _ in range(200):
            if expected <= arrived:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the watcher's own delivery of anything that got through wrongly
        await watcher.flush()
    finally:
        await watcher.close()
    return arrived


async def test_each_operation_reaches_its_callers_only(migrated: Stack) -> None:
    subjects = [op.subject for op in ops.OPERATIONS]
    expected = {(caller, op.subject) for op in ops.OPERATIONS for caller in op.callers}
    arrived = await _sent(migrated, subjects, "gpulab.rpc.>", expected)
    assert arrived == expected


async def test_only_the_owner_publishes_its_events(migrated: Stack) -> None:
    subjects = [f"gpulab.events.{owner}.permission_probe" for owner in ops.SERVICES]
    expected = {(o, f"gpulab.events.{o}.permission_probe") for o in ops.SERVICES if o != ops.GATEWAY}
    arrived = await _sent(migrated, subjects, "gpulab.events.*.permission_probe", expected)
    assert arrived == expected


async def test_no_identity_can_delete_or_purge_the_event_stream(migrated: Stack) -> None:
    operator = await nats.connect(migrated.nats_url)
    js = operator.jetstream()
    before = await js.stream_info(STREAM)
    for identity in natsauth.IDENTITIES:
        conn = await connect_as(migrated, identity)
        for verb in ("DELETE", "PURGE"):
            subject = f"$JS.API.STREAM.{verb}.{STREAM}"
            try:
                await conn.nc.request(subject, b"", timeout=1)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                pass
            else:
                raise AssertionError(f"{identity} got an answer to {subject}")
            await conn.nc.flush()
            assert conn.refused(subject), (identity, conn.refusals)
        await conn.nc.close()
    after = await js.stream_info(STREAM)
    assert after.state.messages >= before.state.messages
    assert after.config.subjects == before.config.subjects
    await operator.close()


def test_the_deployment_users_conf_is_generated_from_the_table() -> None:
    """deploy/nats/users.conf is `python -m gpulab_core.natsauth deploy/nats/users.conf`'s output."""
    committed = (REPO / "deploy" / "nats" / "users.conf").read_text()
    assert committed == natsauth.deployment_conf(), "regenerate: python -m gpulab_core.natsauth deploy/nats/users.conf"


async def test_a_refused_identity_is_named_without_its_password(migrated: Stack) -> None:
    wrong = "not-notify-s-password-4f1c2a"
    address = migrated.nats_env("notify")["GPULAB_NATS_URL"]
    with pytest.raises(ConnectionError) as refused:
        await connect_nats(address, "wrong-password", wait_s=2, user="notify", password=wrong)
    assert wrong not in str(refused.value)
    assert address in str(refused.value)
