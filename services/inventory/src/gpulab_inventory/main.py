"""Wiring only: the service spec, its setup and its command line."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import cli as core_cli
from gpulab_core.contracts import inventory as c
from gpulab_core.contracts import pki as pki_c
from gpulab_core.errors import GpulabError
from gpulab_core.events import EVENT_SUBJECT_PREFIX, Event
from gpulab_core.runtime import Runtime, ServiceSpec
from gpulab_inventory import __version__
from gpulab_inventory.config import Settings
from gpulab_inventory.desired.service import CONSUMES, DESIRED_STATE_CHANGED, Projection, nodes_in_notice
from gpulab_inventory.handlers import endpoints
from gpulab_inventory.heartbeat import tasks, wire
from gpulab_inventory.heartbeat.directory import Directory
from gpulab_inventory.heartbeat.metrics import PENDING_LAST_SEEN
from gpulab_inventory.heartbeat.revocations import record_revoked
from gpulab_inventory.heartbeat.server import HeartbeatServer
from gpulab_inventory.heartbeat.sweeper import Sweeper
from gpulab_inventory.models import tables
from gpulab_inventory.nodes import liveness
from gpulab_inventory.pki_client import PkiClient

SERVICE_DIR = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)
BACKFILL_RETRY_S = 5.0
# Events after which every replica drops its cached copy of the node at once (core NATS fan-out; the
# cache's own expiry covers a notice that is missed).
FORGET_ON = (c.NODE_OFFLINE, c.NODE_DELETED, c.NODE_ONLINE, pki_c.CERTIFICATES_REVOKED)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    sessions = runtime.sessions
    assert sessions is not None
    pki = PkiClient(runtime.rpc_client)
    for endpoint in endpoints(sessions, pki, settings):
        runtime.add_endpoint(endpoint)

    directory = Directory(sessions, cache_s=settings.node_cache_s, decode=wire.assignment_from_spec)
    sweeper = Sweeper(sessions, settings.offline_after_s, flush=directory.flush_last_seen, forget=directory.forget)
    # The desired state: a projection of the scheduler's assignments and identity's SSH keys. Each
    # change, once committed, is announced to every replica, which drops those nodes' cached copies.
    projection = Projection(settings.heartbeat_max_message_bytes)
    server = HeartbeatServer(
        settings, directory, pki, on_too_large=lambda node_id: projection.refit_soon(sessions, node_id)
    )
    runtime.parts["directory"] = directory
    runtime.parts["heartbeat"] = server
    runtime.checks["heartbeat"] = server.ready
    runtime.add_task(server.run)
    runtime.on_stop(server.stop)
    runtime.on_stop(directory.final_flush)  # after the port stopped taking heartbeats
    flush_s = liveness.flush_every(settings.last_seen_flush_s, settings.offline_after_s)

    async def flush() -> None:
        PENDING_LAST_SEEN.set(len(directory.pending))
        await directory.flush_last_seen()

    runtime.add_task(lambda: tasks.repeat(flush, flush_s, "writing last_seen_at", first_after_s=flush_s))
    # First a whole offline threshold of listening: after a restart of every replica, the last
    # contacts in the database are as old as the outage, and a live node is only judged once it
    # has had the time to heartbeat again (agents retry), never for the control plane's absence.
    runtime.add_task(
        lambda: tasks.repeat(
            sweeper.sweep,
            settings.sweep_interval_s,
            "offline sweep",
            first_after_s=settings.offline_after_s + settings.sweep_interval_s,
        )
    )
    # The revoked serials, read again off the heartbeat path (pki's events add to them at once; this
    # catches what another replica's consumer recorded).
    runtime.add_task(
        lambda: tasks.repeat(directory.reload_revoked, settings.revoked_reload_s, "reading the revoked serials")
    )

    async def on_revoked(session: AsyncSession, event: Event) -> None:
        revoked = pki_c.CertificatesRevoked.model_validate(event.data)
        await record_revoked(session, revoked.serials, revoked.node_id)
        directory.revoke_serials(revoked.serials)

    runtime.add_consumer("revoked-certificates", [pki_c.CERTIFICATES_REVOKED], on_revoked)

    async def backfill() -> None:
        """Serials revoked before this projection existed, or aged out of the stream: asked of pki once."""
        while True:
            try:
                serials = await pki.revoked()
                break
            except GpulabError as exc:
                log.info("revoked serials: pki not reachable yet (%s), asking again", exc.message)
                await asyncio.sleep(BACKFILL_RETRY_S)
        async with sessions() as session, session.begin():
            await record_revoked(session, serials, None)
        directory.revoke_serials(serials)

    runtime.add_task(backfill)

    async def forget(msg: Msg) -> None:
        try:
            node_id = uuid.UUID(str(json.loads(msg.data)["data"]["node_id"]))
        except (ValueError, KeyError, TypeError):
            return
        directory.forget(node_id)

    # Core-NATS notices published while this replica was disconnected are lost: read every node again.
    runtime.on_nats_reconnect(directory.forget_all)
    for event_type in FORGET_ON:
        await runtime.nc.subscribe(f"{EVENT_SUBJECT_PREFIX}.{event_type}", cb=forget)

    runtime.add_consumer("desired-state", CONSUMES, projection.apply)

    async def publish(notice: bytes) -> None:
        await runtime.nc.publish(DESIRED_STATE_CHANGED, notice)

    runtime.add_task(lambda: projection.run_announcer(directory.forget, publish))

    async def forget_changed(msg: Msg) -> None:
        for node_id in nodes_in_notice(msg.data):
            directory.forget(node_id)

    await runtime.nc.subscribe(DESIRED_STATE_CHANGED, cb=forget_changed)


spec = ServiceSpec(name="inventory", version=__version__, settings_cls=Settings, tables=tables, setup=setup)


def cli() -> int:
    return core_cli.main(spec, SERVICE_DIR)
