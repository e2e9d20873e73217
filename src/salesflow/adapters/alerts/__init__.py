"""Alert sinks behind the ``Notifier`` port: log, JSONL file, SMTP, webhook.

Each has a ``name`` and a ``send(alert)`` that raises ``SinkError`` (a ``TransientError``)
when it cannot deliver, so the pipeline retries it later without blocking ingestion.
"""

from salesflow.adapters.alerts.errors import SinkError
from salesflow.adapters.alerts.jsonl import JsonlNotifier
from salesflow.adapters.alerts.log import LogNotifier
from salesflow.adapters.alerts.smtp import SmtpNotifier
from salesflow.adapters.alerts.webhook import WebhookNotifier

__all__ = ["JsonlNotifier", "LogNotifier", "SinkError", "SmtpNotifier", "WebhookNotifier"]
