"""Delivering queued alerts to their sinks, each alert exactly once per sink.

Alerts are first recorded (deduplicated by id) while a file loads; delivery happens after,
so a slow or failing sink never blocks ingestion. A failure is retried on the next pass
until ``max_attempts``, then the alert is marked FAILED and stays listed.
A crash between a sink accepting an alert and the SENT mark can repeat that one delivery:
the webhook carries ``Idempotency-Key: <alert id>`` so receivers can drop the repeat.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from salesflow.errors import SalesflowError
from salesflow.models import AlertStatus, utcnow
from salesflow.pipeline.routing import sink_of
from salesflow.ports import Backend

log = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def deliver_alerts(backend: Backend, *, max_attempts: int = 5) -> DeliveryResult:
    """Send every PENDING alert to its sink; return how many were sent, retried, given up."""
    sinks = {n.name: n for n in backend.notifiers}
    result = DeliveryResult()
    for alert in backend.tables.list_alerts(AlertStatus.PENDING.value):
        sink = sinks.get(sink_of(alert))
        alert.attempts += 1
        if sink is None:
            alert.status = AlertStatus.FAILED
            alert.error = f"sink {sink_of(alert)!r} is not configured"
            result.failed += 1
        else:
            try:
                sink.send(alert)
            except (SalesflowError, OSError) as exc:
                alert.error = f"{sink.name}: {exc}"
                if alert.attempts >= max_attempts:
                    alert.status = AlertStatus.FAILED
                    result.failed += 1
                else:
                    result.retrying += 1
                log.warning(
                    "alert %s not delivered (attempt %d): %s", alert.id, alert.attempts, exc
                )
            else:
                alert.status = AlertStatus.SENT
                alert.sent_at = utcnow()
                alert.error = None
                result.sent += 1
        backend.tables.update_alert(alert)
    return result
