"""Wiring only: the service spec, its setup and its command line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from gpulab_core import cli as core_cli
from gpulab_core.contracts import events as ev
from gpulab_core.events import Event
from gpulab_core.runtime import Runtime, ServiceSpec
from gpulab_identity import __version__
from gpulab_identity.audit import repository as audit_repo
from gpulab_identity.audit import service as audit
from gpulab_identity.auth import service as auth
from gpulab_identity.bootstrap import ensure_admin
from gpulab_identity.config import Settings
from gpulab_identity.deps import Deps
from gpulab_identity.handlers import endpoints
from gpulab_identity.invites import service as invites
from gpulab_identity.models import tables
from gpulab_identity.passwords import Passwords

SERVICE_DIR = Path(__file__).resolve().parents[2]
PRUNE_EVERY_S = 600.0
log = logging.getLogger(__name__)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    assert runtime.sessions is not None
    # Every row of the audit log, written or checked through these sessions, is keyed with it.
    audit_repo.keyed(runtime.sessions, settings.audit_hmac_key.get_secret_value().encode())
    deps = Deps(runtime.sessions, settings, Passwords(settings.argon2_memory_kib, settings.argon2_time_cost))
    for endpoint in endpoints(deps):
        runtime.add_endpoint(endpoint)

    async def on_delivery(session: AsyncSession, event: Event) -> None:
        await invites.record_delivery(session, ev.InviteDelivery.model_validate(event.data))

    runtime.add_consumer("invite-delivery", [ev.INVITE_DELIVERY], on_delivery)
    # inventory's and pki's node actions, recorded here because identity keeps the one audit log.
    runtime.add_consumer("node-audit", audit.NODE_EVENTS, audit.record_node_event)
    # The scheduler's environment and assignment actions, by a consumer of their own: a new durable
    # starts at the stream's beginning, where widening node-audit's filter would skip the past.
    runtime.add_consumer("scheduler-audit", audit.SCHEDULER_EVENTS, audit.record_scheduler_event)
    # pki's node certificates (enrolled, renewed, revoked), with the node's address: their own consumer
    # for the same reason.
    runtime.add_consumer("certificate-audit", audit.CERTIFICATE_EVENTS, audit.record_certificate_event)

    if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
        if await ensure_admin(
            deps.sessions,
            deps.passwords,
            settings.bootstrap_admin_email,
            settings.bootstrap_admin_password.get_secret_value(),
        ):
            log.info("bootstrap admin %s created", settings.bootstrap_admin_email)

    async def prune() -> None:
        while True:
            async with deps.sessions() as session, session.begin():
                await auth.prune(session)
            await asyncio.sleep(PRUNE_EVERY_S)

    runtime.add_task(prune)


spec = ServiceSpec(name="identity", version=__version__, settings_cls=Settings, tables=tables, setup=setup)


def cli() -> int:
    return core_cli.main(spec, SERVICE_DIR)
