"""The console sink: one INFO log line per alert, emails masked (``salesflow run`` shows INFO)."""

from __future__ import annotations

import logging

from salesflow.adapters.alerts.text import subject
from salesflow.logs import mask_email
from salesflow.models import Alert


class LogNotifier:
    """Logs each alert on ``logger`` (default ``salesflow.alerts``)."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("salesflow.alerts")

    def send(self, alert: Alert) -> None:
        self.logger.info(
            "%s: %s [file %s, alert %s]",
            subject(alert),
            mask_email(alert.message),
            mask_email(alert.source_file),
            alert.id,
        )
