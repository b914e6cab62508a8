"""E-mail over SMTP with the standard library's client, run in a worker thread so the event
loop never waits on the network; every call has a timeout."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout_s = timeout_s

    async def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        """Hand one message to the server; raises `OSError` / `smtplib.SMTPException` when it
        is down or refuses (the caller records the attempt and tries again later)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = f"<{message_id}@casework>"
        message.set_content(body)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.send_message(message)
