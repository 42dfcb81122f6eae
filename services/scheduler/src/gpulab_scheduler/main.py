"""Wiring only: the service spec, its setup and its command line."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import httpx

from gpulab_core import cli as core_cli
from gpulab_core.runtime import Runtime, ServiceSpec
from gpulab_scheduler import __version__
from gpulab_scheduler.assignments import ends
from gpulab_scheduler.config import Settings
from gpulab_scheduler.handlers import endpoints
from gpulab_scheduler.identity_client import IdentityClient
from gpulab_scheduler.models import tables
from gpulab_scheduler.projections import (
    NODE_EVENTS,
    REPORT_EVENTS,
    USER_EVENTS,
    on_assignment_state,
    on_node_event,
    on_user_event,
)

SERVICE_DIR = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    sessions = runtime.sessions
    assert sessions is not None
    http = httpx.AsyncClient(timeout=settings.netbird_timeout_s)
    runtime.on_stop(http.aclose)
    for endpoint in endpoints(sessions, IdentityClient(runtime.rpc_client), settings, http):
        runtime.add_endpoint(endpoint)
    runtime.add_consumer("nodes", NODE_EVENTS, on_node_event)
    runtime.add_consumer("users", USER_EVENTS, on_user_event)
    runtime.add_consumer("node-reports", REPORT_EVENTS, on_assignment_state)

    async def expiry() -> None:
        """Ends what is due and warns ahead; safe with several replicas (each row ends once)."""
        warning = timedelta(hours=settings.expiry_warning_hours)
        while True:
            try:
                async with sessions() as session, session.begin():
                    await ends.warn_expiring(session, warning)
                    ended = await ends.expire_due(session)
                if ended:
                    log.info("%d assignment(s) expired", ended)
            except Exception as exc:
                log.warning("expiry sweep failed, retrying: %s", exc)
            await asyncio.sleep(settings.expiry_sweep_s)

    runtime.add_task(expiry)


spec = ServiceSpec(name="scheduler", version=__version__, settings_cls=Settings, tables=tables, setup=setup)


def cli() -> int:
    return core_cli.main(spec, SERVICE_DIR)
