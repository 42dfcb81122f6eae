"""Wiring only: the service spec, its consumer and mail senders, and its command line."""

import logging
from pathlib import Path
from urllib.parse import urlsplit

from gpulab_core import cli as core_cli
from gpulab_core.runtime import Runtime, ServiceSpec
from gpulab_notify import __version__
from gpulab_notify.admins import Admin, active_admins
from gpulab_notify.config import Settings, is_loopback
from gpulab_notify.deliveries.handlers import MailHandler
from gpulab_notify.deliveries.kinds import Directory, consumers, subjects
from gpulab_notify.deliveries.sender import Sender
from gpulab_notify.deliveries.service import DeliveryService, RetryPolicy
from gpulab_notify.models import tables
from gpulab_notify.smtp import SmtpConfig, SmtpTransport

SERVICE_DIR = Path(__file__).resolve().parents[2]

log = logging.getLogger(__name__)


def smtp_config(s: Settings) -> SmtpConfig:
    return SmtpConfig(
        host=s.smtp_host,
        port=s.smtp_effective_port,
        security=s.smtp_security,
        helo_name=s.smtp_helo_name or urlsplit(s.public_url).hostname or "localhost",
        timeout_s=s.smtp_timeout_s,
        username=s.smtp_username,
        password=s.smtp_password.get_secret_value() if s.smtp_password is not None else None,
        ca_file=str(s.smtp_ca_file) if s.smtp_ca_file is not None else None,
    )


async def setup(runtime: Runtime) -> None:
    s = runtime.settings
    assert isinstance(s, Settings)
    assert runtime.sessions is not None
    if s.smtp_security == "none" and not is_loopback(s.smtp_host):
        log.warning(
            "GPULAB_SMTP_SECURITY=none: mail to %s travels unencrypted; use starttls or tls outside a local run",
            s.smtp_host,
        )
    policy = RetryPolicy(s.mail_retry_initial_s, s.mail_retry_max_s, s.mail_max_attempts, s.mail_give_up_after_s)
    service = DeliveryService(tables.outbox, policy)
    sender = Sender(
        runtime.sessions,
        service,
        SmtpTransport(smtp_config(s)),
        public_url=s.public_url,
        invite_seal_key=s.invite_seal_key.get_secret_value(),
        mail_from=s.smtp_from,
        poll_s=s.mail_poll_s,
        stop_grace_s=s.smtp_timeout_s,
    )

    async def admins() -> list[Admin]:
        return await active_admins(runtime.rpc_client)

    # One durable consumer per group of kinds (kinds.py says why they are apart).
    directory = Directory(admins=admins)
    for durable, group in consumers().items():
        handler = MailHandler(group, service, directory, sender.wake, max_age_s=s.mail_give_up_after_s)
        runtime.add_consumer(durable, subjects(group), handler)
    for _ in range(s.mail_concurrency):
        runtime.add_task(sender.run)
    runtime.on_stop(sender.stop)


spec = ServiceSpec(name="notify", version=__version__, settings_cls=Settings, tables=tables, setup=setup)


def cli() -> int:
    return core_cli.main(spec, SERVICE_DIR)
