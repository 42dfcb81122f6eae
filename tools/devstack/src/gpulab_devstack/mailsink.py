"""The local run's mail server: accepts everything on loopback, keeps each message as a .eml file and
shows it in the run's output, so that an invite can be followed without a real mail server."""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

_LINK = re.compile(r"https?://\S+")


class _Keep:
    def __init__(self, folder: Path, show: Callable[[str], None]) -> None:
        self._folder = folder
        self._show = show

    async def handle_DATA(self, _server: SMTPServer, _session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        path = self._folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{abs(hash(data)) % 10**8:08d}.eml"
        path.write_bytes(data)
        message = email.message_from_bytes(data, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        links = _LINK.findall(text)
        self._show(f"mail to {', '.join(envelope.rcpt_tos)}: {message['subject']!s}")
        for link in links[:3]:
            self._show(f"  link: {link}")
        self._show(f"  saved as {path}")
        return "250 OK"


def start(folder: Path, port: int, show: Callable[[str], None]) -> Controller:
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(_Keep(folder, show), hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def stop(controller: Any) -> None:
    controller.stop()
