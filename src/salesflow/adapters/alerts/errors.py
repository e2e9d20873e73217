"""The one failure mode of an alert sink: it could not deliver, so the alert is retried."""

from __future__ import annotations

from salesflow.errors import TransientError


class SinkError(TransientError):
    """Sink ``sink`` could not deliver alert ``alert_id`` because of ``cause``."""

    def __init__(self, sink: str, alert_id: str, cause: str) -> None:
        super().__init__(
            f"alert sink {sink!r} could not deliver alert {alert_id!r}: {cause}",
            hint="the alert stays PENDING and is retried; check the sink's settings",
        )
        self.sink = sink
        self.alert_id = alert_id
        self.cause = cause
