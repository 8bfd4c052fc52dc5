"""Outgoing mail (password reset links): SMTP when configured, else the log, so a
local box still works and says where its mail went."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage

from telentir_box.config import SmtpConfig

log = logging.getLogger("telentir_box.mail")


class Mailer:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    @property
    def configured(self) -> bool:
        return bool(self._config.host)

    async def send(self, to: str, subject: str, body: str) -> None:
        if not self.configured:
            log.warning("SMTP is not configured; mail written to the log", extra={"to": to, "body": body})
            return
        message = EmailMessage()
        message["From"] = self._config.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        config = self._config
        with smtplib.SMTP(config.host, config.port, timeout=30) as smtp:
            if config.starttls:
                smtp.starttls()
            if config.username:
                smtp.login(config.username, config.password)
            smtp.send_message(message)
