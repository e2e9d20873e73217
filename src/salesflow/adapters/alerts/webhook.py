"""The webhook sink: POST the alert as JSON, with the alert id as the idempotency key."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from salesflow.adapters.alerts.errors import SinkError
from salesflow.errors import SalesflowError
from salesflow.logs import redact_url
from salesflow.models import Alert


class WebhookNotifier:
    """POSTs each alert to ``url``. The ``Idempotency-Key`` header is the alert id, so the
    receiver can drop a delivery repeated after a timeout. Any non-2xx answer is a failure."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise SalesflowError(
                f"webhook URL {redact_url(url)!r} is not an http(s) URL",
                hint="set SALESFLOW_ALERTS__WEBHOOK_URL=https://host/path",
            )
        self.url = url
        self.shown = redact_url(url)  # errors are stored and printed: no password, no token
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url,
            data=json.dumps(alert.to_dict()).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": alert.id,
                "User-Agent": "salesflow",
            },
        )
        try:
            # urlopen raises HTTPError for every answer outside 2xx (after redirects).
            with urllib.request.urlopen(request, timeout=self.timeout):  # noqa: S310
                pass
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response's socket
            raise SinkError(self.name, alert.id, f"{self.shown} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SinkError(self.name, alert.id, f"{self.shown} unreachable: {reason}") from exc
