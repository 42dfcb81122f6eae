"""Wiring only: the service spec, its setup and its command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path

import httpx

from gpulab_core import cli as core_cli
from gpulab_core.runtime import Runtime, ServiceSpec
from gpulab_scheduler import __version__
from gpulab_scheduler.access import netbird_client, netbird_keys
from gpulab_scheduler.assignments import ends
from gpulab_scheduler.config import Settings
from gpulab_scheduler.handlers import endpoints
from gpulab_scheduler.identity_client import IdentityClient
from gpulab_scheduler.models import tables
from gpulab_scheduler.projections import (
    KEY_EVENTS,
    NODE_EVENTS,
    REPORT_EVENTS,
    USER_EVENTS,
    on_assignment_state,
    on_keys_event,
    on_node_event,
    on_user_event,
)
from gpulab_scheduler.requests import handlers as self_service
from gpulab_scheduler.requests.dispatcher import Dispatcher
from gpulab_scheduler.usage import metrics as usage_metrics

SERVICE_DIR = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    sessions = runtime.sessions
    assert sessions is not None
    http = httpx.AsyncClient(timeout=settings.netbird_timeout_s)
    runtime.on_stop(http.aclose)
    ended = asyncio.Event()  # set when an assignment ended: its NetBird access goes without waiting
    identity = IdentityClient(runtime.rpc_client)
    queue = Dispatcher(sessions, settings.queue_poll_s)

    def freed() -> None:
        """GPUs were freed here: NetBird access goes, and the queue gets them, without waiting."""
        ended.set()
        queue.kick()

    for endpoint in endpoints(sessions, identity, settings, http, freed):
        runtime.add_endpoint(endpoint)
    for endpoint in self_service.endpoints(sessions, identity, queue):
        runtime.add_endpoint(endpoint)
    runtime.add_consumer("nodes", NODE_EVENTS, on_node_event)
    runtime.add_consumer("users", USER_EVENTS, on_user_event)
    runtime.add_consumer("user-keys", KEY_EVENTS, on_keys_event)
    runtime.add_consumer("node-reports", REPORT_EVENTS, on_assignment_state)

    async def expiry() -> None:
        """Ends what is due and warns ahead; safe with several replicas (each row ends once)."""
        warning = timedelta(hours=settings.expiry_warning_hours)
        while True:
            try:
                async with sessions() as session, session.begin():
                    await ends.warn_expiring(session, warning)
                    expired = await ends.expire_due(session)
                if expired:
                    log.info("%d assignment(s) expired", expired)
                    freed()
            except Exception as exc:
                log.warning("expiry sweep failed, retrying: %s", exc)
            await asyncio.sleep(settings.expiry_sweep_s)

    async def netbird_removal() -> None:
        """Deletes the NetBird keys and peers of ended assignments (revoked, expired, node deleted, user
        disabled): right after a revoke or an expiry here, else every sweep; a failure is retried."""
        netbird = netbird_client(settings, http)
        while True:
            try:
                removed = await netbird_keys.remove_ended(sessions, netbird)
                if removed:
                    log.info("removed the NetBird access of %d ended assignment(s)", removed)
            except Exception as exc:
                log.warning("NetBird removal sweep failed, retrying: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), settings.expiry_sweep_s)
            ended.clear()

    runtime.add_task(expiry)
    runtime.add_task(netbird_removal)
    runtime.add_task(queue.loop)
    runtime.add_task(usage_metrics.refresher(sessions, settings.usage_metrics_refresh_s))


spec = ServiceSpec(name="scheduler", version=__version__, settings_cls=Settings, tables=tables, setup=setup)


def cli() -> int:
    return core_cli.main(spec, SERVICE_DIR)
