"""The email sink: one message per alert over SMTP, with optional STARTTLS and login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from salesflow.adapters.alerts.errors import SinkError
from salesflow.adapters.alerts.text import body, subject
from salesflow.config import SmtpSettings
from salesflow.errors import SalesflowError
from salesflow.models import Alert


class SmtpNotifier:
    """Mails each alert to ``settings.recipients`` through ``settings.host:port``."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings) -> None:
        if not settings.recipients:
            raise SalesflowError(
                "the smtp alert sink has no recipients",
                hint="set SALESFLOW_ALERTS__SMTP__RECIPIENTS='[\"ops@example.com\"]'",
            )
        self.settings = settings

    def message(self, alert: Alert) -> EmailMessage:
        """The email for ``alert``; its Message-ID derives from the alert id, so a mail
        server or client can drop a duplicate delivered after a retry."""
        msg = EmailMessage()
        msg["Subject"] = subject(alert)
        msg["From"] = self.settings.sender
        msg["To"] = ", ".join(self.settings.recipients)
        domain = self.settings.sender.rpartition("@")[2] or "salesflow"
        msg["Message-ID"] = f"<{alert.id.replace(':', '.')}@{domain}>"
        msg["X-Salesflow-Alert-Id"] = alert.id
        msg.set_content(body(alert))
        return msg

    def send(self, alert: Alert) -> None:
        s = self.settings
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as client:
                if s.starttls:
                    client.starttls(context=ssl.create_default_context())
                if s.username:
                    password = s.password.get_secret_value() if s.password else ""
                    client.login(s.username, password)
                client.send_message(self.message(alert))
        except (smtplib.SMTPException, OSError) as exc:
            cause = f"{s.host}:{s.port}: {type(exc).__name__}: {exc}"
            raise SinkError(self.name, alert.id, cause) from exc
