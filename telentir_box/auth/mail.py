"""Outgoing mail (password reset links, report emails): SMTP when configured, else the log, so a
local box still works and says where its mail went."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage

from telentir_box.config import SmtpConfig

log = logging.getLogger("telentir_box.mail")


class Mailer:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    @property
    def configured(self) -> bool:
        return bool(self._config.host)

    async def send(self, to: str, subject: str, body: str) -> bool:
        """Deliver one plain-text message; see send_message."""
        message = EmailMessage()
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        return await self.send_message(message)

    async def send_message(self, message: EmailMessage) -> bool:
        """Deliver one message (To and Subject set; From is the configured sender); False
        (and an error in the log) if the server refused it or could not be reached, so
        callers decide whether the failure is theirs to show. Unconfigured: the message's
        plain text goes to the log."""
        to = message["To"]
        if not self.configured:
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            log.warning(
                "SMTP is not configured; mail written to the log",
                extra={"to": to, "subject": message["Subject"], "body": text},
            )
            return True
        message["From"] = self._config.sender
        try:
            await asyncio.to_thread(self._send, message)
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            log.error("mail not sent", extra={"to": to, "smtp_host": self._config.host, "error": str(exc)})
            return False
        return True

    def _send(self, message: EmailMessage) -> None:
        config = self._config
        with smtplib.SMTP(config.host, config.port, timeout=30) as smtp:
            if config.starttls:
                # Verified against the system's CAs (SSL_CERT_FILE names a private CA):
                # smtplib's default context would accept any certificate, and with it a
                # man in the middle reading reset links and the SMTP password.
                smtp.starttls(context=ssl.create_default_context())
            if config.username:
                smtp.login(config.username, config.password)
            smtp.send_message(message)
