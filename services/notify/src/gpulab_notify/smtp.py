"""The SMTP client: one session per mail, over STARTTLS, implicit TLS or (local run) plain text.

stdlib `smtplib` is blocking, so each session runs in a worker thread. Failures are sorted into
permanent (the server refused this recipient or this message: 5xx) and temporary (everything else:
the server is down, says 4xx, or our own configuration is wrong — a fixed configuration should
still deliver the mails that waited for it).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

log = logging.getLogger(__name__)

# A reply quoted in a delivery's `last_error`; SMTP replies can be several lines of server banter.
MAX_DETAIL = 500


class DeliveryError(Exception):
    def __init__(self, detail: str, *, permanent: bool) -> None:
        super().__init__(detail)
        self.detail = detail[:MAX_DETAIL]
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # starttls | tls | none
    helo_name: str
    timeout_s: float
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class SmtpTransport:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._tls: ssl.SSLContext | None = None
        if config.security != "none":
            # Certificate and host name always verified; `ca_file` only replaces whom we trust.
            self._tls = ssl.create_default_context(cafile=config.ca_file)
            self._tls.minimum_version = ssl.TLSVersion.TLSv1_2

    async def send(self, message: EmailMessage, recipient: str) -> None:
        """Hand `message` to the server for `recipient` only (never the addresses its headers name).
        Returns once the server accepted it; raises DeliveryError."""
        await asyncio.to_thread(self._send_blocking, message, recipient)

    def _send_blocking(self, message: EmailMessage, recipient: str) -> None:
        smtp = self._open()
        try:
            self._submit(smtp, message, recipient)
        finally:
            # After the server's 250 the mail is its responsibility: a failing QUIT must not make us
            # believe the mail was not sent (and send it again).
            try:
                smtp.quit()
            except Exception:
                smtp.close()

    def _open(self) -> smtplib.SMTP:
        """Connect, secure and log in. Any failure here is temporary: nothing was submitted yet."""
        c = self.config
        smtp: smtplib.SMTP | None = None
        try:
            if c.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    c.host, c.port, local_hostname=c.helo_name, timeout=c.timeout_s, context=self._tls
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, local_hostname=c.helo_name, timeout=c.timeout_s)
            smtp.ehlo()
            if c.security == "starttls":
                # No fallback to plain text when the server does not offer STARTTLS: that is
                # exactly what an attacker in the middle would arrange.
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if c.username is not None and c.password is not None:
                smtp.login(c.username, c.password)
            return smtp
        except smtplib.SMTPResponseException as exc:
            self._close(smtp)
            raise DeliveryError(
                f"SMTP session refused: {_reply(exc.smtp_code, exc.smtp_error)}", permanent=False
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            self._close(smtp)
            raise DeliveryError(f"{c.host}:{c.port} does not offer STARTTLS: {exc}", permanent=False) from exc
        except ssl.SSLError as exc:
            self._close(smtp)
            raise DeliveryError(f"TLS with {c.host}:{c.port} failed: {exc}", permanent=False) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._close(smtp)
            raise DeliveryError(
                f"SMTP session with {c.host}:{c.port} failed: {_describe(exc)}", permanent=False
            ) from exc

    def _submit(self, smtp: smtplib.SMTP, message: EmailMessage, recipient: str) -> None:
        try:
            smtp.send_message(message, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            # One recipient per mail, so "all refused" is this one.
            code, text = next(iter(exc.recipients.values()))
            raise DeliveryError(f"recipient refused: {_reply(code, text)}", permanent=code >= 500) from exc
        except smtplib.SMTPSenderRefused as exc:
            # Our From address is refused: a configuration problem, not this recipient's.
            raise DeliveryError(f"sender refused: {_reply(exc.smtp_code, exc.smtp_error)}", permanent=False) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # The recipient's address needs SMTPUTF8 and the server has none: retrying changes nothing.
            raise DeliveryError(f"not supported by the server: {exc}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            permanent = exc.smtp_code >= 500
            raise DeliveryError(
                f"message refused: {_reply(exc.smtp_code, exc.smtp_error)}", permanent=permanent
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"connection lost while sending: {_describe(exc)}", permanent=False) from exc

    @staticmethod
    def _close(smtp: smtplib.SMTP | None) -> None:
        if smtp is not None:
            smtp.close()
